"""What reading restricted fields costs: the same 1,000 parcels, open fields against
appraised value and owner, read by the finance officer (clear) and a partner (masked).

    python -m bench.restricted_cost [--database-url URL] [--rounds 30] [--concurrency 1]
                                    [--gc-threshold N] [--no-write]

In one process against the seeded data, each operation runs through the gateway's Executor
(cached parse, validation and policy plan, the gate of the restricted fields, masks, the
audit entry built for every restricted read; the audit store itself is left out, as in
bench/policy_cost.py, and the response cache is off so the open query is executed too).
Runs alternate between the operations so drift hits all of them (``--concurrency`` runs
that many copies of each at once, as a busy server would); the figure is each
restricted operation's throughput as a share of the open one's (ratio of median times).
``--gc-threshold`` tunes the collector as ``serve`` does after start-up (``BMA_GC_THRESHOLD``:
start-up objects frozen, generation 0's threshold set; 0 leaves Python's defaults); the
process's resident memory is reported beside it. Writes docs/benchmarks.md between
RESTRICTED markers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import statistics
import sys
import time

from bench.common import NullAudit, publish, seeded_databases
from connectors.cache import DEFAULT_TTLS
from gateway.audit.trail import Caller
from gateway.execution.executor import Executor, Operation
from gateway.http.app import connectors_from
from gateway.http.lifecycle import tune_collector
from gateway.settings import Settings
from policies.model import load_policy
from policies.principal import ANONYMOUS, Level, Principal
from schema import Connectors, graphql_schema

FINANCE_OFFICER = Principal(
    "agency",
    "bench-finance",
    "bma-finance",
    Level.CONFIDENTIAL,
    frozenset({"tax:read", "tax:personal"}),
    purpose="tax-collection",
)
PARTNER = Principal(
    "partner",
    "bench-partner",
    "utility-partner",
    Level.INTERNAL,
    frozenset({"tax:read"}),
    purpose="research",
)
OPEN = (
    "{ parcels(first: 1000) { edges { node { id titleDeedType landUse areaSqm "
    "location { lat lon } district { code } } } } }"
)
RESTRICTED = (
    "{ parcels(first: 1000) { edges { node { id landUse areaSqm appraisedValue "
    "owner { name nationalId } } } } }"
)
# name, principal, query; the first is the reference the others are measured against
CASES = [
    ("1,000 parcels, public fields, anonymous", ANONYMOUS, OPEN),
    (
        "the same rows with appraised value and owner, finance officer (clear)",
        FINANCE_OFFICER,
        RESTRICTED,
    ),
    ("the same rows with appraised value and owner, partner (masked)", PARTNER, RESTRICTED),
]


async def measure(
    connectors: Connectors, rounds: int, gc_threshold: int, concurrency: int = 1
) -> list[tuple[str, float, float]]:
    """Median wall-clock and CPU seconds per case, over ``rounds`` rounds that rotate the
    order of the cases."""
    executor = Executor(graphql_schema(), load_policy(), NullAudit(), connectors)

    async def one(principal: Principal, query: str) -> None:
        outcome = await executor.run(Operation(query), Caller(principal, "bench", None))
        assert outcome.status == 200 and "errors" not in outcome.body, outcome.body
        edges = outcome.body["data"]["parcels"]["edges"]
        assert len(edges) == 1000, len(edges)

    async def once(principal: Principal, query: str) -> tuple[float, float]:
        began, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(principal, query) for _ in range(concurrency)))
        return time.perf_counter() - began, time.process_time() - cpu

    for _ in range(3):  # warm pools, caches and plans
        for _, principal, query in CASES:
            await once(principal, query)
    tune_collector(gc_threshold)  # as serve does once started
    times: list[list[tuple[float, float]]] = [[] for _ in CASES]
    for i in range(rounds):
        # Rotate the order: whichever runs after another inherits its garbage.
        for j in range(len(CASES)):
            k = (i + j) % len(CASES)
            times[k].append(await once(CASES[k][1], CASES[k][2]))
    return [
        (name, statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
        for (name, _, _), t in zip(CASES, times, strict=True)
    ]


def resident_mb() -> tuple[float, float]:
    """The process's resident memory now and at its peak, MB (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    now = pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    return now, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(
    rows: list[tuple[str, float, float]],
    gc_threshold: int,
    rss: tuple[float, float],
    concurrency: int,
) -> str:
    _, wall, cpu = rows[0]
    collector = (
        f"generation-0 threshold {gc_threshold}, start-up frozen"
        if gc_threshold > 0
        else "Python's collector defaults " + str(gc.get_threshold())
    )
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores; medians of rotating "
        f"runs in one process, {concurrency} at a time; {collector}; resident memory at the end {rss[0]:.0f} MB, "
        f"peak {rss[1]:.0f} MB. The share is the open query's time over the operation's: "
        "its throughput as a share of the open query's, by wall clock and by the gateway "
        "process's CPU time (steadier on a shared machine).",
        "",
        "| operation | ms per round | CPU ms per round | share, wall clock | share, CPU |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, w, c in rows:
        lines.append(
            f"| {name} | {w * 1000:.1f} | {c * 1000:.1f} | {wall / w:.0%} | {cpu / c:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument(
        "--gc-threshold", type=int, default=Settings.model_fields["gc_threshold"].default
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    urls, handle = seeded_databases(args.database_url)
    try:
        connectors = connectors_from(
            Settings(
                tax_database_url=urls.tax,
                registry_database_url=urls.registry,
                finance_database_url=urls.finance,
                traffy_base_url="http://127.0.0.1:9",  # not read: parcels only
                cache_ttls={**DEFAULT_TTLS, "response": 0},
            )
        )

        async def go() -> list[tuple[str, float, float]]:
            await connectors.tax.start()
            try:
                return await measure(connectors, args.rounds, args.gc_threshold, args.concurrency)
            finally:
                await connectors.tax.stop()

        rows = asyncio.run(go())
        rss = resident_mb()
    finally:
        del handle
    table = report(rows, args.gc_threshold, rss, args.concurrency)
    publish("RESTRICTED", "bench.restricted_cost", sys.argv[1:], table, not args.no_write)


if __name__ == "__main__":
    main()
