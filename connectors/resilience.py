"""Resilience around every upstream call: a concurrency bound, a circuit breaker, retries.

Each source (BMA TAX, each district registry, Traffy) gets its own ``Guard``, so one source
in trouble cannot take the others down with it:

* A **concurrency bound** (a semaphore): a slow source holds at most ``concurrency`` of our
  calls; more wait for a slot (no longer than the call's timeout) instead of piling up
  connections on a system that is already struggling.
* A **circuit breaker**: after ``breaker_failures`` consecutive failures the source is taken
  for down. Calls then fail at once with ``CircuitOpen`` (an ``UpstreamUnavailable``) without
  touching it: clients get their partial result without waiting for a timeout, and the source
  gets room to recover. After ``breaker_reset`` seconds one probe call is let through (the
  others still fail fast): success closes the breaker, failure opens it again.
* **Bounded retries with full jitter**, for idempotent reads that failed *unavailable*
  (refused, reset, 5xx, unreadable answer): such failures are often momentary — a restart, a
  failover, a pooled connection cut by the network — and a quick retry hides them. Timeouts
  are never retried: asking a slow system again only makes it slower. The jitter spreads the
  retries of many requests so they do not arrive together.

Timeouts themselves belong to the connectors (they know what a call is); ``Guard`` only
bounds the wait for a slot. Time is ``time.monotonic`` unless a clock is injected (tests).
What happens is reported to the ``UpstreamObserver`` the guard is given (``connectors.observer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from connectors.base import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from connectors.observer import QUIET, UpstreamObserver

T = TypeVar("T")

Clock = Callable[[], float]


@dataclass(frozen=True)
class ResilienceSettings:
    """How hard one source is tried and when it is left alone; one set for every source."""

    retries: int = 2  # extra attempts of an idempotent read that failed unavailable
    backoff_base: float = 0.05  # seconds; attempt n waits uniform(0, base * 2**(n-1))
    backoff_cap: float = 1.0  # seconds; the longest wait before a retry
    breaker_failures: int = 5  # consecutive failures that open the breaker
    breaker_reset: float = 10.0  # seconds open before a half-open probe
    concurrency: int = 20  # calls in flight per source

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must not be negative")
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise ValueError("backoff must not be negative")
        if self.breaker_failures < 1:
            raise ValueError("breaker_failures must be at least 1")
        if self.breaker_reset < 0:
            raise ValueError("breaker_reset must not be negative")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # the reset interval has passed: the next call is a probe


class CircuitOpen(UpstreamUnavailable):
    """A call refused by an open breaker: the upstream was not asked."""

    def __init__(self, source: str) -> None:
        super().__init__(source, "circuit open")


class RefusedByUpstream(UpstreamUnavailable):
    """The source refused this request as such (too long, malformed): our request's fault,
    not an outage, so it is neither retried nor counted against the source's breaker."""


class CircuitBreaker:
    """Closed, open or half-open, from the outcomes of the calls it admitted."""

    def __init__(
        self,
        source: str,
        failures: int = 5,
        reset: float = 10.0,
        clock: Clock = time.monotonic,
        observer: UpstreamObserver = QUIET,
    ) -> None:
        self.source = source
        self.failures_to_open = max(1, failures)
        self.reset = reset
        self._clock = clock
        self._observer = observer
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive, while closed
        self._opened_at = 0.0
        self._probing = False  # a half-open probe is in flight
        self._reported = BreakerState.CLOSED  # the state last reported to the observer
        observer.breaker(source, BreakerState.CLOSED.value)

    @property
    def state(self) -> BreakerState:
        state = self._state
        if state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset:
            state = BreakerState.HALF_OPEN
        self._report(state)  # half-open is noticed when the state is read
        return state

    def _report(self, state: BreakerState) -> None:
        """Report a transition to the observer (one comparison when there is none)."""
        if state is not self._reported:
            self._reported = state
            self._observer.breaker(self.source, state.value)

    def allows(self) -> bool:
        """Whether a call now would be admitted; changes nothing."""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._probing
        )

    def admit(self) -> None:
        """Let one call through, or raise ``CircuitOpen``. In half-open, the call admitted
        is the probe and every other call fails fast until its outcome is known."""
        if not self.allows():
            raise CircuitOpen(self.source)
        if self.state is BreakerState.HALF_OPEN:
            self._state = BreakerState.HALF_OPEN
            self._probing = True

    def succeeded(self) -> None:
        """The source answered: it is up."""
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probing = False
        self._report(BreakerState.CLOSED)

    def failed(self) -> None:
        """The source failed a call: count it, open at the threshold, re-open after a probe."""
        if self._state is BreakerState.HALF_OPEN:
            self._open()
        elif self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.failures_to_open:
                self._open()
        # Already open: a call admitted before it opened; the open interval stands.

    def released(self) -> None:
        """A call ended with no verdict on the source (cancelled, or our own error): if it
        was the probe, the next call probes instead."""
        self._probing = False

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0
        self._probing = False
        self._report(BreakerState.OPEN)


