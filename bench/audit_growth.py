"""How much the audit store grows per refused anonymous request (a size, not a timing).

    python -m bench.audit_growth [--database-url URL] [--requests 200]

An anonymous caller asks for restricted fields of a page of 1,000 parcels; every field is
refused, nothing is revealed. The requests run one after another through the gateway's
Executor with a real ``AuditWriter`` on a fresh audit store (database ``bma_bench_growth``),
and the store is measured before and after: ``pg_total_relation_size('audit.records')``
(the table, its TOAST and its indexes, as the disk sees it), the mean ``pg_column_size`` of
an entry (compressed, as stored) and its mean length as JSON text. Prints the figures; they
are quoted in docs/audit.md.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import asyncpg

from bench.common import seeded_databases
from gateway.audit import store as audit_store
from gateway.audit.trail import Caller
from gateway.audit.writer import AuditWriter
from gateway.demo.embedded import database_url
from gateway.execution.executor import Executor, Operation
from gateway.http.app import connectors_from
from gateway.settings import Settings
from policies.model import load_policy
from policies.principal import ANONYMOUS
from schema import graphql_schema

STORE = "bma_bench_growth"
REFUSED = (
    "{ parcels(first: 1000) { edges { node { id appraisedValue owner { name nationalId } } } } }"
)
SIZES = """SELECT pg_total_relation_size('audit.records') AS total,
                  count(*) AS records,
                  coalesce(avg(pg_column_size(entry)), 0)::bigint AS stored,
                  coalesce(avg(octet_length(entry::text)), 0)::bigint AS text
           FROM audit.records"""


async def fresh_store(server: str) -> str:
    conn = await asyncpg.connect(database_url(server, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{STORE}"')
        await conn.execute(f"CREATE DATABASE \"{STORE}\" ENCODING 'UTF8' TEMPLATE template0")
    finally:
        await conn.close()
    return database_url(server, STORE)


async def measure(tax_url: str, registry_url: str, requests: int) -> dict[str, int]:
    store = await fresh_store(tax_url)
    with tempfile.TemporaryDirectory() as keys:
        key_file = Path(keys) / "audit.key"
        audit_store.create_key(key_file)
        key = audit_store.load_key(key_file)
    connectors = connectors_from(
        Settings(
            tax_database_url=tax_url,
            registry_database_url=registry_url,
            finance_database_url=registry_url,  # not asked either: any URL will do
            traffy_base_url="http://127.0.0.1:9",  # not asked: the query reads parcels only
        )
    )
    writer = AuditWriter(store, key)
    await asyncio.gather(*(c.start() for c in connectors.all()))
    await writer.start()
    executor = Executor(graphql_schema(), load_policy(), writer, connectors)
    conn = await asyncpg.connect(store)
    try:
        before = await conn.fetchrow(SIZES)
        for n in range(requests):
            outcome = await executor.run(Operation(REFUSED), Caller(ANONYMOUS, f"g-{n}", "::1"))
            edges = outcome.body["data"]["parcels"]["edges"]
            assert len(edges) == 1000 and edges[0]["node"]["owner"] is None, outcome.body
        await conn.execute("VACUUM audit.records")  # settle the free-space map, not the rows
        after = await conn.fetchrow(SIZES)
    finally:
        await conn.close()
        await writer.stop()
        await asyncio.gather(*(c.stop() for c in connectors.all()))
    assert after["records"] - before["records"] == requests
    return {**after, "grown": after["total"] - before["total"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    urls, handle = seeded_databases(args.database_url)
    try:
        sizes = asyncio.run(measure(urls.tax, urls.registry, args.requests))
    finally:
        del handle
    print(f"query ({len(REFUSED.encode())} bytes): {REFUSED}")
    print(
        f"{args.requests} refused anonymous requests: audit.records grew {sizes['grown']:,} "
        f"bytes, {sizes['grown'] / args.requests:,.0f} bytes per request (table, TOAST and "
        f"indexes); an entry is {sizes['stored']:,} bytes stored, {sizes['text']:,} bytes "
        "as JSON text"
    )


if __name__ == "__main__":
    main()
