"""What reading restricted fields costs: the same 1,000 parcels, open fields against
appraised value and owner, read by the finance officer (clear) and a partner (masked).

    python -m bench.restricted_cost [--database-url URL] [--rounds 30] [--no-write]

In one process against the seeded data, each operation runs through the gateway's Executor
(cached parse, validation and policy plan, the gate of the restricted fields, masks, the
audit entry built for every restricted read; the audit store itself is left out, as in
bench/policy_cost.py, and the response cache is off so the open query is executed too).
Runs alternate between the operations so drift hits all of them; the figure is each
restricted operation's throughput as a share of the open one's (ratio of median times).
Writes docs/benchmarks.md between RESTRICTED markers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

from bench.common import NullAudit, publish, seeded_databases
from connectors.cache import DEFAULT_TTLS
from gateway.audit.trail import Caller
from gateway.execution.executor import Executor, Operation
from gateway.http.app import connectors_from
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


async def measure(connectors: Connectors, rounds: int) -> list[tuple[str, float]]:
    """Median seconds per case, over ``rounds`` rounds that rotate the order of the cases."""
    executor = Executor(graphql_schema(), load_policy(), NullAudit(), connectors)

    async def once(principal: Principal, query: str) -> float:
        began = time.perf_counter()
        outcome = await executor.run(Operation(query), Caller(principal, "bench", None))
        took = time.perf_counter() - began
        assert outcome.status == 200 and "errors" not in outcome.body, outcome.body
        edges = outcome.body["data"]["parcels"]["edges"]
        assert len(edges) == 1000, len(edges)
        return took

    for _ in range(3):  # warm pools, caches and plans
        for _, principal, query in CASES:
            await once(principal, query)
    times: list[list[float]] = [[] for _ in CASES]
    for i in range(rounds):
        # Rotate the order: whichever runs after another inherits its garbage.
        for j in range(len(CASES)):
            k = (i + j) % len(CASES)
            times[k].append(await once(CASES[k][1], CASES[k][2]))
    return [(name, statistics.median(t)) for (name, _, _), t in zip(CASES, times, strict=True)]


def report(rows: list[tuple[str, float]]) -> str:
    reference = rows[0][1]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores; medians of rotating "
        "runs in one process.",
        "",
        "| operation | ms | operations/s | share of the open query's throughput |",
        "|---|---:|---:|---:|",
    ]
    for name, took in rows:
        lines.append(f"| {name} | {took * 1000:.1f} | {1 / took:.1f} | {reference / took:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=30)
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

        async def go() -> list[tuple[str, float]]:
            await connectors.tax.start()
            try:
                return await measure(connectors, args.rounds)
            finally:
                await connectors.tax.stop()

        rows = asyncio.run(go())
    finally:
        del handle
    publish("RESTRICTED", "bench.restricted_cost", sys.argv[1:], report(rows), not args.no_write)


if __name__ == "__main__":
    main()
