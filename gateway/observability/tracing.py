"""Optional OpenTelemetry tracing: one span per GraphQL request and one per upstream call
attempt — never one per field (a 1,000-row answer would make tens of thousands).

Off by default. `BMA_TRACING=1` turns it on at start: spans go through the OTLP/HTTP exporter
to `OTEL_EXPORTER_OTLP_ENDPOINT` (the standard OpenTelemetry variables apply), and need the
`otel` extra (`pip install 'bma-gateway[otel]'`). While off, a span is a no-op context.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_tracer: Any = None  # an opentelemetry Tracer while tracing is on


def enable(provider: Any = None) -> None:
    """Trace from now on, with ``provider`` (default: an SDK provider exporting OTLP/HTTP)."""
    global _tracer
    if provider is None:
        provider = _otlp_provider()
    _tracer = provider.get_tracer("bma-gateway")


def disable() -> None:
    global _tracer
    _tracer = None


_OFF: contextlib.AbstractContextManager[None] = contextlib.nullcontext()


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[None]:
    """A span while tracing is on; else one shared no-op context, made once, not per call."""
    if _tracer is None:
        return _OFF
    return _span(name, attributes)


@contextlib.contextmanager
def _span(name: str, attributes: dict[str, Any]) -> Iterator[None]:
    clean = {k: v for k, v in attributes.items() if v is not None}
    with _tracer.start_as_current_span(name, attributes=clean):
        yield


def _otlp_provider() -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise RuntimeError(
            "BMA_TRACING=1 needs OpenTelemetry: pip install 'bma-gateway[otel]'"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": "bma-gateway"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
