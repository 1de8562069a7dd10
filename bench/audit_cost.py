"""What auditing costs: restricted queries with the audit writer on and off.

    python -m bench.audit_cost [--database-url URL] [--rounds 24] [--clients 8]

In one process against the seeded data (the Traffy stand-in in its own process), a finance
officer's restricted queries run through the gateway's Executor from several concurrent
clients, each running the operation in a loop. With auditing on, every operation's entry goes
to a real ``AuditWriter`` on a fresh audit store (database ``bma_bench_audit`` on the same
PostgreSQL server, a new chain key) and the operation answers once its record is committed;
with auditing off, the same Executor hands the entry to ``NullAudit``, which returns at once.
Rounds alternate on and off so drift hits both; the figures are median throughputs and their
ratio. Writes docs/benchmarks.md between AUDIT markers.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import NullAudit, publish, seeded_databases, start
from connectors.cache import DEFAULT_TTLS
from gateway.audit import store as audit_store
from gateway.audit.trail import Caller
from gateway.audit.writer import AuditWriter
from gateway.demo.embedded import database_url
from gateway.execution import executor as execution
from gateway.execution.executor import Executor, Operation
from gateway.http.app import connectors_from
from gateway.settings import Settings
from policies.model import load_policy
from policies.principal import Level, Principal
from schema import Connectors, graphql_schema

AUDIT_DATABASE = "bma_bench_audit"
FINANCE = Principal(
    "agency",
    "bench-finance",
    "bma-finance",
    Level.CONFIDENTIAL,
    frozenset({"tax:read", "tax:personal"}),
    purpose="tax-collection",
)


@dataclass(frozen=True)
class Case:
    name: str
    query: str
    by_id: bool  # takes a parcel id, a different one every operation
    per_client: int  # operations each client runs per round
    crowd: int = 1  # clients: this many times --clients


ONE_PARCEL = "query($id: ID!) { parcel(id: $id) { id appraisedValue owner { name nationalId } } }"
CASES = [
    Case("one parcel with owner, varying ids (3 restricted values)", ONE_PARCEL, True, 150),
    # The same with four times the clients: more records wait while a batch commits.
    Case("the same, 4x the clients", ONE_PARCEL, True, 40, crowd=4),
    Case(
        "100 parcels with owners (300 restricted values)",
        "{ parcels(first: 100) { edges { node { id appraisedValue owner { name nationalId } } } } }",
        False,
        10,
    ),
]


class CountingWriter(AuditWriter):
    """The real writer, noting how many records each of its transactions commits and how
    long the transaction took (wall time, round trips to PostgreSQL included)."""

    def __init__(self, dsn: str, key: bytes) -> None:
        super().__init__(dsn, key)
        self.batches: list[int] = []
        self.seconds: list[float] = []

    async def _write(self, batch: list[Any]) -> None:
        self.batches.append(len(batch))
        began = time.perf_counter()
        try:
            await super()._write(batch)
        finally:
            self.seconds.append(time.perf_counter() - began)


class EntryTimer:
    """Wraps ``access_entry`` to time it: building the entry happens in both arms (NullAudit
    still receives one), so it is not in the on/off ratio and is reported beside it."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, *args: Any) -> dict[str, Any]:
        began = time.perf_counter()
        try:
            return _access_entry(*args)
        finally:
            self.seconds += time.perf_counter() - began
            self.calls += 1


_access_entry = execution.access_entry


@dataclass
class Row:
    case: Case
    clients: int
    on: float  # median operations per second
    off: float
    ratios: list[float]  # on / off of each round's pair
    cpu_on: float  # median CPU per operation, µs
    cpu_off: float
    batches: list[int]  # records per audit transaction during the measured rounds
    commit_ms: float  # mean wall time of one audit transaction
    entry_us: float  # building one audit entry, microseconds


