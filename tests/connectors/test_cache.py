"""Caches of public upstream answers and of whole public responses.

The cache tests run against memory and, when REDIS_URL is set, real Redis; the gateway tests
run a real gateway whose upstreams are the real test databases and the Traffy stand-in.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import Page, UpstreamUnavailable
from connectors.cache import (
    DEFAULT_TTLS as CACHE_NAMES,
)
from connectors.cache import (
    CacheSettings,
    CacheStore,
    TypedJsonSerializer,
    cached_batch,
    stale_uses,
)
from connectors.traffy import ComplaintCounts
from support import REQUIRED_ENV, run

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="REDIS_URL not set: the Redis-backed cache needs a Redis server"
)
BACKENDS = ["memory", pytest.param("redis", marks=needs_redis)]


def store_for(backend: str, name: str, ttl: float) -> CacheStore:
    """A store whose cache ``name`` keeps entries ``ttl`` seconds (names are unique per test:
    Redis outlives the test run)."""
    settings = CacheSettings(
        redis_url=REDIS_URL if backend == "redis" else None, ttls={name: ttl}, stale_seconds=600
    )
    return CacheStore(settings)


class Upstream:
    """A connector batch method whose answers and failures the test controls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.down = False

    async def fetch(self, keys: list[str]) -> dict[str, Any]:
        self.calls.append(list(keys))
        if self.down:
            raise UpstreamUnavailable("test-source", "connection refused")
        return {k: {"key": k, "value": Decimal("1.50")} for k in keys}


