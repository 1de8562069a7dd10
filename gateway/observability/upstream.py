"""What the connectors report, turned into metrics, spans and the request's count of calls.

The gateway injects ``UpstreamMetrics`` into every connector it builds (the connectors define
the ``UpstreamObserver`` protocol and know nothing of Prometheus or OpenTelemetry). Each call
is counted three ways: in ``bma_upstream_calls_total``, in the connector's own counter, and —
while a request handler keeps one (``counting_calls``) — in the request's log line.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from contextvars import ContextVar

from gateway.observability import metrics, tracing

# The upstream calls of the current HTTP request, by source, while its handler counts them.
# DataLoader tasks inherit the context, and so the same Counter.
_request_calls: ContextVar[Counter[str] | None] = ContextVar("request_upstream_calls", default=None)


class counting_calls:  # noqa: N801  (used as a function: `with counting_calls() as calls`)
    """Count the upstream calls made in this context (and the tasks it starts), by source.
    A class, not a generator: it wraps every request."""

    __slots__ = ("calls", "token")

    def __enter__(self) -> Counter[str]:
        self.calls: Counter[str] = Counter()
        self.token = _request_calls.set(self.calls)
        return self.calls

    def __exit__(self, *_exc: object) -> None:
        _request_calls.reset(self.token)


class UpstreamMetrics:
    """The gateway's ``UpstreamObserver`` (``connectors.observer``)."""

    def attempt(self, source: str) -> contextlib.AbstractContextManager[None]:
        return tracing.span("upstream " + source, **{"bma.source": source})

    def called(self, source: str) -> None:
        metrics.observe_upstream_call(source)
        per_request = _request_calls.get()
        if per_request is not None:
            per_request[source] += 1

    def failed(self, source: str, reason: str) -> None:
        metrics.observe_upstream_error(source, reason)

    def timed(self, source: str, seconds: float) -> None:
        metrics.observe_upstream_seconds(source, seconds)

    def breaker(self, source: str, state: str) -> None:
        metrics.observe_breaker(source, state)

    def cache(self, cache: str, result: str, count: int) -> None:
        metrics.observe_cache(cache, result, count)


UPSTREAM_METRICS = UpstreamMetrics()
