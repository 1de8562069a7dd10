"""The compiled executor answers exactly what graphql-core's executor answers.

Queries are generated from each audience's own schema and run twice through the gateway's
Executor over the same connectors and data: compiled (the default) and on graphql-core's
generic executor (the reference). The answers must be the same bytes — data, errors, their
paths and codes, masks, nulls — with the same status, and the audit records the same.
Upstream caches are on, the response cache off, so both runs execute and read the same
rows; pages are small, so that thousands of queries fit in CI.

Two generators, both seeded so that a run is repeatable: ``tests/query_walk.py`` walks the
schema choosing fields, aliases, fragments and argument values this schema's data answer
(2,000 queries per audience, cheap to draw), and hypothesis-graphql, which draws arbitrary
valid queries (fewer: each costs ~100 ms to draw).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes, queries

from connectors.cache import DEFAULT_TTLS
from gateway.audit.trail import Caller
from gateway.execution.executor import Executor, Operation
from gateway.http.app import connectors_from
from gateway.limits.config import AUDIENCES
from policies.model import load_policy
from policies.principal import ANONYMOUS, Level, Principal
from schema import graphql_schema
from schema.context import Limits
from tests.query_walk import random_query
from tests.support import settings_for

# CI runs the full count; a developer may ask for fewer (BMA_DIFFERENTIAL_EXAMPLES=200).
EXAMPLES = int(os.environ.get("BMA_DIFFERENTIAL_EXAMPLES", "2000"))
DRAWN = max(EXAMPLES // 40, 5)  # hypothesis-graphql's share
PAGES = Limits(default_page_size=3, max_page_size=20)

PRINCIPALS = {
    "anonymous": ANONYMOUS,
    "app": Principal("app", "key-1", "district-app", Level.PUBLIC, frozenset({"traffy:read"})),
    "partner": Principal(
        "partner",
        "utility",
        "utility-partner",
        Level.INTERNAL,
        frozenset({"tax:read", "registry:read"}),
        purpose="research",
    ),
    "agency": Principal(
        "agency",
        "bma-finance",
        "finance-officer",
        Level.CONFIDENTIAL,
        frozenset({"tax:read", "tax:personal", "registry:read", "registry:personal"}),
        purpose="tax-collection",
    ),
    # A district office: its row scope filters parcels, businesses and permits.
    "agency-district": Principal(
        "agency",
        "khet-watthana",
        "district-officer",
        Level.CONFIDENTIAL,
        frozenset({"tax:read", "registry:read", "registry:personal"}),
        purpose="tax-collection",
        districts=frozenset({"1039"}),
    ),
}

SCALARS = {
    "Date": st.dates(date(2000, 1, 1), date(2030, 12, 31)).map(
        lambda d: nodes.String(d.isoformat())
    ),
    "DateTime": st.datetimes(
        datetime(2000, 1, 1), datetime(2030, 12, 31), timezones=st.just(UTC)
    ).map(lambda d: nodes.String(d.isoformat())),
    "Decimal": st.decimals(Decimal(0), Decimal(10**9), places=2).map(
        lambda d: nodes.String(str(d))
    ),
}
# A bug's error carries a fresh reference per response; the rest must be equal.
REFERENCE = re.compile(rb"[0-9a-f]{8,}-?[0-9a-f-]*")


class RecordedAudit:
    """The audit records an executor produced, kept in order (the writer's interface)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def record(self, entry: dict[str, Any]) -> int:
        self.entries.append(entry)
        return len(self.entries)


class Pair:
    """Two executors over the same connectors: compiled and reference, on one loop."""

    def __init__(self, connectors: Any, loop: asyncio.AbstractEventLoop) -> None:
        schema, policy = graphql_schema(), load_policy()
        self.loop = loop
        self.compiled_audit, self.reference_audit = RecordedAudit(), RecordedAudit()
        self.compiled = Executor(
            schema,
            policy,
            self.compiled_audit,
            connectors,
            page_limits=PAGES,  # type: ignore[arg-type]
        )
        self.reference = Executor(
            schema,
            policy,
            self.reference_audit,  # type: ignore[arg-type]
            connectors,
            page_limits=PAGES,
            compiled=False,
        )
        # One parse, validation and plan per document for both: what they share is not
        # what is compared, and it halves the test's time.
        self.reference.documents = self.compiled.documents
        self.reference.planner = self.compiled.planner

    def answers(self, query: str, principal: Principal) -> tuple[Any, Any]:
        caller = Caller(principal, "differential", "test")

        async def both() -> tuple[Any, Any]:
            fast = await self.compiled.run(Operation(query), caller)
            slow = await self.reference.run(Operation(query), caller)
            return fast, slow

        return self.loop.run_until_complete(both())


@pytest.fixture(scope="module")
def pair(db: Any, traffy_url: str) -> Iterator[Pair]:
    settings = settings_for(db, traffy_url, cache_ttls={**DEFAULT_TTLS, "response": 0})
    connectors = connectors_from(settings)
    loop = asyncio.new_event_loop()

    async def each(method: str) -> None:
        await asyncio.gather(*(getattr(c, method)() for c in connectors.all()))

    loop.run_until_complete(each("start"))
    try:
        yield Pair(connectors, loop)
    finally:
        loop.run_until_complete(each("stop"))
        loop.close()


def _encoded(outcome: Any) -> bytes:
    """The answer's bytes, its errors in a fixed order: graphql-core lists errors as their
    fields complete, which follows the upstreams' timing — two runs of the reference itself
    list the errors of 50 districts' permits in different orders. Data, paths, messages and
    codes are compared as they are."""
    body = dict(outcome.body)
    if "errors" in body:
        body["errors"] = sorted(body["errors"], key=orjson.dumps)
    return REFERENCE.sub(b"REF", orjson.dumps(body))


def check_alike(pair: Pair, query: str, principal: Principal) -> int:
    """The status both answered, once they answered alike and audited alike."""
    before = len(pair.compiled_audit.entries), len(pair.reference_audit.entries)
    fast, slow = pair.answers(query, principal)
    assert fast.status == slow.status, query
    assert _encoded(fast) == _encoded(slow), query
    compiled_records = pair.compiled_audit.entries[before[0] :]
    assert compiled_records == pair.reference_audit.entries[before[1] :], query
    return int(fast.status)


@pytest.mark.parametrize("audience", PRINCIPALS)
def test_walked_queries_answer_alike(pair: Pair, audience: str) -> None:
    principal = PRINCIPALS[audience]
    visible = pair.compiled.visible_to(principal)
    # The district officer is a second agency principal (its row scope): fewer of its own.
    count = EXAMPLES if audience in AUDIENCES else EXAMPLES // 4
    statuses = [
        check_alike(pair, random_query(visible, random.Random(f"{audience}-{n}")), principal)
        for n in range(count)
    ]
    # Most of them executed, not refused before execution.
    assert statuses.count(200) > len(statuses) // 2


@pytest.mark.parametrize("audience", PRINCIPALS)
def test_drawn_queries_answer_alike(pair: Pair, audience: str) -> None:
    principal = PRINCIPALS[audience]
    visible = pair.compiled.visible_to(principal)
    statuses: list[int] = []

    @settings(
        max_examples=DRAWN,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(queries(visible, custom_scalars=SCALARS))
    def check(query: str) -> None:
        statuses.append(check_alike(pair, query, principal))

    check()
    assert len(statuses) >= DRAWN
