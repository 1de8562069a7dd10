"""What auditing costs the gateway as clients see it: restricted queries over HTTP.

    python -m bench.audit_http [--database-url URL] [--seconds 5] [--rounds 6] [--concurrency 8,32]

Two gateway processes on the same seeded data and Traffy stand-in: one audits (a real
``AuditWriter`` on a fresh audit store, database ``bma_bench_audit_http``), the other is the
same gateway with an audit writer that writes nothing (``bench.serve gateway-unaudited``).
A finance officer's token (the embedded issuer) asks each in turn, round after round,
alternating which goes first, with the same closed-loop client (``bench.http_load``: light
enough that the gateway, not the client, is what runs out of CPU). Each ``--concurrency``
level is a row: the figure is the median of the rounds' on / off throughput ratios, beside
each arm's median latency. Writes docs/benchmarks.md between AUDIT_HTTP markers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import asyncpg

from bench.common import cpu_seconds, publish, seeded_databases, served_settings, start
from bench.http_load import Result, encode_graphql, graphql_ok, load
from gateway.audit.store import create_key
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.embedded import database_url

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


def requests_for(url: str, token: str, query: str, ids: list[str] | None) -> list[bytes]:
    headers = {"authorization": f"Bearer {token}"}
    variables = [{"id": i} for i in ids] if ids else [None]
    return [encode_graphql(url, query, v, headers) for v in variables]


@dataclass
class Arm:
    """One gateway under load: its process, its requests and each round's figures."""

    url: str
    pid: int
    requests: list[bytes]
    results: list[Result] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # the gateway's CPU per request

    def round(self, seconds: float, concurrency: int) -> None:
        began = cpu_seconds(self.pid)
        result = asyncio.run(load(self.url, self.requests, seconds, concurrency, graphql_ok))
        self.cpu_us.append((cpu_seconds(self.pid) - began) / result.requests * 1e6)
        self.results.append(result)


@dataclass
class Row:
    case: str
    concurrency: int
    off: Arm
    on: Arm

    def ratios(self) -> list[float]:
        """Each round's throughput, auditing on over off."""
        pairs = zip(self.on.results, self.off.results, strict=True)
        return [a.throughput / b.throughput for a, b in pairs]

    def median(self, arm: Arm, figure) -> float:
        return statistics.median(figure(r) for r in arm.results)


def measure(
    gateways: dict[str, tuple[str, int]], token: str, ids: list[str], args: argparse.Namespace
) -> list[Row]:
    rows = []
    for concurrency in args.concurrency:
        for name, (query, by_id) in CASES.items():
            on, off = (
                Arm(url, pid, requests_for(url, token, query, ids if by_id else None))
                for url, pid in (gateways["on"], gateways["off"])
            )
            for arm in (on, off):  # warm pools, plans and the store
                asyncio.run(load(arm.url, arm.requests, 1, concurrency, graphql_ok))
            for round_ in range(args.rounds):
                for arm in (on, off) if round_ % 2 else (off, on):
                    arm.round(args.seconds, concurrency)
            rows.append(Row(name, concurrency, off, on))
    return rows


def report(rows: list[Row], args: argparse.Namespace) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, client, both gateways "
        f"and PostgreSQL on one machine; closed-loop connections, medians of {args.rounds} "
        f"alternating rounds of {args.seconds:g} s (in brackets: the range over the rounds). "
        "Gateway CPU: the gateway process's user and system time over a round divided by the "
        "requests it answered (the audit store's own work, in PostgreSQL, is not in it).",
        "",
        "| operation (finance officer, over HTTP) | connections | req/s, auditing off | "
        "req/s, auditing on | on / off throughput | gateway CPU µs per request, off | "
        "gateway CPU µs per request, on | p50 ms, off | p50 ms, on |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratios = row.ratios()
        lines.append(
            f"| {row.case} | {row.concurrency} "
            f"| {row.median(row.off, lambda r: r.throughput):.0f} "
            f"| {row.median(row.on, lambda r: r.throughput):.0f} "
            f"| {statistics.median(ratios):.0%} ({min(ratios):.0%}–{max(ratios):.0%}) "
            f"| {statistics.median(row.off.cpu_us):.0f} | {statistics.median(row.on.cpu_us):.0f} "
            f"| {row.median(row.off, lambda r: r.percentile(0.5)):.1f} "
            f"| {row.median(row.on, lambda r: r.percentile(0.5)):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[8, 32],
        help="connections, comma-separated: one table row per level",
    )
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
        settings = served_settings(urls, traffy_url, store_url, keys)
        env.update(settings.to_env())
        audited, audited_url = start("gateway", env)
        processes.append(audited)
        unaudited, unaudited_url = start("gateway-unaudited", env)
        processes.append(unaudited)
        gateways = {"on": (audited_url, audited.pid), "off": (unaudited_url, unaudited.pid)}
        rows = measure(gateways, token, ids, args)
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        del handle
    publish("AUDIT_HTTP", "bench.audit_http", sys.argv[1:], report(rows, args), not args.no_write)


if __name__ == "__main__":
    main()
