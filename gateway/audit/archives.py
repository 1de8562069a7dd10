"""Closed archives of the audit chain: old records leave the live table without losing
verifiability.

``bma-gateway audit archive --until T`` moves the records after the last archive and before
``T`` into one file, ``audit-<first>-<last>.jsonl``: a header line, then one line per record
with its time, entry, previous hash and hash, exactly as the chain sealed them. The header
carries the SHA-256 of the previous archive file (X-Road's message-log archives are linked the
same way), so the archives form a chain of their own. The chain is checked before anything is
written; the file is flushed and in place before, in one transaction, ``audit.archives``
records it (range, last hash, the file's SHA-256) and the records leave ``audit.records`` — a
record is deleted only once an archive holding it is recorded (a trigger refuses any other
delete). ``audit verify --archives DIR`` walks the archives and the live table as one chain.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from gateway.audit.store import (
    GENESIS,
    ArchiveRow,
    AuditStoreError,
    ChainBroken,
    ChainWalk,
    Head,
    archives_of,
)


def archive_name(first: int, last: int) -> str:
    return f"audit-{first:012d}-{last:012d}.jsonl"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Made:
    """An archive written and recorded: its file and row (None when nothing was due)."""

    path: Path
    row: ArchiveRow

    @property
    def records(self) -> int:
        return self.row.last_seq - self.row.first_seq + 1


async def archive(
    conn: asyncpg.Connection, key: bytes, until: datetime, directory: Path
) -> Made | None:
    """Archive the records after the last archive and before ``until`` (the longest run of
    them in chain order), as the store's owner, into ``directory`` (which exists); None when
    there are none."""
    async with conn.transaction():
        # One archiver at a time; the gateway's appends are not held up.
        await conn.execute("LOCK TABLE audit.archives IN SHARE ROW EXCLUSIVE MODE")
        archives = await archives_of(conn)
        start: Head = (archives[-1].last_seq, archives[-1].last_hash) if archives else (0, GENESIS)
        last = await _last_before(conn, start[0], until)
        if last is None:
            return None
        path = directory / archive_name(start[0] + 1, last)
        previous = archives[-1].digest.hex() if archives else None
        last_hash, digest = await _write(conn, key, start, last, until, previous, path)
        row = ArchiveRow(start[0] + 1, last, last_hash, until, digest)
        await conn.execute(
            "INSERT INTO audit.archives (first_seq, last_seq, last_hash, until, digest) "
            "VALUES ($1, $2, $3, $4, $5)",
            row.first_seq,
            row.last_seq,
            row.last_hash,
            row.until,
            row.digest,
        )
        await conn.execute(
            "DELETE FROM audit.records WHERE seq BETWEEN $1 AND $2", row.first_seq, row.last_seq
        )
    return Made(path, row)


async def _last_before(conn: asyncpg.Connection, after: int, until: datetime) -> int | None:
    """The last record of the run after ``after`` whose records were all written before
    ``until`` (replicas' clocks differ a little: the run stops at the first later one)."""
    last: int | None = await conn.fetchval(
        """SELECT coalesce(
               (SELECT min(seq) - 1 FROM audit.records WHERE seq > $1 AND at >= $2),
               (SELECT max(seq) FROM audit.records))""",
        after,
        until,
    )
    return last if last is not None and last > after else None


async def _write(
    conn: asyncpg.Connection,
    key: bytes,
    start: Head,
    last: int,
    until: datetime,
    previous: str | None,
    path: Path,
) -> tuple[bytes, bytes]:
    """Check the records start+1..last against the chain and write them to ``path``; the last
    record's hash and the file's SHA-256."""
    walk = ChainWalk(key, (last, b""), (), start)
    digest = hashlib.sha256()
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as f:

        def put(line: bytes) -> None:
            f.write(line)
            digest.update(line)

        header = {
            "first": start[0] + 1,
            "last": last,
            "until": _iso(until),
            "startHash": start[1].hex(),
            "previous": previous,
        }
        put(orjson.dumps({"archive": header}) + b"\n")
        async for row in conn.cursor(
            "SELECT seq, at, entry::text AS entry, prev_hash, hash FROM audit.records "
            "WHERE seq > $1 AND seq <= $2 ORDER BY seq",
            start[0],
            last,
            prefetch=2000,
        ):
            broken = walk.step(row)
            if broken is not None:
                partial.unlink()
                raise AuditStoreError(
                    f"nothing archived: the chain is broken at record {broken.broken_at} "
                    f"({broken.reason}); run `bma-gateway audit verify`"
                )
            put(_record_line(row))
        f.flush()
        os.fsync(f.fileno())
    if walk.expected - 1 != last:
        partial.unlink()
        raise AuditStoreError(f"nothing archived: record {walk.expected} is missing")
    os.replace(partial, path)
    return walk.prev, digest.digest()


def _record_line(row: Mapping[str, Any]) -> bytes:
    return (
        orjson.dumps(
            {
                "seq": row["seq"],
                "at": _iso(row["at"]),
                "entry": orjson.Fragment(row["entry"]),
                "prevHash": bytes(row["prev_hash"]).hex(),
                "hash": bytes(row["hash"]).hex(),
            }
        )
        + b"\n"
    )


class ArchiveFiles:
    """The records of the archives ``audit.archives`` names, read from their files in
    ``directory`` — each file's SHA-256 and link to the previous archive checked."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def records(self, archives: Sequence[ArchiveRow]) -> Iterator[Mapping[str, Any]]:
        previous: str | None = None
        for archive in archives:
            yield from self._records_of(archive, previous)
            previous = archive.digest.hex()

    def _records_of(self, archive: ArchiveRow, previous: str | None) -> Iterator[dict[str, Any]]:
        name = archive_name(archive.first_seq, archive.last_seq)
        path = self.directory / name
        if not path.is_file():
            raise AuditStoreError(
                f"archive {name} (records {archive.first_seq} to {archive.last_seq}) is not in "
                f"{self.directory}"
            )
        digest = hashlib.sha256()
        with path.open("rb") as f:
            first = f.readline()
            digest.update(first)
            header = _header(first)
            if header.get("previous") != previous or header.get("last") != archive.last_seq:
                raise ChainBroken(
                    archive.first_seq, f"archive {name} does not follow the previous archive"
                )
            for line in f:
                digest.update(line)
                yield _record_of(line, name, archive.first_seq)
        if digest.digest() != archive.digest:
            raise ChainBroken(
                archive.first_seq,
                f"archive {name} was altered: its SHA-256 differs from the one recorded",
            )


def _header(line: bytes) -> dict[str, Any]:
    try:
        header = orjson.loads(line)["archive"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return {}
    return header if isinstance(header, dict) else {}


def _record_of(line: bytes, name: str, first: int) -> dict[str, Any]:
    try:
        data = orjson.loads(line)
        return {
            "seq": int(data["seq"]),
            "at": datetime.fromisoformat(data["at"]),
            "entry": orjson.dumps(data["entry"]).decode(),
            "prev_hash": bytes.fromhex(data["prevHash"]),
            "hash": bytes.fromhex(data["hash"]),
        }
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise ChainBroken(first, f"archive {name} holds a line that is not a record") from None
