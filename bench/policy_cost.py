"""What the access policy costs: the same operations with enforcement on and off.

    python -m bench.policy_cost [--database-url URL] [--rounds 30]

In one process against the seeded data (the Traffy stand-in in its own process), each
operation runs through the gateway's Executor (cached parse and validation, the cached
policy plan, masks, error shaping) and through graphql-core's ``execute`` on the same
pre-parsed document with no policy at all. Runs alternate on and off so drift hits both;
the figure is the ratio of median times. Writes docs/benchmarks.md between POLICY markers.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from graphql import execute, parse

from bench.common import NullAudit, in_process, publish
from connectors.cache import DEFAULT_TTLS
from gateway.audit.trail import Caller
from gateway.execution.executor import Executor, Operation
from policies.model import load_policy
from policies.principal import ANONYMOUS, Level, Principal
from schema import Connectors, Limits, RequestContext, graphql_schema

PARTNER = Principal(
    "partner",
    "bench",
    "utility-partner",
    Level.INTERNAL,
    frozenset({"tax:read"}),
    purpose="research",
)
CASES = [
    (
        "1,000 complaints x 10 fields, anonymous (open fields: no policy work per field)",
        ANONYMOUS,
        "{ complaints(first: 1000) { totalCount edges { node { ticketId type state description address "
        "location { lat lon } reportedAt lastActivityAt photoUrl district { code } } } } }",
    ),
    (
        "1,000 parcels with owners, partner (3 masked fields per row)",
        PARTNER,
        "{ parcels(first: 1000) { edges { node { id landUse areaSqm appraisedValue "
        "owner { kind name nationalId } } } } }",
    ),
]


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    began = time.perf_counter()
    await call()
    return time.perf_counter() - began


async def measure(connectors: Connectors, rounds: int) -> list[tuple[str, float, float]]:
    schema = graphql_schema()
    # The policy alone, no audit writes.
    executor = Executor(schema, load_policy(), NullAudit(), connectors)
    rows = []
    for name, principal, query in CASES:
        on, off = await compare(executor, connectors, principal, query, rounds)
        rows.append((name, on, off))
    return rows


async def compare(
    executor: Executor, connectors: Connectors, principal: Principal, query: str, rounds: int
) -> tuple[float, float]:
    """Median seconds of the operation with enforcement on, and off."""
    document = parse(query)
    plain = graphql_schema()  # the same schema, its restricted fields not behind the gate

    async def enforced() -> None:
        outcome = await executor.run(Operation(query), Caller(principal, "bench", None))
        assert outcome.status == 200 and "errors" not in outcome.body, outcome.body

    async def unenforced() -> None:
        context = RequestContext(connectors, Limits(), principal=principal)
        result = execute(plain, document, context_value=context)
        if inspect.isawaitable(result):
            result = await result
        assert not result.errors, result.errors

    for _ in range(3):  # warm pools, caches and the plan
        await enforced()
        await unenforced()
    on, off = [], []
    for i in range(rounds):
        # Swap the order every round: whichever runs second inherits the first's garbage.
        if i % 2:
            off.append(await timed(unenforced))
            on.append(await timed(enforced))
        else:
            on.append(await timed(enforced))
            off.append(await timed(unenforced))
    return statistics.median(on), statistics.median(off)


def report(rows: list[tuple[str, float, float]]) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores; medians of alternating runs.",
        "",
        "| operation | enforcement off, ms | enforcement on, ms | cost of the policy |",
        "|---|---:|---:|---:|",
    ]
    for name, on, off in rows:
        lines.append(f"| {name} | {off * 1000:.1f} | {on * 1000:.1f} | {on / off - 1:+.1%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    # Executed every time: the response cache would answer open data instead.
    rows = in_process(
        args.database_url,
        {**DEFAULT_TTLS, "response": 0},
        lambda connectors: measure(connectors, args.rounds),
    )
    publish("POLICY", "bench.policy_cost", sys.argv[1:], report(rows), not args.no_write)


if __name__ == "__main__":
    main()
