"""The response cache never hands one caller's answer to another: every audience × every path
to a row-scoped type (a root lookup, a list, a list nested in another), generated from the
schema and the policy (tests/schema_paths.py), so a new field or path is covered without
editing this file.

Two gateways over the same data: one caching whole responses for an hour, one caching none.
Each path is asked of the caching gateway by every audience in turn — each path starting with
another audience, so that every audience stores answers the others then ask for — and every
answer must be the one the other gateway gives that audience. Besides credentials, the
audiences differ in what changes an open-data answer: officers of districts 1039 and 1001 in
their row scope, anonymous callers in their page size (shorter here than everyone else's).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from connectors.cache import DEFAULT_TTLS
from gateway.auth.issuer import EmbeddedIssuer
from gateway.limits.config import DEFAULTS, AudienceLimits
from policies.model import load_policy
from schema import graphql_schema
from schema_paths import RowPath, cases, query_of, row_paths
from support import Gateway, bearer, run, settings_for, start_gateway

SCHEMA = graphql_schema()
POLICY = load_policy()
PATHS = row_paths(SCHEMA, POLICY)
ANONYMOUS_PAGE = 7  # below the default page of 20 every other audience has


@pytest.fixture(scope="module")
def pair(db, traffy_url) -> Iterator[tuple[Gateway, Gateway]]:
    """(the caching gateway, the reference without a response cache)."""
    limits = AudienceLimits(anonymous=replace(DEFAULTS["anonymous"], max_page_size=ANONYMOUS_PAGE))
    ttls = {**DEFAULT_TTLS, "response": 3600}
    servers = []
    gateways = []
    for response_ttl in (3600, 0):
        settings = settings_for(
            db,
            traffy_url,
            operation_limits=limits,
            cache_ttls={**ttls, "response": response_ttl},
        )
        server, gw = start_gateway(settings)
        servers.append(server)
        gateways.append(gw)
    cached, reference = gateways
    assert cached.connectors.cache is not None
    run(cached.connectors.cache.clear(["response"]))  # nothing from an earlier run
    yield cached, reference
    for server, gw in zip(servers, gateways, strict=True):
        gw.client.close()
        server.stop()


@pytest.fixture(scope="module")
def audiences(
    principals: dict[str, dict[str, str]], issuer: EmbeddedIssuer
) -> list[tuple[str, dict[str, str]]]:
    officer_1001 = issuer.issue(
        "agency",
        "bma-district-1001",
        "tax:read registry:read registry:personal",
        "confidential",
        district="1001",
        purpose="district-service",
        ttl=timedelta(hours=1),
    )
    return [*principals.items(), ("officer-1001", bearer(officer_1001))]


@pytest.mark.parametrize("index", range(len(PATHS)), ids=[p.name for p in PATHS])
def test_every_audience_gets_its_own_answer_from_the_response_cache(
    pair: tuple[Gateway, Gateway],
    audiences: list[tuple[str, dict[str, str]]],
    row_path_values: dict[str, list[Any]],
    index: int,
):
    cached, reference = pair
    path: RowPath = PATHS[index]
    query = query_of(SCHEMA, POLICY, path)
    order = audiences[index % len(audiences) :] + audiences[: index % len(audiences)]
    hits = 0
    for variables in cases(SCHEMA, path, row_path_values):
        for who, headers in order:
            expected = reference.post(query, variables, headers=headers)
            answer = cached.post(query, variables, headers=headers)
            # (An audience's limits may refuse a deep path: then both refuse it alike.)
            assert answer.status_code == expected.status_code, (who, variables)
            assert answer.json() == expected.json(), (who, variables)
            hits += answer.headers.get("x-cache") == "hit"
    assert hits > 0  # callers who may share an answer do
