"""What the connectors report about their upstream calls, to whoever watches them.

The connectors measure nothing themselves: each tells an ``UpstreamObserver`` what happened —
a call made, an attempt's time and failure, a circuit breaker's move, a cache lookup — and
the gateway injects the observer that turns those into metrics, spans and the request's log
line (``gateway.observability.upstream``). Left alone, a connector reports to ``QUIET``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol


class UpstreamObserver(Protocol):
    def attempt(self, source: str) -> contextlib.AbstractContextManager[None]:
        """Wraps one attempt of an upstream call (a span, when tracing is on)."""
        ...

    def called(self, source: str) -> None:
        """A call reached the upstream ``source`` (retries count again)."""

    def failed(self, source: str, reason: str) -> None:
        """An attempt failed: ``unavailable``, ``timeout``, ``circuit_open`` or ``rejected``."""

    def timed(self, source: str, seconds: float) -> None:
        """How long one admitted attempt took (not the wait for a slot)."""

    def breaker(self, source: str, state: str) -> None:
        """The source's circuit breaker is now ``closed``, ``half_open`` or ``open``."""

    def cache(self, cache: str, result: str, count: int) -> None:
        """``count`` keys looked up in ``cache`` were a ``hit``, ``miss`` or ``stale``."""


class QuietObserver:
    """Reports to nobody: connectors built outside the gateway (scripts, unit tests)."""

    @contextlib.contextmanager
    def attempt(self, source: str) -> Iterator[None]:
        yield

    def called(self, source: str) -> None:
        pass

    def failed(self, source: str, reason: str) -> None:
        pass

    def timed(self, source: str, seconds: float) -> None:
        pass

    def breaker(self, source: str, state: str) -> None:
        pass

    def cache(self, cache: str, result: str, count: int) -> None:
        pass


QUIET: UpstreamObserver = QuietObserver()
