"""connectors/resilience.py: the circuit breaker (on a clock the test moves), the retries'
backoff and the settings on their own; then a connector's guard against real faulty servers:
retries on unavailable but never on timeout, an open breaker sparing the upstream and one
probe closing it, the concurrency bound, a call that gets no slot in time, requests the
upstream rejects, and a database source that is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from connectors.base import PageRequest, UpstreamTimeout, UpstreamUnavailable
from connectors.pg import PoolSettings
from connectors.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    Guard,
    RefusedByUpstream,
    ResilienceSettings,
)
from connectors.tax import TaxConnector
from connectors.traffy import ComplaintQuery, TraffyConnector
from faults import HttpFaults
from gateway.http.serving import free_port
from support import ManualClock, breakers_on

FAST = ResilienceSettings(
    retries=2, backoff_base=0.01, backoff_cap=0.05, breaker_failures=3, breaker_reset=0.5
)
# Generous: the stand-in counts every ticket in Python, which on a slow machine under the
# whole suite took over 0.5 s.
TRAFFY_TIMEOUT = 2.0


def _db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def test_breaker_opens_after_consecutive_failures_probes_once_and_closes():
    clock = ManualClock(100.0)
    breaker = CircuitBreaker("s", failures=3, reset=10, clock=clock)
    for _ in range(2):
        breaker.admit()
        breaker.failed()
    breaker.admit()
    breaker.succeeded()  # a success resets the count: failures must be consecutive
    for _ in range(2):
        breaker.admit()
        breaker.failed()
    assert breaker.state is BreakerState.CLOSED
    breaker.admit()
    breaker.failed()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as refused:
        breaker.admit()
    assert refused.value.source == "s" and refused.value.reason == "circuit open"

    clock.now += 9.9
    assert breaker.state is BreakerState.OPEN and not breaker.allows()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.admit()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.admit()  # everyone else while the probe is out
    breaker.failed()  # the probe failed: open again, for a full interval
    assert breaker.state is BreakerState.OPEN
    clock.now += 9.9
    assert not breaker.allows()
    clock.now += 0.1
    breaker.admit()
    breaker.released()  # a probe cancelled says nothing: the next call probes instead
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.admit()
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED and breaker.allows()


def test_backoff_is_full_jitter_under_a_capped_exponential():
    guard = Guard("s", ResilienceSettings(backoff_base=0.05, backoff_cap=0.15))
    for retry, ceiling in [(1, 0.05), (2, 0.1), (3, 0.15), (8, 0.15)]:
        waits = [guard.backoff(retry) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2 and min(waits) < ceiling / 2  # spread, not fixed


def test_settings_refuse_nonsense():
    for bad in ({"retries": -1}, {"breaker_failures": 0}, {"concurrency": 0}):
        with pytest.raises(ValueError):
            ResilienceSettings(**bad)


@pytest.fixture(scope="module")
def front(traffy_url) -> Iterator[HttpFaults]:
    server = HttpFaults(traffy_url).start()
    yield server
    server.stop()


@pytest.fixture
def healthy_front(front) -> Iterator[HttpFaults]:
    front.set("ok")
    front.reset()
    yield front
    front.set("ok")


def _traffy_run(url: str, settings: ResilienceSettings, body, timeout: float = TRAFFY_TIMEOUT):
    async def main() -> Any:
        traffy = TraffyConnector(url, timeout=timeout, resilience=settings)
        await traffy.start()
        try:
            return await body(traffy)
        finally:
            await traffy.stop()

    return asyncio.run(main())


def test_retries_on_unavailable_but_never_on_timeout(healthy_front):
    front = healthy_front

    async def once(traffy: TraffyConnector) -> tuple[type, int]:
        with pytest.raises(UpstreamUnavailable) as failed:
            await traffy.stats(["1004"])
        return type(failed.value), traffy.counter.calls["traffy"]

    front.set("error")
    assert _traffy_run(front.url, FAST, once) == (UpstreamUnavailable, 3)
    assert front.requests == 3
    front.reset()
    front.set("slow", delay=0.6)
    with pytest.raises(UpstreamTimeout):
        _traffy_run(front.url, FAST, lambda t: t.stats(["1004"]), timeout=0.3)
    assert front.requests == 1
    # A retry that succeeds hides the blip from the client.
    front.reset()
    front.set("error", times=1)
    stats = _traffy_run(front.url, FAST, lambda t: t.stats(["1004"]))
    assert stats["1004"].total > 0
    assert front.requests == 2


def test_open_breaker_fails_fast_without_upstream_calls_and_one_probe_closes_it(healthy_front):
    front = healthy_front
    settings = ResilienceSettings(retries=0, breaker_failures=3, breaker_reset=0.3)
    clock = ManualClock()

    async def scenario(traffy: TraffyConnector) -> None:
        breakers_on(clock, traffy)
        front.set("error")
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                await traffy.stats(["1004"])
        assert traffy.guard.breaker.state is BreakerState.OPEN
        calls, requests = traffy.counter.calls["traffy"], front.requests
        assert (calls, requests) == (3, 3)
        for _ in range(10):
            with pytest.raises(CircuitOpen):
                await traffy.search(ComplaintQuery(), PageRequest(first=1))
        assert (traffy.counter.calls["traffy"], front.requests) == (3, 3)  # upstream spared
        [health] = await traffy.health()  # a direct check: not through the breaker, not counted
        assert (health.ok, health.breaker) == (False, "open")
        assert (traffy.counter.calls["traffy"], front.requests) == (3, 4)
        front.reset()

        # After the reset, with the upstream back but slow: one probe goes, the rest wait out.
        front.set("slow", delay=0.1)
        clock.advance(0.3)
        outcomes = await asyncio.gather(
            *(traffy.stats(["1004"]) for _ in range(5)), return_exceptions=True
        )
        assert sum(isinstance(o, dict) for o in outcomes) == 1
        assert sum(isinstance(o, CircuitOpen) for o in outcomes) == 4
        assert (traffy.counter.calls["traffy"], front.requests) == (4, 1)
        assert traffy.guard.breaker.state is BreakerState.CLOSED
        results = await asyncio.gather(*(traffy.stats(["1004"]) for _ in range(5)))
        assert all(r["1004"].total > 0 for r in results)
        [health] = await traffy.health()
        assert (health.ok, health.breaker) == (True, "closed")

    _traffy_run(front.url, settings, scenario)


def test_concurrency_bound_holds_against_a_slow_server(healthy_front):
    front = healthy_front
    front.set("slow", delay=0.15)
    settings = ResilienceSettings(concurrency=4)

    async def burst(traffy: TraffyConnector) -> None:
        results = await asyncio.gather(*(traffy.stats(["1004"]) for _ in range(16)))
        assert all(r["1004"].total > 0 for r in results)
        assert front.in_flight == 0  # every call has ended: none is left holding a slot

    _traffy_run(front.url, settings, burst, timeout=5)
    assert front.requests == 16
    assert front.max_in_flight == 4  # reached, never passed


def test_a_call_queues_while_the_calls_ahead_of_it_end(healthy_front):
    """Three calls through one slot, each 0.4 s: the last waits 0.8 s, longer than the
    timeout, but the queue moved meanwhile: it is answered, not timed out."""
    front = healthy_front
    front.set("slow", delay=0.4)
    settings = ResilienceSettings(concurrency=1)

    async def queue(traffy: TraffyConnector) -> None:
        answers = await asyncio.gather(*(traffy.stats(["1004"]) for _ in range(3)))
        assert all(a["1004"].total > 0 for a in answers)
        assert traffy.guard.breaker.state is BreakerState.CLOSED

    _traffy_run(front.url, settings, queue, timeout=0.6)
    assert front.requests == 3
    assert front.max_in_flight == 1


def test_a_call_behind_a_stuck_one_times_out_without_touching_the_upstream():
    async def stuck() -> None:
        guard = Guard("s", ResilienceSettings(concurrency=1), queue_timeout=0.2)
        release = asyncio.Event()
        calls: list[str] = []

        async def hangs() -> str:
            calls.append("first")
            await release.wait()
            return "first"

        async def second() -> str:
            calls.append("second")
            return "second"

        first = asyncio.create_task(guard.call(hangs))
        await asyncio.sleep(0)  # the first holds the slot
        with pytest.raises(UpstreamTimeout, match="none ended for 0.2 s"):
            await guard.call(second)
        assert calls == ["first"]  # the second never reached the upstream
        release.set()
        assert await first == "first"
        assert await guard.call(second) == "second"  # the slot was given back

    asyncio.run(stuck())


def test_rejected_requests_are_not_retried_and_do_not_open_the_breaker():
    async def ask() -> None:
        traffy = TraffyConnector("http://127.0.0.1:9", resilience=FAST)
        await traffy.start()
        try:
            for _ in range(FAST.breaker_failures + 2):
                with pytest.raises(RefusedByUpstream):
                    await traffy.by_ids(["x" * 70_000])  # over any URL limit
            assert traffy.counter.calls["traffy"] == FAST.breaker_failures + 2
            assert traffy.guard.breaker.state is BreakerState.CLOSED
        finally:
            await traffy.stop()

    asyncio.run(ask())


def test_a_database_source_retries_then_opens_and_health_shows_the_breaker(db):
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/{_db_name(db.tax)}"

    async def scenario() -> None:
        tax = TaxConnector(dead, PoolSettings(timeout=2), FAST)
        await tax.start()
        try:
            with pytest.raises(UpstreamUnavailable) as refused:
                await tax.parcels_by_ids([1])
            assert refused.value.source == "tax" and not isinstance(refused.value, CircuitOpen)
            assert tax.counter.calls["tax"] == 3
            with pytest.raises(CircuitOpen):
                await tax.parcels_by_ids([1])
            assert tax.counter.calls["tax"] == 3
            [health] = await tax.health()
            assert (health.source, health.ok, health.breaker) == ("tax", False, "open")
        finally:
            await tax.stop()

    asyncio.run(scenario())
