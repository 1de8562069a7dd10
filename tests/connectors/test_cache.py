"""connectors/cache.py: the cache store and cached batches, against memory and, when
REDIS_URL is set, real Redis: values round-trip through the typed JSON serializer (never
pickle), fresh entries spare the upstream, a failed upstream is answered from a stale entry
(entries age on a clock the test moves), and Redis going away falls back to memory. (Caches
through a running gateway: tests/test_caching.py.)
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import Page, UpstreamUnavailable
from connectors.cache import (
    CacheSettings,
    CacheStore,
    RecentLookups,
    TypedJsonSerializer,
    cached_batch,
    stale_uses,
)
from connectors.traffy import ComplaintCounts
from support import BatchUpstream, ManualClock, run

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="REDIS_URL not set: the Redis-backed cache needs a Redis server"
)
BACKENDS = ["memory", pytest.param("redis", marks=needs_redis)]


def store_for(backend: str, name: str, ttl: float, clock: ManualClock | None = None) -> CacheStore:
    """A store whose cache ``name`` keeps entries ``ttl`` seconds (names are unique per test:
    Redis outlives the test run), their age on ``clock`` when given."""
    settings = CacheSettings(
        redis_url=REDIS_URL if backend == "redis" else None, ttls={name: ttl}, stale_seconds=600
    )
    return CacheStore(settings) if clock is None else CacheStore(settings, clock=clock)


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
    upstream = BatchUpstream()

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
    upstream = BatchUpstream()
    clock = ManualClock()

    async def go() -> None:
        name = f"test.stale.{uuid.uuid4().hex}"
        store = store_for(backend, name, 0.05, clock)
        await cached_batch(store, name, upstream.fetch, ["a"])
        clock.advance(0.1)  # past the TTL: the upstream is asked again
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
    upstream = BatchUpstream()

    async def go() -> None:
        store = store_for("memory", "configured", 60)
        await cached_batch(store, "not-configured", upstream.fetch, ["a"])
        await cached_batch(store, "not-configured", upstream.fetch, ["a"])
        assert upstream.calls == [["a"], ["a"]]

    run(go())


@needs_redis
def test_redis_going_away_falls_back_to_memory_with_one_warning(caplog: pytest.LogCaptureFixture):
    upstream = BatchUpstream()

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


def test_recent_lookups_keep_each_answer_for_its_seconds_and_the_most_recent_keys():
    recent: RecentLookups[str | None] = RecentLookups(seconds=5.0, most=2)
    recent.put("a", 100.0, "text")
    recent.put("unknown", 101.0, None)  # an absent answer is kept as well
    entry = recent.get("a")
    assert entry == (100.0, "text")
    assert recent.fresh(entry, 104.9) and not recent.fresh(entry, 105.0)
    assert recent.get("unknown") == (101.0, None)
    recent.put("a", 102.0, "text")  # stored again: now the most recent
    recent.put("b", 103.0, "other")  # a third key: the least recently stored leaves
    assert recent.get("unknown") is None
    assert recent.get("a") == (102.0, "text") and recent.get("b") == (103.0, "other")
