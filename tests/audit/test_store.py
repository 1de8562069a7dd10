"""The hash-chained audit store and `bma-gateway audit`: an untouched log verifies clean; a
hostile database administrator who changes, deletes, inserts or swaps records is caught at
exactly the record touched, both by `audit_store.verify` and by `audit verify`; `audit export`
writes exactly a time range; two writers appending at once keep one unbroken chain; `audit
keygen` never overwrites a key.

Each test builds its own chain in a fresh database. Tampering runs as a superuser with
``session_replication_role = replica``, which silences the append-only triggers, as a DBA
bent on rewriting history could.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.audit import store as audit_store
from gateway.audit.store import (
    Verification,
    append,
    canonical,
    chain_hash,
    ensure_store,
    load_key,
    verify,
)
from gateway.audit.writer import AuditWriter
from gateway.cli import main
from gateway.cli.audit import EXPORT_COLUMNS
from support import fresh_database, run, sql

KEY = bytes.fromhex("5a" * 32)  # the chain key every chain here is written with
OTHER_KEY = bytes.fromhex("a5" * 32)  # an attacker's: right length, wrong secret
T0 = datetime(2026, 1, 1, tzinfo=UTC)
LENGTH = 20  # records in every test chain


def at(n: int) -> datetime:
    """The time of record ``n``: one an hour from the start of 2026."""
    return T0 + timedelta(hours=n)


def entry(n: int, request: str = "r") -> dict[str, Any]:
    """An entry shaped like the gateway's (``gateway.audit.access_entry``)."""
    owner = f"owner:{n}"
    return {
        "requestId": f"{request}{n}",
        "subject": f"officer-{n % 3}",
        "organisation": "สำนักงานเขตพระนคร" if n % 2 else "bma-finance",
        "audience": "agency",
        "issuer": "bma-issuer",
        "credentialId": None,
        "clientAddress": "10.1.2.3",
        "purpose": "tax-collection",
        "lawfulBasis": "PDPA s.24(4) ภารกิจเพื่อประโยชน์สาธารณะ",
        "operationName": "ParcelForTax",
        "documentHash": hashlib.sha256(f"query {n}".encode()).hexdigest(),
        "outcome": "allowed",
        "fields": [
            {"field": "Owner.name", "access": "clear", "records": [owner]},
            {"field": "Owner.nationalId", "access": "masked", "records": [owner]},
        ],
        "records": [owner],
        "subjects": [f"id:{1234567890000 + n}"],
    }


Statement = str | tuple[Any, ...]  # SQL, or SQL and its arguments


@dataclass
class Chain:
    """A chain of ``LENGTH`` records in its own database, and a file holding its key."""

    url: str
    key_file: Path

    def verify(self, key: bytes = KEY) -> Verification:
        async def check() -> Verification:
            conn = await asyncpg.connect(self.url)
            try:
                return await verify(conn, key)
            finally:
                await conn.close()

        return run(check())

    def hash_of(self, seq: int) -> bytes:
        return bytes(sql(self.url, "SELECT hash FROM audit.records WHERE seq = $1", seq)[0]["hash"])

    def tamper(self, *statements: Statement) -> None:
        """Run statements in one transaction as a superuser with the triggers silenced."""

        async def rewrite() -> None:
            conn = await asyncpg.connect(self.url)
            try:
                await conn.execute("SET session_replication_role = replica")
                async with conn.transaction():
                    for statement in statements:
                        query, *args = (statement,) if isinstance(statement, str) else statement
                        await conn.execute(query, *args)
            finally:
                await conn.close()

        run(rewrite())

    def cli_verify(self, capsys: pytest.CaptureFixture[str], key_file: Path | None = None) -> Cli:
        return cli(
            capsys,
            "audit",
            "verify",
            "--database-url",
            self.url,
            "--key-file",
            str(key_file or self.key_file),
        )


@dataclass
class Cli:
    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Cli:
    capsys.readouterr()  # only this command's output
    code = main(list(argv))
    captured = capsys.readouterr()
    return Cli(code, captured.out, captured.err)


def write_key(path: Path, key: bytes) -> Path:
    path.write_text(key.hex() + "\n", "ascii")
    return path


