"""What auditing costs the gateway as clients see it: restricted queries over HTTP.

    python -m bench.audit_http [--database-url URL] [--seconds 5] [--rounds 6] [--concurrency 8]

Two gateway processes on the same seeded data and Traffy stand-in: one audits (a real
``AuditWriter`` on a fresh audit store, database ``bma_bench_audit_http``), the other is the
same gateway with an audit writer that writes nothing (``bench.serve gateway-unaudited``).
A finance officer's token (the embedded issuer) asks each in turn, round after round,
alternating which goes first, with the same closed-loop client; the figure is the ratio of
median throughputs. Writes docs/benchmarks.md between AUDIT_HTTP markers.
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
from datetime import timedelta
from pathlib import Path

import asyncpg

from bench.common import publish, seeded_databases
from bench.run import load, start
from gateway.audit_store import create_key
from gateway.demo.embedded import database_url
from gateway.issuer import EmbeddedIssuer
from gateway.settings import Settings

STORE = "bma_bench_audit_http"
CASES = {
    "one parcel with owner (3 restricted values)": (
        "query($id: ID!) { parcel(id: $id) { id appraisedValue owner { name nationalId } } }",
        True,
    ),
    "100 parcels with owners (300 restricted values)": (
        "{ parcels(first: 100) { edges { node { id appraisedValue owner { name nationalId } } } } }",
        False,
    ),
}


async def fresh_store(tax_url: str) -> tuple[str, list[str]]:
    conn = await asyncpg.connect(database_url(tax_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{STORE}"')
        await conn.execute(f'CREATE DATABASE "{STORE}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(tax_url)
    try:
        ids = [str(r["id"]) for r in await conn.fetch("SELECT id FROM tax.parcels")]
    finally:
        await conn.close()
    random.Random(7).shuffle(ids)
    return database_url(tax_url, STORE), ids


def requester(url: str, token: str, query: str, ids: list[str] | None):
    counter = itertools.count()
    headers = {"authorization": f"Bearer {token}"}

    def call(client):
        variables = {"id": ids[next(counter) % len(ids)]} if ids else None
        return client.post(
            url + "/graphql", json={"query": query, "variables": variables}, headers=headers
        )

    return call


def measure(
    audited: str, unaudited: str, token: str, ids: list[str], args: argparse.Namespace
) -> list[tuple[str, float, float, list[float]]]:
    rows = []
    for name, (query, by_id) in CASES.items():
        on_call = requester(audited, token, query, ids if by_id else None)
        off_call = requester(unaudited, token, query, ids if by_id else None)
        for call in (on_call, off_call):  # warm pools, plans and the store
            asyncio.run(load(call, 1, args.concurrency))
        on, off = [], []
        for round_ in range(args.rounds):
            pair = [(on, on_call), (off, off_call)]
            for results, call in pair if round_ % 2 else reversed(pair):
                results.append(asyncio.run(load(call, args.seconds, args.concurrency)).throughput)
        ratios = [a / b for a, b in zip(on, off, strict=True)]
        rows.append((name, statistics.median(off), statistics.median(on), ratios))
    return rows


def report(rows: list[tuple[str, float, float, list[float]]], args: argparse.Namespace) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, client, both gateways "
        f"and PostgreSQL on one machine; {args.concurrency} clients in a closed loop, medians of "
        f"{args.rounds} alternating rounds of {args.seconds:g} s (in brackets: the range of the "
        "rounds' ratios).",
        "",
        "| operation (finance officer, over HTTP) | req/s, auditing off | req/s, auditing on | on / off throughput |",
        "|---|---:|---:|---:|",
    ]
    for name, off, on, ratios in rows:
        lines.append(
            f"| {name} | {off:.0f} | {on:.0f} | {on / off:.0%} ({min(ratios):.0%}–{max(ratios):.0%}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-write", action="store_true", help="print, don't update the docs")
    args = parser.parse_args()
    urls, handle = seeded_databases(args.database_url)
    store_url, ids = asyncio.run(fresh_store(urls.tax))
    keys = Path(tempfile.mkdtemp(prefix="bma-bench-keys-"))
    create_key(keys / "audit.key")
    issuer = EmbeddedIssuer.open(keys / "issuer.pem")
    token = issuer.issue(
        "agency",
        "bma-finance",
        "tax:read tax:personal",
        "confidential",
        purpose="tax-collection",
        ttl=timedelta(hours=2),
    )
    env = {**os.environ, "BMA_TRAFFY_DATABASE_URL": urls.traffy}
    processes = []
    try:
        traffy, traffy_url = start("traffy", env)
        processes.append(traffy)
        settings = Settings(
            urls.tax,
            urls.registry,
            traffy_url,
            gateway_database_url=store_url,
            audit_key_file=keys / "audit.key",
            issuer_key_file=keys / "issuer.pem",
            rate_limits=None,  # measured here: auditing, not the rate limiter
        )
        env.update(settings.to_env())
        audited, audited_url = start("gateway", env)
        processes.append(audited)
        unaudited, unaudited_url = start("gateway-unaudited", env)
        processes.append(unaudited)
        rows = measure(audited_url, unaudited_url, token, ids, args)
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        del handle
    publish("AUDIT_HTTP", "bench.audit_http", sys.argv[1:], report(rows, args), not args.no_write)


if __name__ == "__main__":
    main()
