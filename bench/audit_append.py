"""What an audit append costs in PgBouncer's transaction mode against the plain one.

    python -m bench.audit_append --database-url URL [--pgbouncer-url URL] [--records 2000]

A real ``AuditWriter`` appends to a fresh audit store (database ``bma_bench_append`` on the
server of ``--database-url``): one client at a time (every record its own batch: the cost
of one append, as a quiet gateway pays it) and eight at once (batches, as a busy one does).
Modes: ``off`` straight to PostgreSQL (the session takes the writer role once, a batch is
one statement); ``transaction`` straight to PostgreSQL (each batch its own transaction with
``SET LOCAL ROLE``: the mode's own cost); and, with ``--pgbouncer-url`` (the same server
behind PgBouncer in transaction mode), ``transaction`` through it. Rounds alternate the modes
so drift hits all; the figures are medians. Prints them; they are quoted in
docs/operations.md ("Behind PgBouncer").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from connectors.pg import PgBouncerMode
from gateway.audit.writer import AuditWriter
from gateway.demo.embedded import database_url

STORE = "bma_bench_append"
KEY = bytes(range(32))
ENTRY = {"requestId": "r", "subject": "officer", "fields": [], "records": ["owner:1"]}


async def fresh_store(server: str) -> str:
    conn = await asyncpg.connect(database_url(server, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{STORE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{STORE}"')
    finally:
        await conn.close()
    return database_url(server, STORE)


async def rate(url: str, mode: PgBouncerMode, records: int, clients: int) -> float:
    """Records committed per second by ``clients`` concurrent requests."""
    writer = AuditWriter(url, KEY, pgbouncer=mode)
    await writer.start()
    await writer.record(ENTRY)  # connected, the head known: not part of the figure
    per_client = records // clients

    async def client() -> None:
        for _ in range(per_client):
            await writer.record({**ENTRY, "at": datetime.now(UTC).isoformat()})

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    await writer.stop()
    return per_client * clients / elapsed


def via(pgbouncer_url: str, store: str) -> str:
    """The store's database through PgBouncer."""
    return urlunsplit(urlsplit(pgbouncer_url)._replace(path=urlsplit(store).path))


async def main(server: str, pgbouncer_url: str | None, records: int, rounds: int) -> None:
    store = await fresh_store(server)
    routes: list[tuple[str, str, PgBouncerMode]] = [
        ("off, direct", store, "off"),
        ("transaction, direct", store, "transaction"),
    ]
    if pgbouncer_url:
        routes.append(("transaction, PgBouncer", via(pgbouncer_url, store), "transaction"))
    for clients in (1, 8):
        figures: dict[str, list[float]] = {name: [] for name, _, _ in routes}
        for _ in range(rounds):
            for name, url, mode in routes:
                figures[name].append(await rate(url, mode, records, clients))
        base = statistics.median(figures[routes[0][0]])
        for name, values in figures.items():
            median = statistics.median(values)
            print(
                f"{clients} client(s)  {name:24} {median:8.0f} records/s  "
                f"{1000 / median * clients:6.2f} ms/append  x{median / base:.2f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pgbouncer-url", help="the same server behind PgBouncer")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.database_url, args.pgbouncer_url, args.records, args.rounds))
