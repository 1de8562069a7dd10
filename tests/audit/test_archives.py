"""gateway/audit/archives.py, closed archives of the chain: records of a time range leave the
live table into files linked by their hashes, and `audit verify --archives` walks archives
and table as one chain — finding an archive altered, replaced or missing. Nothing else may
delete a record."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import asyncpg
import orjson
import pytest

from support import CHAIN_LENGTH, Chain, CliRun, audit_cli, record_at, run, sql


def archive(chain: Chain, capsys: pytest.CaptureFixture[str], until: str, out: Path) -> CliRun:
    return audit_cli(
        capsys,
        "audit",
        "archive",
        "--database-url",
        chain.url,
        "--key-file",
        str(chain.key_file),
        "--until",
        until,
        "--output-dir",
        str(out),
    )


def verify(chain: Chain, capsys: pytest.CaptureFixture[str], *extra: str) -> CliRun:
    return audit_cli(
        capsys,
        "audit",
        "verify",
        "--database-url",
        chain.url,
        "--key-file",
        str(chain.key_file),
        *extra,
    )


def live_seqs(chain: Chain) -> list[int]:
    return [r["seq"] for r in sql(chain.url, "SELECT seq FROM audit.records ORDER BY seq")]


def test_archives_take_old_records_out_and_the_chain_still_verifies(
    make_chain: Callable[[str], Chain], tmp_path: Path, capsys
):
    chain = make_chain("archived")
    out = tmp_path / "archives"
    first = archive(chain, capsys, record_at(12).isoformat(), out)
    assert first.code == 0, first
    assert first.out.startswith(f"archived records 1 to 11 (11 records) to {out}/")
    second = archive(chain, capsys, record_at(18).isoformat(), out)
    assert second.out.startswith("archived records 12 to 17 (6 records)"), second
    assert live_seqs(chain) == list(range(18, CHAIN_LENGTH + 1))
    again = archive(chain, capsys, record_at(18).isoformat(), out)
    assert again.code == 0 and again.out.startswith("nothing to archive")

    # Each archive names the one before it by its SHA-256.
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [
        "audit-000000000001-000000000011.jsonl",
        "audit-000000000012-000000000017.jsonl",
    ]
    header = orjson.loads(files[1].read_bytes().splitlines()[0])["archive"]
    assert header["previous"] == hashlib.sha256(files[0].read_bytes()).hexdigest()

    live = verify(chain, capsys)
    assert live.code == 0, live
    assert "audit chain intact: 3 records; head record 20" in live.out
    assert "records 1 to 17 are archived and were not read" in live.err
    whole = verify(chain, capsys, "--archives", str(out))
    assert whole.code == 0 and f"audit chain intact: {CHAIN_LENGTH} records" in whole.out, whole


def test_an_altered_or_missing_archive_is_found(
    make_chain: Callable[[str], Chain], tmp_path: Path, capsys
):
    chain = make_chain("archive_altered")
    out = tmp_path / "archives"
    assert archive(chain, capsys, record_at(10).isoformat(), out).code == 0
    [file] = out.iterdir()
    original = file.read_bytes()

    lines = original.splitlines(keepends=True)
    record = orjson.loads(lines[5])
    record["entry"]["subject"] = "someone-else"
    file.write_bytes(b"".join([*lines[:5], orjson.dumps(record) + b"\n", *lines[6:]]))
    altered = verify(chain, capsys, "--archives", str(out))
    assert altered.code == 1
    assert "audit chain BROKEN at record 5: record 5 was altered" in altered.out, altered

    # Rewritten with a new header too: the SHA-256 the store recorded still tells.
    file.write_bytes(original.replace(b'"until"', b'"until" ', 1))
    rewritten = verify(chain, capsys, "--archives", str(out))
    assert rewritten.code == 1 and "was altered: its SHA-256 differs" in rewritten.out

    file.unlink()
    missing = verify(chain, capsys, "--archives", str(out))
    assert missing.code == 2 and f"archive {file.name} (records 1 to 9) is not in" in missing.err


def test_a_broken_chain_is_not_archived(make_chain: Callable[[str], Chain], tmp_path: Path, capsys):
    chain = make_chain("archive_broken")
    chain.tamper('UPDATE audit.records SET entry = entry || \'{"subject": "x"}\' WHERE seq = 4')
    refused = archive(chain, capsys, record_at(10).isoformat(), tmp_path)
    assert refused.code == 2
    assert "nothing archived: the chain is broken at record 4" in refused.err
    assert live_seqs(chain) == list(range(1, CHAIN_LENGTH + 1))
    assert list(tmp_path.glob("audit-*")) == []


def test_only_archived_records_can_be_deleted(
    make_chain: Callable[[str], Chain], tmp_path: Path, capsys
):
    chain = make_chain("archive_delete")
    assert archive(chain, capsys, record_at(5).isoformat(), tmp_path).code == 0

    async def delete(seq: int) -> None:
        conn = await asyncpg.connect(chain.url)  # the owner, triggers on
        try:
            await conn.execute("DELETE FROM audit.records WHERE seq = $1", seq)
        finally:
            await conn.close()

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="record 5 is in no archive"):
        run(delete(5))
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        run(delete_archive_row(chain.url))


async def delete_archive_row(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM audit.archives")
    finally:
        await conn.close()
