"""What the connectors report to their observer: calls, failures, times, breakers, caches."""

from __future__ import annotations

import contextlib
import inspect
from collections import Counter
from collections.abc import Iterator

import pytest

from connectors.base import CallCounter, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from connectors.cache import CacheSettings, CacheStore, StaleUse, cached_batch, stale_uses
from connectors.observer import QUIET, QuietObserver, UpstreamObserver
from connectors.resilience import (
    CircuitBreaker,
    CircuitOpen,
    Guard,
    RefusedByUpstream,
    ResilienceSettings,
)

PROTOCOL_METHODS = ["attempt", "breaker", "cache", "called", "failed", "timed"]


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    """An observer that writes down what it is told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    @contextlib.contextmanager
    def attempt(self, source: str) -> Iterator[None]:
        self.events.append(("attempt", source))
        try:
            yield
        finally:
            self.events.append(("attempt ended", source))

    def called(self, source: str) -> None:
        self.events.append(("called", source))

    def failed(self, source: str, reason: str) -> None:
        self.events.append(("failed", source, reason))

    def timed(self, source: str, seconds: float) -> None:
        assert seconds >= 0
        self.events.append(("timed", source))

    def breaker(self, source: str, state: str) -> None:
        self.events.append(("breaker", source, state))

    def cache(self, cache: str, result: str, count: int) -> None:
        self.events.append(("cache", cache, result, count))

    def take(self) -> list[tuple]:
        events, self.events = self.events, []
        return events

    def cache_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for event in self.take():
            if event[0] == "cache":
                counts[event[2]] += event[3]
        return counts


def protocol_methods() -> list[str]:
    return sorted(
        name
        for name, value in vars(UpstreamObserver).items()
        if not name.startswith("_") and callable(value)
    )


# ---------------------------------------------------------------------------- QUIET


def test_the_protocol_is_what_the_recorder_and_quiet_implement():
    assert protocol_methods() == PROTOCOL_METHODS
    for observer in (QUIET, Recorder()):
        for name in PROTOCOL_METHODS:
            declared = inspect.signature(getattr(UpstreamObserver, name))
            given = inspect.signature(getattr(observer, name))
            assert list(given.parameters) == list(declared.parameters)[1:], (observer, name)


def test_quiet_does_nothing():
    assert isinstance(QUIET, QuietObserver)
    with QUIET.attempt("tax") as entered:
        assert entered is None
    assert QUIET.called("tax") is None
    assert QUIET.failed("tax", "timeout") is None
    assert QUIET.timed("tax", 0.1) is None
    assert QUIET.breaker("tax", "open") is None
    assert QUIET.cache("tax.revenue", "hit", 3) is None
    with pytest.raises(KeyError):  # nor does its attempt swallow an error
        with QUIET.attempt("tax"):
            raise KeyError("x")


async def test_connectors_left_alone_report_to_quiet():
    guard = Guard("tax", ResilienceSettings(retries=0))
    assert guard.observer is QUIET
    assert CallCounter().observer is QUIET
    assert CacheStore().observer is QUIET

    async def answer() -> int:
        return 7

    assert await guard.call(answer) == 7


# ---------------------------------------------------------------------------- Guard and breaker


class Upstream:
    """One source's answers, in turn: a value, or an error it fails with (fault injection);
    each call is recorded by the connector's counter, as the real connectors do."""

    def __init__(self, counter: CallCounter, source: str, *outcomes: object) -> None:
        self.counter = counter
        self.source = source
        self.outcomes = list(outcomes)

    async def call(self) -> object:
        self.counter.record(self.source)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def no_backoff(**overrides: float) -> ResilienceSettings:
    return ResilienceSettings(backoff_base=0, backoff_cap=0, **overrides)


async def test_a_failing_then_recovering_source():
    recorder, clock = Recorder(), Clock()
    settings = no_backoff(retries=1, breaker_failures=2, breaker_reset=10)
    guard = Guard("tax", settings, clock=clock, observer=recorder)
    assert recorder.take() == [("breaker", "tax", "closed")]
    counter = CallCounter(recorder)
    down = UpstreamUnavailable("tax", "connection refused")
    upstream = Upstream(counter, "tax", down, down, "late answer", "answer")

    # Two attempts (one retry), both failing: the second opens the breaker.
    with pytest.raises(UpstreamUnavailable) as raised:
        await guard.call(upstream.call)
    assert raised.value is down
    attempt = [("attempt", "tax"), ("called", "tax")]
    ended = [("timed", "tax"), ("attempt ended", "tax"), ("failed", "tax", "unavailable")]
    assert recorder.take() == [
        *attempt,
        *ended,
        *attempt,
        ("breaker", "tax", "open"),
        *ended,
    ]

    # Open: fails fast, the upstream not asked, nothing timed.
    with pytest.raises(CircuitOpen):
        await guard.call(upstream.call)
    assert recorder.take() == [
        ("attempt", "tax"),
        ("attempt ended", "tax"),
        ("failed", "tax", "circuit_open"),
    ]
    assert counter.calls["tax"] == 2

    # The reset interval passes: half-open is noticed, one probe succeeds and closes it.
    clock.now += 10
    assert await guard.call(upstream.call) == "late answer"
    assert recorder.take() == [
        ("attempt", "tax"),
        ("breaker", "tax", "half_open"),
        ("called", "tax"),
        ("timed", "tax"),
        ("breaker", "tax", "closed"),
        ("attempt ended", "tax"),
    ]
    assert await guard.call(upstream.call) == "answer"
    assert recorder.take() == [*attempt, ("timed", "tax"), ("attempt ended", "tax")]
    assert counter.calls["tax"] == 4


