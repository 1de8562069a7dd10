"""Tracing, when turned on: a span per request and per upstream call attempt, none per field;
off by default, and then no span at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.observability import tracing
from gateway.settings import Settings
from support import REQUIRED_ENV, Gateway

QUERY = "{ districts { code nameEn complaintStats { total } businessCount } }"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    yield exporter
    tracing.disable()


def test_a_request_is_one_span_with_one_child_per_upstream_call(
    anonymous: Gateway, spans: InMemorySpanExporter
):
    anonymous.reset_counters()
    response = anonymous.post(QUERY, headers={"x-request-id": "traced-1"})
    assert response.status_code == 200
    calls = sum(sum(c.counter.calls.values()) for c in anonymous.connectors.all())
    finished = spans.get_finished_spans()
    [request] = [s for s in finished if s.name == "graphql request"]
    assert request.attributes["bma.request_id"] == "traced-1"
    upstream = [s for s in finished if s.name.startswith("upstream ")]
    assert len(upstream) == calls == 51  # Traffy's statistics and the 50 district sources
    assert all(
        s.parent is not None and s.parent.span_id == request.context.span_id for s in upstream
    )
    assert {s.attributes["bma.source"] for s in upstream} >= {"traffy", "registry:1039"}
    # 50 districts x 4 fields, and not a span for any of them.
    assert len(finished) == 1 + len(upstream)


def test_tracing_is_off_by_default_and_says_what_it_needs(anonymous: Gateway):
    env = dict(REQUIRED_ENV)
    assert Settings.from_env(env).tracing is False
    assert Settings.from_env({**env, "BMA_TRACING": "1"}).tracing is True
    assert tracing._tracer is None  # nothing turned it on: requests make no spans
    with tracing.span("anything"):
        pass
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match=r"bma-gateway\[otel\]"):
            tracing.enable()  # the default OTLP exporter is not installed
    else:
        tracing.enable()
        assert tracing._tracer is not None
        tracing.disable()
    assert tracing._tracer is None
