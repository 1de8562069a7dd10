"""Compiled execution against graphql-core's executor: the same operations, in one process.

    python -m bench.compiled_cost [--database-url URL] [--rounds 30]

Two Executors over the same connectors (caches off, so every run reads its upstreams): one
compiling each plan (the default), one running every operation on graphql-core's generic
executor (``compiled=False``, the reference). Each operation's answers are checked equal,
byte for byte, then the two alternate for ``--rounds`` rounds and the medians are compared.
Writes docs/benchmarks.md between the COMPILED markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson

from bench.common import NullAudit, in_process, publish
from connectors.cache import DEFAULT_TTLS
from gateway.audit.trail import Caller
from gateway.execution.executor import Executor, Operation
from policies.model import load_policy
from policies.principal import ANONYMOUS, Level, Principal
from schema import Connectors, graphql_schema

PARTNER = Principal(
    "partner",
    "bench",
    "utility-partner",
    Level.INTERNAL,
    frozenset({"tax:read"}),
    purpose="research",
)
FINANCE = Principal(
    "agency",
    "bench",
    "finance-officer",
    Level.CONFIDENTIAL,
    frozenset({"tax:read", "tax:personal"}),
    purpose="tax-collection",
)
PARCELS = (
    "{ parcels(first: 1000) { edges { cursor node { id titleDeedType landUse areaSqm "
    "location { lat lon } district { code nameTh nameEn } } } } }"
)
RESTRICTED = (
    "{ parcels(first: 1000) { edges { node { id landUse areaSqm appraisedValue "
    "owner { kind name nationalId } } } } }"
)
COMPLAINTS = (
    "{ complaints(first: 1000) { edges { node { ticketId type state description address "
    "location { lat lon } reportedAt lastActivityAt photoUrl district { code } } } } }"
)
CASES = [
    ("1,000 parcels x 10 public fields, anonymous", ANONYMOUS, PARCELS),
    ("1,000 complaints x 10 fields, anonymous", ANONYMOUS, COMPLAINTS),
    ("1,000 parcels with owners, partner (masked)", PARTNER, RESTRICTED),
    ("1,000 parcels with owners, finance officer (clear)", FINANCE, RESTRICTED),
]


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    began = time.perf_counter()
    await call()
    return time.perf_counter() - began


async def compare(
    compiled: Executor, reference: Executor, principal: Principal, query: str, rounds: int
) -> tuple[float, float]:
    """Median seconds of the operation compiled, and on the reference executor."""
    caller = Caller(principal, "bench", None)

    async def answer(executor: Executor) -> bytes:
        outcome = await executor.run(Operation(query), caller)
        assert outcome.status == 200, outcome.body
        return orjson.dumps(outcome.body)

    fast, slow = await answer(compiled), await answer(reference)
    assert fast == slow, "the compiled answer differs from the reference's"
    for _ in range(2):  # warm pools and plans
        await answer(compiled)
        await answer(reference)
    on, off = [], []
    for i in range(rounds):
        first, second = (compiled, reference) if i % 2 else (reference, compiled)
        a = await timed(partial(answer, first))
        b = await timed(partial(answer, second))
        (on if first is compiled else off).append(a)
        (on if second is compiled else off).append(b)
    return statistics.median(on), statistics.median(off)


async def measure(connectors: Connectors, rounds: int) -> list[tuple[str, float, float]]:
    schema, policy = graphql_schema(), load_policy()
    compiled = Executor(schema, policy, NullAudit(), connectors)
    reference = Executor(schema, policy, NullAudit(), connectors, compiled=False)
    rows = []
    for name, principal, query in CASES:
        on, off = await compare(compiled, reference, principal, query, rounds)
        rows.append((name, on, off))
    return rows


def report(rows: list[tuple[str, float, float]]) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores; medians of "
        "alternating runs, in process (no HTTP), caches off.",
        "",
        "| operation | reference executor, ms | compiled, ms | compiled / reference time |",
        "|---|---:|---:|---:|",
    ]
    for name, on, off in rows:
        lines.append(f"| {name} | {off * 1000:.1f} | {on * 1000:.1f} | {on / off:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = in_process(
        args.database_url,
        dict.fromkeys(DEFAULT_TTLS, 0),
        lambda connectors: measure(connectors, args.rounds),
    )
    print(report(rows))
    publish("COMPILED", "bench.compiled_cost", sys.argv[1:], report(rows), not args.no_write)


if __name__ == "__main__":
    main()
