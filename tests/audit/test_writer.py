"""gateway/audit/writer.py: two writers appending at once (as two gateway processes would)
keep one unbroken chain, straight to PostgreSQL and behind PgBouncer; records waiting behind
a batch whose request was cancelled are still written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pgbouncer import DatabaseRoute, server_sessions

from gateway.audit.writer import AuditWriter
from support import CHAIN_KEY, audit_entry, fresh_database, run, sql, verified


def test_two_writers_at_once_keep_one_unbroken_chain(server_url: str, route: DatabaseRoute):
    url = fresh_database(server_url, f"bmatest_chain_writers_{route.mode}")
    per_writer = 150
    if route.bouncer is not None:
        # PgBouncer opens its server connections for the new database now, not one at a time
        # while the writers wait.
        run(server_sessions(route.url(url)))

    async def scenario() -> list[int]:
        # Each writer has its own pool, as two gateway processes would.
        # Behind PgBouncer their connections share its few server connections.
        writers = [
            AuditWriter(route.url(url), CHAIN_KEY, batch_max=8, pgbouncer=route.mode)
            for _ in range(2)
        ]
        await asyncio.gather(*(w.start() for w in writers))  # both may create the store
        pairs = [
            (writer, audit_entry(n, request=name))
            for n in range(per_writer)
            for writer, name in zip(writers, ("a", "b"), strict=True)
        ]
        try:
            seqs = await asyncio.gather(*(w.record(e) for w, e in pairs))
        finally:
            for writer in writers:
                await writer.stop()
        return list(seqs)

    seqs = run(scenario())
    result = verified(url)
    assert len(set(seqs)) == 2 * per_writer
    of_a = sorted(seqs[0::2])  # the order of the gather: a0, b0, a1, b1, …
    if route.bouncer is None:  # the writers really contended
        assert of_a != list(range(of_a[0], of_a[0] + per_writer))
    # (Behind PgBouncer, which writer's transaction goes first is PgBouncer's to decide: in
    # about one run in ten, one writer waited for the head until the other had written all
    # its records. The chain holds either way.)
    assert sorted(seqs) == list(range(1, 2 * per_writer + 1))
    assert result.intact, result
    assert (result.records, result.head_seq) == (2 * per_writer, 2 * per_writer)
    ids = sql(url, "SELECT entry->>'requestId' AS id FROM audit.records")
    expected = {f"{name}{n}" for name in "ab" for n in range(per_writer)}
    assert sorted(r["id"] for r in ids) == sorted(expected)
    if route.bouncer is not None:  # and no writer left its role on a server connection
        assert {c for _, c in run(server_sessions(route.url(url)))} == {"postgres"}


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
        writer = StuckFirstBatch(url, CHAIN_KEY)
        await writer.start()
        try:
            leader = asyncio.create_task(writer.record(audit_entry(1, request="leader")))
            await writer.stuck.wait()  # the leader's batch is being written
            waiting = [asyncio.create_task(writer.record(audit_entry(n))) for n in (2, 3)]
            await asyncio.sleep(0)  # one turn of the event loop, no time: both queue their records
            assert writer.depth == 2  # and wait for the next batch
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