@pytest.fixture
def make_chain(server_url: str, tmp_path: Path) -> Callable[[str], Chain]:
    """A factory: ``make_chain(case)`` builds a verified chain in ``bmatest_chain_<case>``."""

    def build(case: str) -> Chain:
        url = fresh_database(server_url, f"bmatest_chain_{case}")

        async def fill() -> None:
            conn = await asyncpg.connect(url)
            try:
                await ensure_store(conn)
                # Several transactions, so links between batches are covered too.
                for batch in (range(1, 6), range(6, 7), range(7, LENGTH + 1)):
                    await append(conn, KEY, [(at(n), entry(n)) for n in batch])
            finally:
                await conn.close()

        run(fill())
        chain = Chain(url, write_key(tmp_path / f"{case}.key", KEY))
        assert chain.verify().intact  # the break each test finds is its own doing
        return chain

    return build


def forged(seq: int, prev: bytes, when: datetime, content: dict[str, Any]) -> Statement:
    """An INSERT of a plausible record, linked to ``prev`` but sealed without the chain key."""
    digest = chain_hash(OTHER_KEY, prev, seq, when, content)
    return (
        "INSERT INTO audit.records (seq, at, entry, prev_hash, hash) "
        "VALUES ($1, $2, $3::jsonb, $4, $5)",
        seq,
        when,
        canonical(content).decode(),
        prev,
        digest,
    )


def assert_broken_at(
    chain: Chain, capsys: pytest.CaptureFixture[str], seq: int, *, because: str
) -> None:
    """Both the store and `audit verify` name record ``seq`` as the first that fails."""
    result = chain.verify()
    assert not result.intact
    assert result.broken_at == seq, result
    assert because in result.reason, result
    assert result.records == seq - 1  # every record before it held
    done = chain.cli_verify(capsys)
    assert done.code == 1, done
    assert f"audit chain BROKEN at record {seq}: " in done.out, done
    assert f"({seq - 1} records verified before it)" in done.err, done


# An untouched log


def test_an_untouched_chain_verifies_intact(make_chain: Callable[[str], Chain]):
    chain = make_chain("untouched")
    result = chain.verify()
    assert result.intact
    assert (result.records, result.head_seq, result.broken_at) == (LENGTH, LENGTH, None)
    assert result.head_hash == chain.hash_of(LENGTH).hex()
    stored = sql(chain.url, "SELECT seq, entry::text AS entry FROM audit.records ORDER BY seq")
    assert [r["seq"] for r in stored] == list(range(1, LENGTH + 1))
    assert json.loads(stored[6]["entry"]) == entry(7)  # Thai text and nulls kept as written


def test_an_empty_store_verifies_intact(server_url: str):
    url = fresh_database(server_url, "bmatest_chain_empty")

    async def check() -> Verification:
        conn = await asyncpg.connect(url)
        try:
            await ensure_store(conn)
            return await verify(conn, KEY)
        finally:
            await conn.close()

    result = run(check())
    assert result.intact
    assert (result.records, result.head_seq) == (0, 0)


# Change one row