class Guard:
    """One source's concurrency bound, breaker and retries, around its upstream calls."""

    def __init__(
        self,
        source: str,
        settings: ResilienceSettings | None = None,
        *,
        queue_timeout: float | None = None,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
        observer: UpstreamObserver = QUIET,
    ) -> None:
        self.source = source
        self.settings = settings or ResilienceSettings()
        self.observer = observer
        self.breaker = CircuitBreaker(
            source, self.settings.breaker_failures, self.settings.breaker_reset, clock, observer
        )
        self.queue_timeout = queue_timeout  # longest wait for a slot; None: no limit
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        self._ended = 0  # calls that ended (released their slot): the queue is moving
        self._rng = rng or random.Random()

    async def call(self, attempt: Callable[[], Awaitable[T]], *, idempotent: bool = True) -> T:
        """``attempt()`` under the bound and the breaker; an idempotent one is retried (with
        jittered backoff) while it fails unavailable and the breaker lets it."""
        tries = 1 + (self.settings.retries if idempotent else 0)
        n = 1
        while True:
            try:
                return await self._once(attempt)
            except (CircuitOpen, RefusedByUpstream):
                raise
            except UpstreamUnavailable as exc:
                if n >= tries:
                    raise
                last = exc
            await asyncio.sleep(self.backoff(n))
            if not self.breaker.allows():
                raise last  # opened meanwhile: the real reason says more than "circuit open"
            n += 1

    def backoff(self, retry: int) -> float:
        """Seconds before retry ``retry`` (1, 2, ...): full jitter under a capped exponential."""
        ceiling = min(self.settings.backoff_cap, self.settings.backoff_base * 2 ** (retry - 1))
        return self._rng.uniform(0, ceiling)

    async def _once(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """One attempt, wrapped by the observer; its failure reported by reason."""
        try:
            with self.observer.attempt(self.source):
                return await self._attempt(attempt)
        except CircuitOpen:
            self.observer.failed(self.source, "circuit_open")
            raise
        except RefusedByUpstream:
            self.observer.failed(self.source, "rejected")
            raise
        except UpstreamTimeout:  # the call's timeout, or no slot in time
            self.observer.failed(self.source, "timeout")
            raise
        except UpstreamError:
            self.observer.failed(self.source, "unavailable")
            raise

    async def _attempt(self, attempt: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allows():  # fail fast, without queueing for a slot
            raise CircuitOpen(self.source)
        async with self._slot():
            self.breaker.admit()  # again: it may have opened while we waited
            began = time.perf_counter()
            try:
                result = await attempt()
            except RefusedByUpstream:
                self.breaker.released()
                raise
            except UpstreamError:
                self.breaker.failed()
                raise
            except BaseException:
                self.breaker.released()
                raise
            finally:
                self.observer.timed(self.source, time.perf_counter() - began)
            self.breaker.succeeded()
            return result

    def _semaphore(self) -> asyncio.Semaphore:
        """The bound of the running loop (a semaphore belongs to one loop; the gateway runs
        one, but a script or a test may run the same connector under several in turn)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:
            self._slots, self._slots_loop = asyncio.Semaphore(self.settings.concurrency), loop
        return self._slots

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """A slot of the bound. A call waits as long as the calls ahead of it keep ending:
        under load (a busy event loop, a slow but answering source) answers come later,
        not as errors. It gives up when no call has ended for ``queue_timeout`` seconds
        while it waited: the source is stuck, and queueing more would not help."""
        slots = self._semaphore()
        # One acquisition, never cancelled while the queue moves: the caller keeps its
        # place in the semaphore's line.
        acquiring = asyncio.ensure_future(slots.acquire())
        try:
            while True:
                ended = self._ended
                done, _ = await asyncio.wait({acquiring}, timeout=self.queue_timeout)
                if done:
                    break
                if self._ended == ended:
                    raise UpstreamTimeout(
                        self.source,
                        f"{self.settings.concurrency} calls in flight, none ended for "
                        f"{self.queue_timeout:g} s",
                    )
        except BaseException:
            if not acquiring.cancel() and not acquiring.cancelled():
                slots.release()  # acquired just as we gave up
            raise
        acquiring.result()
        try:
            yield
        finally:
            self._ended += 1
            slots.release()
