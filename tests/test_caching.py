"""Caches through a running gateway over the real test databases and the Traffy stand-in:
an open operation answered from the response cache with the same bytes for everyone, never an
operation that reads a non-public field; a failing upstream answered from a stale connector
cache entry and flagged; Redis stopped under the gateway failing no request. (The cache store
on its own: tests/connectors/test_cache.py.)
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from connectors.cache import DEFAULT_TTLS as CACHE_NAMES
from connectors.cache import CacheStore
from support import run

REDIS_URL = os.environ.get("REDIS_URL")


needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="REDIS_URL not set: the Redis-backed cache needs a Redis server"
)


OPEN_QUERY = "{ districts { code nameEn complaintStats { total } businessCount } }"


# Operations that read a non-public field (allowed, masked or denied, depending on who asks).
RESTRICTED = {
    "appraised value": ("query($id: ID!) { parcel(id: $id) { id appraisedValue } }", True),
    "owner name": ("query($id: ID!) { parcel(id: $id) { landUse owner { name } } }", True),
    "assessments": ("query($id: ID!) { parcel(id: $id) { assessments { taxDue } } }", True),
    "business owner": (
        "{ businesses(first: 3) { edges { node { name owner { nationalId } } } } }",
        False,
    ),
    "access log": ("{ accessLog(first: 1) { totalCount } }", False),
    "introspection": ("{ __schema { queryType { fields { name } } } }", False),
}


@pytest.fixture(scope="module")
def cached_gateway(db, traffy_url):
    from connectors.cache import DEFAULT_TTLS
    from support import settings_for, start_gateway

    settings = settings_for(db, traffy_url, cache_ttls=dict(DEFAULT_TTLS))
    server, gw = start_gateway(settings)
    yield gw
    gw.client.close()
    server.stop()


def response_cached(
    gw, query: str, variables: dict[str, Any] | None, districts: frozenset[str] | None = None
) -> bool:
    """Whether the response cache holds an answer for callers of row scope ``districts``
    (these gateways give every audience the same page sizes)."""
    from gateway.execution.response_cache import NAME, ResponseCache, answer_scope
    from policies.principal import Principal
    from schema import Limits

    scope = answer_scope(Principal("anonymous", "anonymous", districts=districts), Limits())
    digest = hashlib.sha256(query.encode()).hexdigest()
    [found] = run(
        gw.connectors.cache.get_many(
            NAME, [ResponseCache.key(digest, None, variables, scope)], text=True
        )
    )
    return found is not None


def test_an_open_operation_is_answered_from_the_response_cache_with_the_same_bytes_for_all(
    cached_gateway, principals
):
    gw = cached_gateway
    first = gw.post(OPEN_QUERY, headers=principals["dpo"])
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    gw.reset_counters()
    for who in ("anonymous", "app", "partner", "finance"):
        again = gw.post(OPEN_QUERY, headers=principals[who])
        assert again.headers["x-cache"] == "hit", who
        assert again.content == first.content
    assert not any(c.counter.calls for c in gw.connectors.all())  # no upstream was asked
    assert response_cached(gw, OPEN_QUERY, None)


@pytest.mark.parametrize("case", sorted(RESTRICTED))
def test_the_response_cache_is_never_used_for_an_operation_reading_a_non_public_field(
    cached_gateway, principals, db, case: str
):
    from support import sql

    query, takes_id = RESTRICTED[case]
    parcel = sql(db.tax, "SELECT id FROM tax.parcels WHERE district_code = '1039' LIMIT 1")[0]["id"]
    variables = {"id": str(parcel)} if takes_id else None
    for who, headers in principals.items():
        answers = [cached_gateway.post(query, variables, headers=headers) for _ in range(2)]
        for response in answers:
            assert response.status_code in (200, 503), (who, response.text)
            assert "x-cache" not in response.headers, (who, case)
        for districts in (None, frozenset({"1039"})):
            assert not response_cached(cached_gateway, query, variables, districts), (who, case)


# The README's open-data query: suspended businesses across the 50 district registries.
SUSPENDED = """{ businesses(filter: {status: SUSPENDED}, first: 50) { totalCount
                 edges { node { registrationNo name district { code } } } } }"""


def _suspended(db, where: str = "true") -> list[str]:
    from connectors.districts import all_districts
    from support import sql

    found = []
    for d in all_districts():
        found += [
            r["registration_no"]
            for r in sql(
                db.registry,
                f"SELECT registration_no FROM d{d.code}.commercial_registrations "
                f"WHERE status = 'suspended' AND {where}",
            )
        ]
    return sorted(found)


def test_an_officers_row_scoped_answer_is_not_served_to_anyone_else(cached_gateway, principals, db):
    gw = cached_gateway
    run(gw.connectors.cache.clear(["response"]))
    officer = gw.post(SUSPENDED, headers=principals["officer"])
    assert officer.headers["x-cache"] == "miss"
    ours = [r for r in _suspended(db) if r.startswith("1039-")]
    assert officer.json()["data"]["businesses"]["totalCount"] == len(ours)
    for who in ("anonymous", "app", "partner", "finance", "dpo"):
        answer = gw.post(SUSPENDED, headers=principals[who])
        assert answer.json()["data"]["businesses"]["totalCount"] == len(_suspended(db)), who
    assert gw.post(SUSPENDED, headers=principals["officer"]).headers["x-cache"] == "hit"
    assert response_cached(gw, SUSPENDED, None, frozenset({"1039"}))
    assert response_cached(gw, SUSPENDED, None)


def test_an_answer_with_a_row_outside_an_officers_scope_is_not_served_to_her(
    cached_gateway, principals, db
):
    from support import sql

    gw = cached_gateway
    query = "query($no: String!) { business(registrationNo: $no) { registrationNo name } }"
    [row] = sql(
        db.registry,
        "SELECT registration_no FROM d1001.commercial_registrations ORDER BY 1 LIMIT 1",
    )
    variables = {"no": row["registration_no"]}
    anonymous = gw.post(query, variables)
    assert anonymous.json()["data"]["business"]["registrationNo"] == row["registration_no"]
    officer = gw.post(query, variables, headers=principals["officer"])
    assert officer.json() == {"data": {"business": None}}
    assert officer.headers["x-cache"] == "miss"


def test_a_failing_upstream_is_answered_from_stale_connector_cache_and_flagged(db, traffy_url):
    from faults import HttpFaults
    from gateway.http.app import connectors_from
    from support import ManualClock, settings_for, start_gateway

    front = HttpFaults(traffy_url).start()
    ttls = {"traffy.stats": 0.3, "response": 0}
    settings = settings_for(db, front.url, cache_ttls={**dict.fromkeys(CACHE_NAMES, 0), **ttls})
    connectors = connectors_from(settings)
    clock = ManualClock()  # the cache entries' age
    assert connectors.cache is not None
    connectors.cache = CacheStore(connectors.cache.settings, connectors.cache.observer, clock=clock)
    server, gw = start_gateway(settings, connectors)
    query = '{ district(code: "1039") { complaintStats { total } } }'
    try:
        fresh = gw.post(query).json()
        assert "errors" not in fresh and "extensions" not in fresh
        clock.advance(0.4)  # past the TTL: the gateway asks Traffy again, which now fails
        front.mode = "error"
        stale = gw.post(query).json()
        assert stale["data"] == fresh["data"]
        assert "errors" not in stale
        [use] = stale["extensions"]["stale"]
        assert use["source"] == "traffy" and use["cache"] == "traffy.stats"
        assert use["ageSeconds"] >= 0.3
        front.mode = "ok"
        clock.advance(0.4)
        assert "extensions" not in gw.post(query).json()  # fresh again once Traffy answers
    finally:
        gw.client.close()
        server.stop()
        front.stop()


@needs_redis
def test_redis_stopped_under_the_gateway_no_request_fails(db, traffy_url, caplog):
    from connectors.cache import DEFAULT_TTLS
    from faults import TcpProxy
    from support import settings_for, start_gateway

    proxy = TcpProxy(REDIS_URL or "").start()
    settings = settings_for(
        db, traffy_url, cache_ttls=dict(DEFAULT_TTLS), redis_url=proxy.target_url
    )
    server, gw = start_gateway(settings)
    try:
        query = "{ districts { code businessCount } }"
        expected = gw.post(query).json()
        proxy.stop()
        with caplog.at_level("WARNING", logger="bma.cache"):
            answers = [gw.post(query) for _ in range(5)]
        assert all(a.status_code == 200 and a.json() == expected for a in answers)
        assert sum("Redis cache unavailable" in r.getMessage() for r in caplog.records) == 1
        proxy.start()
    finally:
        gw.client.close()
        server.stop()
        proxy.close()
