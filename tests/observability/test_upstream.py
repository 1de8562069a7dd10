"""What the connectors report becomes metrics, spans and the request's count of calls."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid

import pytest

from connectors.observer import UpstreamObserver
from gateway.observability.metrics import REGISTRY
from gateway.observability.upstream import UPSTREAM_METRICS, UpstreamMetrics, counting_calls


@pytest.fixture
def source() -> str:
    """A source of this test alone, so the global registry's samples are its own."""
    return f"unit{uuid.uuid4().hex[:8]}:1039"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_gateways_observer_satisfies_the_protocol():
    assert isinstance(UPSTREAM_METRICS, UpstreamMetrics)
    checked = []
    for name, declared in vars(UpstreamObserver).items():
        if name.startswith("_") or not callable(declared):
            continue
        checked.append(name)
        given = getattr(UPSTREAM_METRICS, name)
        assert (
            list(inspect.signature(given).parameters)
            == list(inspect.signature(declared).parameters)[1:]
        ), name  # the same parameters, less self
    assert sorted(checked) == ["attempt", "breaker", "cache", "called", "failed", "timed"]


# ---------------------------------------------------------------------------- counting_calls


def test_counts_calls_made_in_its_context(source):
    metrics = UpstreamMetrics()
    metrics.called(source)  # before: not this request's
    with counting_calls() as calls:
        metrics.called(source)
        metrics.called(source)
        metrics.called("tax")
    metrics.called(source)  # after: not this request's either
    assert calls == {source: 2, "tax": 1}


async def test_counts_calls_of_tasks_started_in_its_context(source):
    metrics = UpstreamMetrics()
    release = asyncio.Event()

    async def loader(n: int) -> None:
        await release.wait()  # runs after the task was started, as a DataLoader batch does
        for _ in range(n):
            metrics.called(source)

    outside = asyncio.create_task(loader(5))  # started before the request counts
    with counting_calls() as calls:
        inside = [asyncio.create_task(loader(2)), asyncio.create_task(loader(3))]
    release.set()
    await asyncio.gather(outside, *inside)
    assert calls == {source: 5}  # the two tasks started inside; not the one started outside


async def test_requests_running_at_once_count_apart(source):
    metrics = UpstreamMetrics()
    first_counted, second_counted = asyncio.Event(), asyncio.Event()

    async def first() -> dict[str, int]:
        with counting_calls() as calls:
            for _ in range(3):
                metrics.called(source)
            first_counted.set()
            await second_counted.wait()  # the other request counts in between
            metrics.called(source)
        return dict(calls)

    async def second() -> dict[str, int]:
        await first_counted.wait()
        with counting_calls() as calls:
            for _ in range(7):
                metrics.called(source)
            second_counted.set()
        return dict(calls)

    assert await asyncio.gather(first(), second()) == [{source: 4}, {source: 7}]


def test_no_count_outside_a_request(source):
    before = sample("bma_upstream_calls_total", connector=source.split(":")[0], source=source)
    UpstreamMetrics().called(source)  # no request counting: still a metric, no error
    after = sample("bma_upstream_calls_total", connector=source.split(":")[0], source=source)
    assert after - before == 1


# ---------------------------------------------------------------------------- metrics


def test_called_feeds_the_calls_counter(source):
    connector = source.split(":")[0]
    before = sample("bma_upstream_calls_total", connector=connector, source=source)
    for _ in range(3):
        UPSTREAM_METRICS.called(source)
    after = sample("bma_upstream_calls_total", connector=connector, source=source)
    assert after - before == 3


def test_failed_feeds_the_errors_counter_by_reason(source):
    connector = source.split(":")[0]
    UPSTREAM_METRICS.failed(source, "timeout")
    UPSTREAM_METRICS.failed(source, "timeout")
    UPSTREAM_METRICS.failed(source, "circuit_open")
    labels = {"connector": connector, "source": source}
    assert sample("bma_upstream_errors_total", reason="timeout", **labels) == 2
    assert sample("bma_upstream_errors_total", reason="circuit_open", **labels) == 1
    assert sample("bma_upstream_errors_total", reason="unavailable", **labels) == 0


def test_timed_feeds_the_histogram_by_connector(source):
    connector = source.split(":")[0]
    UPSTREAM_METRICS.timed(source, 0.003)
    UPSTREAM_METRICS.timed(source, 0.2)
    assert sample("bma_upstream_seconds_count", connector=connector) == 2
    assert sample("bma_upstream_seconds_sum", connector=connector) == pytest.approx(0.203)
    assert sample("bma_upstream_seconds_bucket", connector=connector, le="0.005") == 1
    assert sample("bma_upstream_seconds_bucket", connector=connector, le="0.25") == 2


def test_breaker_sets_the_state_gauge(source):
    UPSTREAM_METRICS.breaker(source, "open")
    assert sample("bma_breaker_state", source=source) == 2
    UPSTREAM_METRICS.breaker(source, "half_open")
    assert sample("bma_breaker_state", source=source) == 1
    UPSTREAM_METRICS.breaker(source, "closed")
    assert sample("bma_breaker_state", source=source) == 0


def test_cache_feeds_the_cache_counter(source):
    cache = f"{source}.stats"
    UPSTREAM_METRICS.cache(cache, "hit", 4)
    UPSTREAM_METRICS.cache(cache, "miss", 1)
    UPSTREAM_METRICS.cache(cache, "stale", 0)  # nothing to count: no sample at all
    assert sample("bma_cache_requests_total", cache=cache, result="hit") == 4
    assert sample("bma_cache_requests_total", cache=cache, result="miss") == 1
    assert (
        REGISTRY.get_sample_value("bma_cache_requests_total", {"cache": cache, "result": "stale"})
        is None
    )


def test_attempt_returns_a_context_manager(source):
    span = UPSTREAM_METRICS.attempt(source)
    assert isinstance(span, contextlib.AbstractContextManager)
    with span:
        entered = True
    assert entered
    # An error inside the attempt is not swallowed.
    with pytest.raises(ValueError, match="upstream answered garbage"):
        with UPSTREAM_METRICS.attempt(source):
            raise ValueError("upstream answered garbage")