def test_changing_one_records_entry_breaks_the_chain_at_that_record(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("change_entry")
    chain.tamper(
        "UPDATE audit.records SET entry = jsonb_set(entry, '{subject}', '\"someone-else\"') "
        "WHERE seq = 7"
    )
    assert_broken_at(chain, capsys, 7, because="altered")


def test_changing_only_a_records_time_breaks_the_chain_at_that_record(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("change_at")
    chain.tamper("UPDATE audit.records SET at = at - interval '1 second' WHERE seq = 7")
    assert_broken_at(chain, capsys, 7, because="altered")


# Delete one row


def test_deleting_a_record_in_the_middle_is_reported_missing(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("delete_middle")
    chain.tamper("DELETE FROM audit.records WHERE seq = 7")
    assert_broken_at(chain, capsys, 7, because="missing")


def test_deleting_the_last_record_is_reported_missing(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("delete_last")
    chain.tamper(f"DELETE FROM audit.records WHERE seq = {LENGTH}")
    assert_broken_at(chain, capsys, LENGTH, because="missing")


# Insert one


def test_a_forged_record_appended_after_the_end_is_caught(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("insert_end")
    last = chain.hash_of(LENGTH)
    forgery = forged(LENGTH + 1, last, at(LENGTH + 1), entry(LENGTH + 1))
    chain.tamper(
        forgery,
        ("UPDATE audit.chain_head SET seq = $1, hash = $2 WHERE id = 1", LENGTH + 1, forgery[-1]),
    )
    assert_broken_at(chain, capsys, LENGTH + 1, because="altered")


def test_a_forged_record_inserted_in_the_middle_is_caught(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("insert_middle")
    shift = 1_000_000  # out of the way first, so no two records share a seq on the way
    chain.tamper(
        f"UPDATE audit.records SET seq = seq + {shift} WHERE seq >= 7",
        f"UPDATE audit.records SET seq = seq - {shift} + 1 WHERE seq >= {shift}",
        forged(7, chain.hash_of(6), at(6) + timedelta(minutes=30), entry(6, request="x")),
        f"UPDATE audit.chain_head SET seq = {LENGTH + 1} WHERE id = 1",
    )
    assert sql(chain.url, "SELECT count(*) AS n FROM audit.records")[0]["n"] == LENGTH + 1
    assert_broken_at(chain, capsys, 7, because="altered")


# Swap two


def test_swapping_the_contents_of_two_records_is_caught_at_the_first(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("swap_contents")
    chain.tamper(
        "UPDATE audit.records r SET entry = o.entry, at = o.at FROM audit.records o "
        "WHERE (r.seq, o.seq) IN ((5, 9), (9, 5))"
    )
    swapped = sql(chain.url, "SELECT entry->>'requestId' AS id FROM audit.records ORDER BY seq")
    assert [r["id"] for r in swapped][4:9] == ["r9", "r6", "r7", "r8", "r5"]
    assert_broken_at(chain, capsys, 5, because="altered")


def test_swapping_the_places_of_two_records_is_caught_at_the_first(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("swap_seq")
    chain.tamper(
        "UPDATE audit.records SET seq = seq + 1000000 WHERE seq IN (5, 6)",
        "UPDATE audit.records SET seq = 1000011 - seq WHERE seq >= 1000000",
    )
    swapped = sql(chain.url, "SELECT entry->>'requestId' AS id FROM audit.records ORDER BY seq")
    assert [r["id"] for r in swapped][3:7] == ["r4", "r6", "r5", "r7"]
    assert_broken_at(chain, capsys, 5, because="does not follow")


# `audit verify` itself


def test_audit_verify_reports_an_intact_chain(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("cli_intact")
    done = chain.cli_verify(capsys)
    assert done.code == 0, done
    assert "audit chain intact" in done.out
    assert f"{LENGTH} records; head record {LENGTH}, hash {chain.hash_of(LENGTH).hex()}" in done.out
    assert "BROKEN" not in done.out


def test_audit_verify_names_the_altered_record(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("cli_broken")
    chain.tamper(
        'UPDATE audit.records SET entry = entry || \'{"outcome": "denied"}\' WHERE seq = 7'
    )
    done = chain.cli_verify(capsys)
    assert done.code == 1, done
    assert "BROKEN at record 7" in done.out
    assert "intact" not in done.out


def test_audit_verify_with_the_wrong_key_fails_at_record_1(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    chain = make_chain("cli_wrong_key")
    done = chain.cli_verify(capsys, write_key(tmp_path / "other.key", OTHER_KEY))
    assert done.code == 1, done
    assert "BROKEN at record 1:" in done.out
    assert chain.verify(OTHER_KEY).broken_at == 1


@pytest.mark.parametrize(
    ("case", "content", "message"),
    [
        ("missing", None, "cannot read the audit key"),
        ("not_hex", "not a key\n", "cannot read the audit key"),
        ("short", "ab" * 16 + "\n", "must be at least 32 bytes"),
    ],
)
def test_audit_verify_with_an_unusable_key_file_exits_2_without_a_traceback(
    server_url: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    case: str,
    content: str | None,
    message: str,
):
    path = tmp_path / f"{case}.key"
    if content is not None:
        path.write_text(content, "ascii")
    done = cli(capsys, "audit", "verify", "--database-url", server_url, "--key-file", str(path))
    assert done.code == 2, done
    assert done.err.startswith("bma-gateway: ") and message in done.err, done
    assert str(path) in done.err
    assert "Traceback" not in done.err + done.out


# `audit export`


def export(
    chain: Chain, capsys: pytest.CaptureFixture[str], path: Path, form: str, *window: str
) -> Cli:
    return cli(
        capsys,
        "audit",
        "export",
        "--database-url",
        chain.url,
        "--format",
        form,
        *window,
        "--output",
        str(path),
    )


WINDOW = ("--since", "2026-01-01T05:00:00Z", "--until", "2026-01-01T09:00")  # naive means UTC
IN_WINDOW = [5, 6, 7, 8]  # since inclusive, until exclusive


def test_audit_export_jsonl_writes_exactly_the_records_of_the_time_range(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    chain = make_chain("export_jsonl")
    path = tmp_path / "audit.jsonl"
    done = export(chain, capsys, path, "jsonl", *WINDOW)
    assert done.code == 0, done
    assert f"{len(IN_WINDOW)} records exported" in done.err
    assert done.out == ""  # the records went to the file, not stdout
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert [line["seq"] for line in lines] == IN_WINDOW
    for n, line in zip(IN_WINDOW, lines, strict=True):
        assert line == {
            "seq": n,
            "at": at(n).isoformat(timespec="microseconds"),
            **entry(n),
            "hash": chain.hash_of(n).hex(),
        }
    assert lines[0]["organisation"] == "สำนักงานเขตพระนคร"  # UTF-8, not escaped away


def test_audit_export_without_a_range_writes_every_record(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    chain = make_chain("export_all")
    path = tmp_path / "all.jsonl"
    assert export(chain, capsys, path, "jsonl").code == 0
    seqs = [json.loads(line)["seq"] for line in path.read_text("utf-8").splitlines()]
    assert seqs == list(range(1, LENGTH + 1))


def test_audit_export_csv_has_the_export_columns_and_lists_as_json(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    chain = make_chain("export_csv")
    path = tmp_path / "audit.csv"
    done = export(chain, capsys, path, "csv", *WINDOW)
    assert done.code == 0, done
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == list(EXPORT_COLUMNS)
        rows = list(reader)
    assert [int(row["seq"]) for row in rows] == IN_WINDOW
    for n, row in zip(IN_WINDOW, rows, strict=True):
        expected = entry(n)
        assert row["at"] == at(n).isoformat(timespec="microseconds")
        assert row["hash"] == chain.hash_of(n).hex()
        for column in ("fields", "records", "subjects"):
            assert json.loads(row[column]) == expected[column]
        assert row["organisation"] == expected["organisation"]
        assert row["lawfulBasis"] == expected["lawfulBasis"]
        assert row["credentialId"] == ""  # null is an empty cell


def verified(url: str) -> Verification:
    """The store's chain, verified on a connection of its own."""

    async def check() -> Verification:
        conn = await asyncpg.connect(url)
        try:
            return await verify(conn, KEY)
        finally:
            await conn.close()

    return run(check())


# Writers running at once


def test_two_writers_at_once_keep_one_unbroken_chain(server_url: str):
    url = fresh_database(server_url, "bmatest_chain_writers")
    per_writer = 150

    async def scenario() -> list[int]:
        # Each writer has its own pool, as two gateway processes would.
        writers = [AuditWriter(url, KEY, batch_max=8) for _ in range(2)]
        await asyncio.gather(*(w.start() for w in writers))  # both may create the store
        try:
            seqs = await asyncio.gather(
                *(
                    writer.record(entry(n, request=name))
                    for n in range(1, per_writer + 1)
                    for writer, name in zip(writers, ("a", "b"), strict=True)
                )
            )
        finally:
            for writer in writers:
                await writer.stop()
        return list(seqs)

    seqs = run(scenario())
    result = verified(url)
    assert len(set(seqs)) == 2 * per_writer
    of_a = sorted(seqs[0::2])  # the order of the gather: a1, b1, a2, b2, …
    assert of_a != list(range(of_a[0], of_a[0] + per_writer))  # the writers really contended
    assert sorted(seqs) == list(range(1, 2 * per_writer + 1))
    assert result.intact, result
    assert (result.records, result.head_seq) == (2 * per_writer, 2 * per_writer)
    ids = sql(url, "SELECT entry->>'requestId' AS id FROM audit.records")
    expected = {f"{name}{n}" for name in "ab" for n in range(1, per_writer + 1)}
    assert sorted(r["id"] for r in ids) == sorted(expected)


class StuckFirstBatch(AuditWriter):
    """A fault: the first batch's write never returns (a store that stopped answering)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stuck = asyncio.Event()

    async def _append(self, batch: list[Any]) -> bool:
        if not self.stuck.is_set():
            self.stuck.set()
            await asyncio.Event().wait()
        return await super()._append(batch)


def test_a_writer_whose_request_is_cancelled_hands_the_waiting_records_on(server_url: str):
    """The request writing a batch gives up (cancelled) while other records wait for the
    next batch: they are still written — nobody waits for a writer that is gone."""
    url = fresh_database(server_url, "bmatest_chain_cancelled")

    async def scenario() -> list[int]:
        writer = StuckFirstBatch(url, KEY)
        await writer.start()
        try:
            leader = asyncio.create_task(writer.record(entry(1, request="leader")))
            await writer.stuck.wait()  # the leader's batch is being written
            waiting = [asyncio.create_task(writer.record(entry(n))) for n in (2, 3)]
            await asyncio.sleep(0)
            leader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await leader
            async with asyncio.timeout(10):
                seqs = await asyncio.gather(*waiting)
        finally:
            await writer.stop()
        return list(seqs)

    seqs = run(scenario())
    result = verified(url)
    assert seqs == [1, 2]
    assert result.intact and result.records == 2, result
    ids = sql(url, "SELECT entry->>'requestId' AS id FROM audit.records ORDER BY seq")
    assert [r["id"] for r in ids] == ["r2", "r3"]


# A live chain


def test_verifying_while_a_writer_appends_is_no_false_alarm(
    make_chain: Callable[[str], Chain], monkeypatch: pytest.MonkeyPatch
):
    """A gateway commits a record after verify() read the head, before it reads the records:
    verify() checks the snapshot it started with, and finds it whole."""
    chain = make_chain("live")
    walk = audit_store._ChainWalk

    def after_an_append(key: bytes, head_seq: int, head_hash: bytes) -> audit_store._ChainWalk:
        async def commit_one() -> None:
            writer = await asyncpg.connect(chain.url)
            try:
                await append(writer, KEY, [(at(LENGTH + 1), entry(LENGTH + 1))])
            finally:
                await writer.close()

        # verify() runs in its own event loop (chain.verify): commit from another thread.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(run, commit_one()).result()
        return walk(key, head_seq, head_hash)

    monkeypatch.setattr(audit_store, "_ChainWalk", after_an_append)
    result = chain.verify()
    assert result.intact, result
    assert result.records == LENGTH
    monkeypatch.undo()
    assert chain.verify().records == LENGTH + 1


def test_verify_leaves_the_connection_out_of_its_transaction_after_a_break(
    make_chain: Callable[[str], Chain],
):
    chain = make_chain("connection_after_break")
    chain.tamper("DELETE FROM audit.records WHERE seq = 7")

    async def check() -> tuple[int | None, bool]:
        conn = await asyncpg.connect(chain.url)
        try:
            result = await verify(conn, KEY)
            return result.broken_at, conn.is_in_transaction()
        finally:
            await conn.close()

    broken_at, in_transaction = run(check())
    assert broken_at == 7
    assert not in_transaction


# `audit keygen`


def test_audit_keygen_writes_an_owner_only_key_and_never_overwrites_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = tmp_path / "secrets" / "audit.key"  # the folder is made too
    done = cli(capsys, "audit", "keygen", str(path))
    assert done.code == 0, done
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_key(path)
    assert len(key) == audit_store.KEY_BYTES
    written = path.read_bytes()

    again = cli(capsys, "audit", "keygen", str(path))
    assert again.code == 2, again
    assert "never overwritten" in again.err
    assert "Traceback" not in again.err
    assert path.read_bytes() == written
    assert load_key(path) == key