def test_values_round_trip_through_the_typed_json_serializer():
    counts = ComplaintCounts(3, Counter({"DONE": 2}), Counter({"flood": 3}))
    page = Page(rows=[{"at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}], total=1, has_next=False)
    value = {
        "amount": Decimal("1234.50"),
        "on": date(2026, 11, 24),
        "pair": ("1039", 2025),
        "counts": counts,
        "page": page,
        "thai": "เขตวัฒนา",
        "none": None,
    }
    serializer = TypedJsonSerializer()
    text = serializer.dumps(value)
    assert "pickle" not in text and isinstance(text, str)
    back = serializer.loads(text)
    assert back == value
    assert isinstance(back["counts"].by_state, Counter)


def test_the_serializer_rebuilds_only_known_classes():
    forged = '{"x": {"$class": "Popen", "fields": {"args": ["rm", "-rf", "/"]}}}'
    with pytest.raises(KeyError):
        TypedJsonSerializer().loads(forged)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fresh_entries_are_served_without_an_upstream_call(backend: str):
    upstream = Upstream()

    async def go() -> None:
        name = f"test.values.{uuid.uuid4().hex}"
        store = store_for(backend, name, 60)
        first = await cached_batch(store, name, upstream.fetch, ["a", "b"])
        again = await cached_batch(store, name, upstream.fetch, ["b", "c"])
        assert first == {
            "a": {"key": "a", "value": Decimal("1.50")},
            "b": {"key": "b", "value": Decimal("1.50")},
        }
        assert again["b"] == first["b"] and again["c"]["key"] == "c"
        assert upstream.calls == [["a", "b"], ["c"]]  # b came from the cache
        await store.clear([name])
        await cached_batch(store, name, upstream.fetch, ["a"])
        assert upstream.calls[-1] == ["a"]
        await store.close()

    run(go())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_upstream_is_answered_from_a_stale_entry_and_flagged(backend: str):
    upstream = Upstream()

    async def go() -> None:
        name = f"test.stale.{uuid.uuid4().hex}"
        store = store_for(backend, name, 0.05)
        await cached_batch(store, name, upstream.fetch, ["a"])
        import asyncio

        await asyncio.sleep(0.1)  # past the TTL: the upstream is asked again
        upstream.down = True
        uses: list[Any] = []
        token = stale_uses.set(uses)
        try:
            value = await cached_batch(store, name, upstream.fetch, ["a", "new"])
        finally:
            stale_uses.reset(token)
        assert value["a"] == {"key": "a", "value": Decimal("1.50")}
        assert isinstance(value["new"], UpstreamUnavailable)  # nothing to fall back on
        assert [(u.cache, u.source) for u in uses] == [(name, "test-source")]
        assert uses[0].age_seconds >= 0.05
        assert upstream.calls == [["a"], ["a", "new"]]
        await store.close()

    run(go())


def test_a_cache_with_no_ttl_passes_through():
    upstream = Upstream()

    async def go() -> None:
        store = store_for("memory", "configured", 60)
        await cached_batch(store, "not-configured", upstream.fetch, ["a"])
        await cached_batch(store, "not-configured", upstream.fetch, ["a"])
        assert upstream.calls == [["a"], ["a"]]

    run(go())


@needs_redis
def test_redis_going_away_falls_back_to_memory_with_one_warning(caplog: pytest.LogCaptureFixture):
    upstream = Upstream()

    async def go() -> None:
        store = CacheStore(CacheSettings(redis_url="redis://127.0.0.1:1/0", ttls={"t": 60}))
        for _ in range(3):
            found = await cached_batch(store, "t", upstream.fetch, ["a"])
            assert found["a"]["key"] == "a"
        await store.close()

    with caplog.at_level("WARNING", logger="bma.cache"):
        run(go())
    warnings = [r for r in caplog.records if "Redis cache unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert upstream.calls == [["a"]]  # the memory fallback cached it


@needs_redis
def test_cache_clear_empties_the_chosen_connectors_caches_in_redis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    from gateway.cli import main

    upstream = Upstream()
    settings = CacheSettings(redis_url=REDIS_URL)

    async def fill() -> None:
        store = CacheStore(settings)
        for name in ("tax.revenue", "traffy.stats"):
            await cached_batch(store, name, upstream.fetch, ["clear-me"])
        await store.close()

    async def cached(name: str) -> bool:
        store = CacheStore(settings)
        try:
            [entry] = await store.get_many(name, ['"clear-me"'])
        finally:
            await store.close()
        return entry is not None

    run(fill())
    assert run(cached("tax.revenue")) and run(cached("traffy.stats"))
    monkeypatch.setenv("REDIS_URL", REDIS_URL or "")
    assert main(["cache", "clear", "--connector", "tax"]) == 0
    assert "tax.revenue" in capsys.readouterr().out
    assert not run(cached("tax.revenue")) and run(cached("traffy.stats"))
    assert main(["cache", "clear"]) == 0
    assert not run(cached("traffy.stats"))


def test_cache_clear_without_redis_says_why(monkeypatch: pytest.MonkeyPatch, capsys):
    from gateway.cli import main

    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["cache", "clear"]) == 2
    assert "REDIS_URL is not set" in capsys.readouterr().err


def test_cache_clear_reports_an_unreachable_redis(monkeypatch: pytest.MonkeyPatch, capsys):
    from gateway.cli import main

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["cache", "clear", "--connector", "traffy"]) == 1
    assert "cannot clear the caches" in capsys.readouterr().err


# ---------------------------------------------------------------------------- through the gateway

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


def response_cached(gw, query: str, variables: dict[str, Any] | None) -> bool:
    from gateway.execution.response_cache import NAME, ResponseCache

    [found] = run(
        gw.connectors.cache.get_many(
            NAME,
            [ResponseCache.key(hashlib.sha256(query.encode()).hexdigest(), None, variables)],
            text=True,
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
        assert not response_cached(cached_gateway, query, variables), (who, case)


def test_a_failing_upstream_is_answered_from_stale_connector_cache_and_flagged(db, traffy_url):
    import time

    from faults import HttpFaults
    from support import settings_for, start_gateway

    front = HttpFaults(traffy_url).start()
    ttls = {"traffy.stats": 0.3, "response": 0}
    settings = settings_for(db, front.url, cache_ttls={**dict.fromkeys(CACHE_NAMES, 0), **ttls})
    server, gw = start_gateway(settings)
    query = '{ district(code: "1039") { complaintStats { total } } }'
    try:
        fresh = gw.post(query).json()
        assert "errors" not in fresh and "extensions" not in fresh
        time.sleep(0.4)  # past the TTL: the gateway asks Traffy again, which now fails
        front.mode = "error"
        stale = gw.post(query).json()
        assert stale["data"] == fresh["data"]
        assert "errors" not in stale
        [use] = stale["extensions"]["stale"]
        assert use["source"] == "traffy" and use["cache"] == "traffy.stats"
        assert use["ageSeconds"] >= 0.3
        front.mode = "ok"
        time.sleep(0.4)
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


# ---------------------------------------------------------------------------- settings


def test_cache_and_resilience_settings_round_trip():
    from gateway.settings import Settings

    env = {
        **REQUIRED_ENV,
        "REDIS_URL": "redis://127.0.0.1:6379/3",
        "BMA_CACHE_TTLS": '{"response": 5, "traffy.stats": 0}',
        "BMA_CACHE_STALE_SECONDS": "120",
        "BMA_UPSTREAM_RETRIES": "1",
        "BMA_UPSTREAM_CONCURRENCY": "8",
        "BMA_BREAKER_FAILURES": "3",
        "BMA_BREAKER_RESET_SECONDS": "2.5",
    }
    settings = Settings.from_env(env)
    assert settings.redis_url == "redis://127.0.0.1:6379/3"
    assert settings.cache_ttls["response"] == 5 and settings.cache_ttls["traffy.stats"] == 0
    assert settings.cache_ttls["tax.revenue"] == CACHE_NAMES["tax.revenue"]  # default kept
    assert settings.cache_stale_seconds == 120
    assert (settings.upstream_retries, settings.upstream_concurrency) == (1, 8)
    assert (settings.breaker_failures, settings.breaker_reset_seconds) == (3, 2.5)
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BMA_CACHE_TTLS", "{", "not valid JSON"),
        ("BMA_CACHE_TTLS", "[1]", "JSON object"),
        ("BMA_CACHE_TTLS", '{"parcels": 10}', "unknown cache 'parcels'"),
        ("BMA_CACHE_TTLS", '{"response": -1}', "between 0 and 86400"),
        ("BMA_CACHE_TTLS", '{"response": true}', "between 0 and 86400"),
        ("BMA_CACHE_STALE_SECONDS", "-5", "BMA_CACHE_STALE_SECONDS"),
        ("BMA_UPSTREAM_RETRIES", "9", "BMA_UPSTREAM_RETRIES"),
        ("BMA_BREAKER_FAILURES", "0", "BMA_BREAKER_FAILURES"),
        ("BMA_UPSTREAM_CONCURRENCY", "many", "BMA_UPSTREAM_CONCURRENCY"),
    ],
)
def test_bad_cache_and_resilience_settings_name_the_variable(variable, value, message):
    from gateway.settings import ConfigError, Settings

    with pytest.raises(ConfigError) as error:
        Settings.from_env({**REQUIRED_ENV, variable: value})
    assert message in str(error.value)
    assert variable in str(error.value)
