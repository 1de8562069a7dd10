"""Benchmarks: the gateway against a hand-written Starlette endpoint, in the same run.

    python -m bench.run [--database-url URL] [--seconds 10] [--concurrency 8] [--only SCENARIO]

Starts PostgreSQL (embedded unless ``--database-url``), seeds it, then the Traffy stand-in,
two gateways — one with its caches off, one with its defaults (response cache and connector
caches in memory) — and the baseline, each in its own process, checks that gateway and
baseline answer the same JSON, and loads each with the same closed-loop client. The cached
gateway is compared with a baseline endpoint that serves the same bytes saved once. Figures
are ratios to the baseline because these machines are noisy; the table is written into
docs/benchmarks.md between the BENCH markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import orjson

from bench.common import ROOT, publish, seeded_databases
from bench.http_load import Result, encode_get, encode_graphql, graphql_ok, load
from connectors.cache import DEFAULT_TTLS
from gateway.http.serving import free_port

DISTRICTS = (
    "{ districts { code nameTh complaintStats { total } taxRevenue(year: 2025) { collected } "
    "businessCount } }"
)
# name: (query, baseline path, which gateway: "uncached" or "cached")
SCENARIOS = {
    "50-district integrated query": (DISTRICTS, "/districts", "uncached"),
    "50-district query, response cache vs saved bytes": (DISTRICTS, "/districts/saved", "cached"),
    "1,000 complaints x 10 fields": (
        "{ complaints(first: 1000) { totalCount edges { node { ticketId type state description address "
        "location { lat lon } reportedAt lastActivityAt photoUrl district { code } } } } }",
        "/complaints",
        "uncached",
    ),
}
# Every cache off: the uncached gateway asks its upstreams for every request.
CACHES_OFF = json.dumps(dict.fromkeys(DEFAULT_TTLS, 0))


def start(kind: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.serve", kind, str(port)], env=env, cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{kind} did not start")


def measure(
    gateways: dict[str, str],
    baseline: str,
    seconds: float,
    concurrency: int,
    only: list[str] | None = None,
) -> list[tuple[str, Result, Result]]:
    rows = []
    for name, (query, path, which) in SCENARIOS.items():
        if only and name not in only:
            continue
        gateway = gateways[which]
        via_gateway = [encode_graphql(gateway, query)]
        via_baseline = [encode_get(baseline, path)]
        same = orjson.loads(
            httpx.post(gateway + "/graphql", json={"query": query}, timeout=60).content
        )
        assert same == orjson.loads(httpx.get(baseline + path, timeout=60).content), (
            f"{name}: answers differ"
        )
        asyncio.run(load(gateway, via_gateway, 1, concurrency, graphql_ok))  # warm caches, pools
        asyncio.run(load(baseline, via_baseline, 1, concurrency))
        base = asyncio.run(load(baseline, via_baseline, seconds, concurrency))
        gw = asyncio.run(load(gateway, via_gateway, seconds, concurrency, graphql_ok))
        rows.append((name, base, gw))
    return rows


def report(rows: list[tuple[str, Result, Result]]) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, client, servers and PostgreSQL on one machine.",
        "",
        "| scenario | server | req/s | p50 ms | p99 ms | gateway / baseline throughput |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, base, gw in rows:
        ratio = gw.throughput / base.throughput
        lines.append(
            f"| {name} | hand-written Starlette | {base.throughput:.1f} | {base.percentile(0.5):.1f} | {base.percentile(0.99):.1f} | |"
        )
        lines.append(
            f"| {name} | gateway | {gw.throughput:.1f} | {gw.percentile(0.5):.1f} | {gw.percentile(0.99):.1f} | {ratio:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-write", action="store_true", help="print, don't update the docs")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run this scenario only (repeatable)"
    )
    args = parser.parse_args()

    urls, handle = seeded_databases(args.database_url)
    env = {
        **os.environ,
        "BMA_TAX_DATABASE_URL": urls.tax,
        "BMA_REGISTRY_DATABASE_URL": urls.registry,
        "BMA_FINANCE_DATABASE_URL": urls.finance,
        "BMA_TRAFFY_DATABASE_URL": urls.traffy,
        "BMA_RATE_LIMITS": "off",  # one client address: the benchmark is not the abuse it stops
    }
    processes = []
    try:
        traffy, traffy_url = start("traffy", env)
        processes.append(traffy)
        env["BMA_TRAFFY_BASE_URL"] = traffy_url
        gateways = {}
        for which, ttls in (("uncached", CACHES_OFF), ("cached", "")):
            gateway, gateways[which] = start("gateway", {**env, "BMA_CACHE_TTLS": ttls})
            processes.append(gateway)
        baseline, baseline_url = start("baseline", env)
        processes.append(baseline)
        rows = measure(gateways, baseline_url, args.seconds, args.concurrency, args.only)
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        del handle
    publish("BENCH", "bench.run", sys.argv[1:], report(rows), not args.no_write)


if __name__ == "__main__":
    main()
