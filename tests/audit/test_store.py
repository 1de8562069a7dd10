"""gateway/audit/store.py, the hash-chained audit store: an untouched log verifies clean; a
hostile database administrator who changes, deletes, inserts or swaps records is caught at
exactly the record touched, both by `audit_store.verify` and by `audit verify`; verifying a
live chain raises no false alarm. (The writer: tests/audit/test_writer.py; `bma-gateway
audit`'s other commands: tests/cli/test_audit.py.)

Each test builds its own chain in a fresh database. Tampering runs as a superuser with
``session_replication_role = replica``, which silences the append-only triggers, as a DBA
bent on rewriting history could.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from gateway.audit import store as audit_store
from gateway.audit.store import Verification, append, canonical, chain_hash, ensure_store, verify
from support import (
    CHAIN_KEY,
    CHAIN_LENGTH,
    OTHER_CHAIN_KEY,
    Chain,
    Statement,
    audit_entry,
    fresh_database,
    record_at,
    run,
    sql,
)


def forged(seq: int, prev: bytes, when: datetime, content: dict[str, Any]) -> Statement:
    """An INSERT of a plausible record, linked to ``prev`` but sealed without the chain key."""
    digest = chain_hash(OTHER_CHAIN_KEY, prev, seq, when, content)
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
    assert (result.records, result.head_seq, result.broken_at) == (CHAIN_LENGTH, CHAIN_LENGTH, None)
    assert result.head_hash == chain.hash_of(CHAIN_LENGTH).hex()
    stored = sql(chain.url, "SELECT seq, entry::text AS entry FROM audit.records ORDER BY seq")
    assert [r["seq"] for r in stored] == list(range(1, CHAIN_LENGTH + 1))
    assert json.loads(stored[6]["entry"]) == audit_entry(7)  # Thai text and nulls kept as written


def test_an_empty_store_verifies_intact(server_url: str):
    url = fresh_database(server_url, "bmatest_chain_empty")

    async def check() -> Verification:
        conn = await asyncpg.connect(url)
        try:
            await ensure_store(conn)
            return await verify(conn, CHAIN_KEY)
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
    chain.tamper(f"DELETE FROM audit.records WHERE seq = {CHAIN_LENGTH}")
    assert_broken_at(chain, capsys, CHAIN_LENGTH, because="missing")


# Insert one


def test_a_forged_record_appended_after_the_end_is_caught(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("insert_end")
    last = chain.hash_of(CHAIN_LENGTH)
    forgery = forged(
        CHAIN_LENGTH + 1, last, record_at(CHAIN_LENGTH + 1), audit_entry(CHAIN_LENGTH + 1)
    )
    chain.tamper(
        forgery,
        (
            "UPDATE audit.chain_head SET seq = $1, hash = $2 WHERE id = 1",
            CHAIN_LENGTH + 1,
            forgery[-1],
        ),
    )
    assert_broken_at(chain, capsys, CHAIN_LENGTH + 1, because="altered")


def test_a_forged_record_inserted_in_the_middle_is_caught(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("insert_middle")
    shift = 1_000_000  # out of the way first, so no two records share a seq on the way
    chain.tamper(
        f"UPDATE audit.records SET seq = seq + {shift} WHERE seq >= 7",
        f"UPDATE audit.records SET seq = seq - {shift} + 1 WHERE seq >= {shift}",
        forged(
            7, chain.hash_of(6), record_at(6) + timedelta(minutes=30), audit_entry(6, request="x")
        ),
        f"UPDATE audit.chain_head SET seq = {CHAIN_LENGTH + 1} WHERE id = 1",
    )
    assert sql(chain.url, "SELECT count(*) AS n FROM audit.records")[0]["n"] == CHAIN_LENGTH + 1
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


# A live chain


def test_verifying_while_a_writer_appends_is_no_false_alarm(
    make_chain: Callable[[str], Chain], monkeypatch: pytest.MonkeyPatch
):
    """A gateway commits a record after verify() read the head, before it reads the records:
    verify() checks the snapshot it started with, and finds it whole."""
    chain = make_chain("live")
    walk = audit_store.ChainWalk

    def after_an_append(*args: Any) -> audit_store.ChainWalk:
        async def commit_one() -> None:
            writer = await asyncpg.connect(chain.url)
            try:
                await append(
                    writer,
                    CHAIN_KEY,
                    [(record_at(CHAIN_LENGTH + 1), audit_entry(CHAIN_LENGTH + 1))],
                )
            finally:
                await writer.close()

        # verify() runs in its own event loop (chain.verify): commit from another thread.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(run, commit_one()).result()
        return walk(*args)

    monkeypatch.setattr(audit_store, "ChainWalk", after_an_append)
    result = chain.verify()
    assert result.intact, result
    assert result.records == CHAIN_LENGTH
    monkeypatch.undo()
    assert chain.verify().records == CHAIN_LENGTH + 1


def test_verify_leaves_the_connection_out_of_its_transaction_after_a_break(
    make_chain: Callable[[str], Chain],
):
    chain = make_chain("connection_after_break")
    chain.tamper("DELETE FROM audit.records WHERE seq = 7")

    async def check() -> tuple[int | None, bool]:
        conn = await asyncpg.connect(chain.url)
        try:
            result = await verify(conn, CHAIN_KEY)
            return result.broken_at, conn.is_in_transaction()
        finally:
            await conn.close()

    broken_at, in_transaction = run(check())
    assert broken_at == 7
    assert not in_transaction