async def test_timeouts_are_reported_and_never_retried():
    recorder = Recorder()
    guard = Guard("traffy", no_backoff(retries=3), clock=Clock(), observer=recorder)
    recorder.take()
    counter = CallCounter(recorder)
    upstream = Upstream(counter, "traffy", UpstreamTimeout("traffy", "no answer in 2 s"))
    with pytest.raises(UpstreamTimeout):
        await guard.call(upstream.call)
    assert recorder.take() == [
        ("attempt", "traffy"),
        ("called", "traffy"),
        ("timed", "traffy"),
        ("attempt ended", "traffy"),
        ("failed", "traffy", "timeout"),
    ]


async def test_a_refused_request_is_reported_rejected_and_leaves_the_breaker_closed():
    recorder = Recorder()
    guard = Guard("traffy", no_backoff(retries=3, breaker_failures=1), observer=recorder)
    recorder.take()
    counter = CallCounter(recorder)
    upstream = Upstream(counter, "traffy", RefusedByUpstream("traffy", "414 URI too long"))
    with pytest.raises(RefusedByUpstream):
        await guard.call(upstream.call)
    events = recorder.take()
    assert ("failed", "traffy", "rejected") in events
    assert not [e for e in events if e[0] == "breaker"]
    assert counter.calls["traffy"] == 1


def test_breaker_transitions_with_an_injected_clock():
    recorder, clock = Recorder(), Clock()
    breaker = CircuitBreaker("registry:1039", failures=2, reset=5, clock=clock, observer=recorder)
    breaker.admit()
    breaker.failed()
    assert breaker.state == "closed"
    breaker.admit()
    breaker.failed()
    assert breaker.state == "open"
    clock.now += 4.9
    assert breaker.state == "open"
    assert not breaker.allows()
    clock.now += 0.1
    assert breaker.state == "half_open"
    breaker.admit()  # the probe
    assert not breaker.allows()  # the others still fail fast
    breaker.failed()  # the probe failed: open again, for another interval
    assert breaker.state == "open"
    clock.now += 5
    breaker.admit()
    breaker.succeeded()
    assert breaker.state == "closed"
    assert [e[2] for e in recorder.take()] == [
        "closed",
        "open",
        "half_open",
        "open",
        "half_open",
        "closed",
    ]


def test_each_transition_reported_once():
    recorder, clock = Recorder(), Clock()
    breaker = CircuitBreaker("tax", failures=1, reset=1, clock=clock, observer=recorder)
    breaker.failed()
    for _ in range(3):
        assert breaker.state == "open"
    clock.now += 1
    for _ in range(3):
        assert breaker.state == "half_open"
    assert [e[2] for e in recorder.take()] == ["closed", "open", "half_open"]


# ---------------------------------------------------------------------------- caches


class Revenue:
    """A batch method of a source: revenue by district, or a failure (fault injection)."""

    def __init__(self) -> None:
        self.failing: UpstreamError | None = None
        self.asked: list[list[str]] = []

    async def fetch(self, keys: list[str]) -> dict[str, object]:
        self.asked.append(keys)
        if self.failing is not None:
            raise self.failing
        return {k: {"district": k, "collected": int(k) * 10} for k in keys}


async def test_cache_lookups_reported_as_hits_misses_and_stale():
    recorder, clock = Recorder(), Clock()
    store = CacheStore(
        CacheSettings(ttls={"tax.revenue": 300}, stale_seconds=600), recorder, clock=clock
    )
    source = Revenue()

    first = await cached_batch(store, "tax.revenue", source.fetch, ["1001", "1039"])
    assert first == {
        "1001": {"district": "1001", "collected": 10010},
        "1039": {"district": "1039", "collected": 10390},
    }
    assert recorder.cache_counts() == {"miss": 2, "hit": 0, "stale": 0}

    clock.now += 299  # still fresh
    again = await cached_batch(store, "tax.revenue", source.fetch, ["1001", "1039", "1050"])
    assert again["1001"] == first["1001"]
    assert source.asked == [["1001", "1039"], ["1050"]]  # only the new key fetched
    assert recorder.cache_counts() == {"hit": 2, "miss": 1, "stale": 0}

    # Past the TTL, the source down: old entries stand in, and the request is told.
    clock.now += 2
    source.failing = UpstreamUnavailable("tax", "connection refused")
    uses: list[StaleUse] = []
    token = stale_uses.set(uses)
    try:
        stale = await cached_batch(store, "tax.revenue", source.fetch, ["1001", "1002"])
    finally:
        stale_uses.reset(token)
    assert stale["1001"] == first["1001"]
    assert stale["1002"] is source.failing  # no entry to stand in: the error
    assert recorder.cache_counts() == {"hit": 0, "stale": 1, "miss": 1}
    assert uses == [StaleUse("tax.revenue", "tax", 301.0)]


async def test_a_cache_turned_off_is_not_reported():
    recorder = Recorder()
    store = CacheStore(CacheSettings(ttls={"tax.revenue": 0}), recorder, clock=Clock())
    source = Revenue()
    await cached_batch(store, "tax.revenue", source.fetch, ["1001"])
    await cached_batch(store, "tax.revenue", source.fetch, ["1001"])
    assert source.asked == [["1001"], ["1001"]]
    assert recorder.take() == []