async def fresh_store(tax_url: str) -> str:
    """Drop and create the bench's audit store database; its URL."""
    conn = await asyncpg.connect(database_url(tax_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{AUDIT_DATABASE}"')
        await conn.execute(
            f"CREATE DATABASE \"{AUDIT_DATABASE}\" ENCODING 'UTF8' TEMPLATE template0"
        )
    finally:
        await conn.close()
    return database_url(tax_url, AUDIT_DATABASE)


async def parcel_ids(tax_url: str) -> list[str]:
    conn = await asyncpg.connect(tax_url)
    try:
        ids = [str(r["id"]) for r in await conn.fetch("SELECT id FROM tax.parcels")]
    finally:
        await conn.close()
    random.Random(7).shuffle(ids)
    return ids


@dataclass
class Measured:
    throughput: float  # operations per second
    cpu_us: float  # this process's CPU per operation (the audit store's work is not in it)


async def throughput(
    executor: Executor, connectors: Connectors, case: Case, ids: list[str], clients: int
) -> Measured:
    """Operations per second of ``clients`` concurrent loops of ``case.per_client`` each."""
    counter = itertools.count()

    async def client() -> None:
        for _ in range(case.per_client):
            n = next(counter)
            variables = {"id": ids[n % len(ids)]} if case.by_id else None
            caller = Caller(FINANCE, f"bench-{n}", "127.0.0.1")
            outcome = await executor.run(Operation(case.query, variables), caller)
            assert outcome.status == 200 and "errors" not in outcome.body, outcome.body
            assert any(outcome.body["data"].values()), outcome.body

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    operations = clients * case.per_client
    return Measured(
        operations / (time.perf_counter() - began),
        (time.process_time() - cpu) / operations * 1e6,
    )


async def measure(
    connectors: Connectors, tax_url: str, store_url: str, key: bytes, rounds: int, base_clients: int
) -> list[Row]:
    schema, policy = graphql_schema(), load_policy()
    ids = await parcel_ids(tax_url)
    writer = CountingWriter(store_url, key)
    await writer.start()
    audited = Executor(schema, policy, writer, connectors)
    unaudited = Executor(schema, policy, NullAudit(), connectors)
    timer = EntryTimer()
    execution.access_entry = timer  # in this process only; restored below
    rows, operations = [], 0
    try:
        for case in CASES:
            clients = base_clients * case.crowd
            for _ in range(2):  # warm pools, caches, plans and the store's indexes
                await throughput(audited, connectors, case, ids, clients)
                await throughput(unaudited, connectors, case, ids, clients)
            start = len(writer.batches)
            timer.calls, timer.seconds = 0, 0.0
            on, off = [], []
            for i in range(rounds):
                # Swap the order every round: whichever runs second inherits the first's garbage.
                if i % 2:
                    off.append(await throughput(unaudited, connectors, case, ids, clients))
                    on.append(await throughput(audited, connectors, case, ids, clients))
                else:
                    on.append(await throughput(audited, connectors, case, ids, clients))
                    off.append(await throughput(unaudited, connectors, case, ids, clients))
            entry_us = timer.seconds / timer.calls * 1e6
            batches = writer.batches[start:]
            commit_ms = statistics.fmean(writer.seconds[start:]) * 1000
            rows.append(
                Row(
                    case,
                    clients,
                    statistics.median(m.throughput for m in on),
                    statistics.median(m.throughput for m in off),
                    [a.throughput / b.throughput for a, b in zip(on, off, strict=True)],
                    statistics.median(m.cpu_us for m in on),
                    statistics.median(m.cpu_us for m in off),
                    batches,
                    commit_ms,
                    entry_us,
                )
            )
            operations += (2 + rounds) * clients * case.per_client
    finally:
        execution.access_entry = _access_entry
        await writer.stop()
    await check_store(store_url, key, operations, len(writer.batches))
    return rows


async def check_store(store_url: str, key: bytes, records: int, commits: int) -> None:
    """Every audited operation left one record, in as many transactions as the writer counted,
    and the chain verifies."""
    conn = await asyncpg.connect(store_url)
    try:
        verified = await audit_store.verify(conn, key)
        assert verified.intact, verified.reason
        assert verified.records == records, (verified.records, records)
        # Rows inserted by one transaction share its xmin.
        found = await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM audit.records")
        assert found == commits, (found, commits)
    finally:
        await conn.close()
    print(f"audit store: {records} records in {commits} transactions, chain intact")


def report(rows: list[Row], server: str, rounds: int) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, PostgreSQL {server} "
        "(upstream data and audit store); concurrent clients in a closed loop, medians of "
        f"{rounds} alternating rounds (in brackets: quartiles of the rounds' on / off ratios).",
        "",
        "| operation (finance officer) | clients | ops/s, auditing off | ops/s, auditing on "
        "| on / off throughput | time per operation | CPU µs per operation, off | on "
        "| records per audit commit, mean (max) | audit commit, ms "
        "| building the entry (both arms), µs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = row.on / row.off
        q1, _, q3 = statistics.quantiles(row.ratios, n=4)
        mean = statistics.fmean(row.batches)
        lines.append(
            f"| {row.case.name} | {row.clients} | {row.off:.0f} | {row.on:.0f} "
            f"| {ratio:.0%} ({q1:.0%}–{q3:.0%}) "
            f"| {1 / ratio - 1:+.1%} | {row.cpu_off:.0f} | {row.cpu_on:.0f} "
            f"| {mean:.1f} ({max(row.batches)}) "
            f"| {row.commit_ms:.2f} | {row.entry_us:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--no-write", action="store_true", help="print, don't update the docs")
    args = parser.parse_args()
    urls, handle = seeded_databases(args.database_url)
    env = {**os.environ, "BMA_TRAFFY_DATABASE_URL": urls.traffy}
    traffy, traffy_url = start("traffy", env)
    try:
        connectors = connectors_from(
            Settings(
                tax_database_url=urls.tax,
                registry_database_url=urls.registry,
                finance_database_url=urls.finance,
                traffy_base_url=traffy_url,
                # Executed every time: the response cache would answer open data instead.
                cache_ttls={**DEFAULT_TTLS, "response": 0},
            )
        )

        async def go() -> list[Row]:
            store_url = await fresh_store(urls.tax)
            with tempfile.TemporaryDirectory() as keys:
                key_file = Path(keys) / "audit.key"
                audit_store.create_key(key_file)
                key = audit_store.load_key(key_file)
            await asyncio.gather(*(c.start() for c in connectors.all()))
            try:
                return await measure(
                    connectors, urls.tax, store_url, key, args.rounds, args.clients
                )
            finally:
                await asyncio.gather(*(c.stop() for c in connectors.all()))

        rows = asyncio.run(go())
    finally:
        traffy.terminate()
        traffy.wait(10)
        del handle
    server = "given by --database-url" if args.database_url else "embedded"
    publish(
        "AUDIT",
        "bench.audit_cost",
        sys.argv[1:],
        report(rows, server, args.rounds),
        not args.no_write,
    )


if __name__ == "__main__":
    main()
