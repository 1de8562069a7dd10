"""Prometheus metrics: after real traffic, the series count exactly what happened.

The registry is process-wide (every gateway of the test session shares it), so each test
reads the metrics before and after its own traffic and checks the difference. Most tests
read the registry in-process; ``test_metrics_are_served_over_http`` reads ``/metrics``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.base import PageRequest, UpstreamError
from connectors.cache import DEFAULT_TTLS
from connectors.resilience import ResilienceSettings
from connectors.traffy import ComplaintQuery, TraffyConnector
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.embedded import DatabaseUrls
from gateway.http.serving import free_port
from gateway.observability import metrics
from gateway.observability.upstream import UPSTREAM_METRICS, counting_calls
from gateway.ratelimit.config import RateLimit, RateLimits
from support import Gateway, bearer, finance_officer_token, run, settings_for, sql, start_gateway

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

DISTRICT_QUERY = """query MetricsDistrict { district(code: "1004") { code complaintStats { total }
    taxRevenue(year: 2025) { parcelCount } businessCount } }"""
OWNER_QUERY = """query MetricsOwner($id: ID!) {
  parcel(id: $id) { id appraisedValue owner { name nationalId } }
}"""


def read(text: str | None = None) -> Samples:
    """Every sample of the registry (or of an exposition ``text``), by name and labels."""
    found: Samples = {}
    for family in text_string_to_metric_families(text or metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


class Delta:
    """Metrics read now; ``of`` is how much a series grew since."""

    def __init__(self) -> None:
        self.before = read()

    def of(self, name: str, **labels: str) -> float:
        return value(read(), name, **labels) - value(self.before, name, **labels)

    def sum(self, name: str, **labels: str) -> float:
        return total(read(), name, **labels) - total(self.before, name, **labels)


@pytest.fixture(scope="module")
def gw(db: DatabaseUrls, traffy_url: str) -> Iterator[Gateway]:
    server, gateway = start_gateway(settings_for(db, traffy_url))
    yield gateway
    gateway.client.close()
    server.stop()


@pytest.fixture(scope="module")
def parcel_id(db: DatabaseUrls) -> str:
    """A parcel owned by a person: its owner's name and national id are restricted."""
    rows = sql(
        db.tax,
        """SELECT min(p.id) AS id FROM tax.parcels p JOIN tax.owners o ON o.id = p.owner_id
           WHERE o.kind = 'person'""",
    )
    return str(rows[0]["id"])


@pytest.fixture(scope="module")
def finance(issuer: EmbeddedIssuer) -> dict[str, str]:
    token = finance_officer_token(issuer, "metrics-officer")
    return {"authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------- requests


def test_requests_are_counted_by_operation_audience_and_outcome(gw: Gateway):
    delta = Delta()
    for _ in range(3):
        gw.query("query MetricsCodes { districts { code } }")
    assert gw.post("{ districts { code } }").status_code == 200  # unnamed
    assert gw.post("query MetricsBroken { districts {").status_code == 400  # not GraphQL
    assert gw.post("query MetricsBad { nope }").status_code == 400  # invalid
    assert (
        delta.of("bma_requests_total", operation="MetricsCodes", audience="anonymous", outcome="ok")
        == 3
    )
    assert (
        delta.of("bma_requests_total", operation="anonymous", audience="anonymous", outcome="ok")
        == 1
    )
    # A refused document ran no operation: its name (user input) is not a label.
    assert (
        delta.of("bma_requests_total", operation="unknown", audience="anonymous", outcome="refused")
        == 2
    )
    assert delta.sum("bma_requests_total") == 6
    assert delta.of("bma_request_seconds_count", audience="anonymous") == 6
    assert delta.of("bma_request_seconds_sum", audience="anonymous") > 0


def test_operation_names_are_capped_per_audience(monkeypatch: pytest.MonkeyPatch):
    # The process's names stay as they are: this test fills a registry of names of its own.
    monkeypatch.setattr(metrics, "_operations", type(metrics._operations)())
    for n in range(metrics.MAX_OPERATIONS + 5):
        metrics.operation_label(f"MetricsCap{n}", "anonymous")
    assert metrics.operation_label("MetricsCapAfterTheCap", "anonymous") == "other"
    assert metrics.operation_label("MetricsCap0", "anonymous") == "MetricsCap0"  # still kept
    assert metrics.operation_label("MetricsCapAfterTheCap", "agency") == "MetricsCapAfterTheCap"
    assert metrics.operation_label("x" * 500, "agency") == "other"
    assert metrics.operation_label(None, "agency") == "anonymous"


def test_an_anonymous_flood_of_names_leaves_other_audiences_their_labels(
    gw: Gateway, finance: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    """Anonymous callers invent operation names until the cap: an agency's operation, first
    run after the flood, is still counted under its own name."""
    monkeypatch.setattr(metrics, "_operations", type(metrics._operations)())
    monkeypatch.setattr(metrics, "MAX_OPERATIONS", 5)  # a flood of 6 fills it
    delta = Delta()
    for n in range(metrics.MAX_OPERATIONS + 1):
        assert gw.post(f"query MetricsFlood{n} {{ __typename }}").status_code == 200
    assert gw.post("query MetricsOfficer { __typename }", headers=finance).status_code == 200
    assert (
        delta.of("bma_requests_total", operation="other", audience="anonymous", outcome="ok") == 1
    )
    assert (
        delta.of("bma_requests_total", operation="MetricsOfficer", audience="agency", outcome="ok")
        == 1
    )


def test_a_denied_field_counts_against_its_rule(gw: Gateway, parcel_id: str):
    delta = Delta()
    body = gw.post(OWNER_QUERY, {"id": parcel_id}).json()
    assert body["data"]["parcel"]["owner"] is None
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}
    assert delta.of("bma_policy_denials_total", rule="Parcel.owner", code="FORBIDDEN") == 1
    # appraisedValue is confidential: denied to anonymous callers as well.
    assert delta.of("bma_policy_denials_total", rule="Parcel.appraisedValue", code="FORBIDDEN") == 1
    assert delta.sum("bma_policy_denials_total") == len(body["errors"]) == 2
    assert (
        delta.of(
            "bma_requests_total", operation="MetricsOwner", audience="anonymous", outcome="denied"
        )
        == 1
    )


def test_an_audited_read_counts_a_record_and_its_write(
    gw: Gateway, parcel_id: str, finance: dict[str, str]
):
    delta = Delta()
    response = gw.post(OWNER_QUERY, {"id": parcel_id}, headers=finance)
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    assert body["data"]["parcel"]["owner"]["nationalId"]
    assert delta.of("bma_audit_records_total", result="written") == 1
    assert delta.of("bma_audit_records_total", result="refused") == 0
    assert delta.of("bma_audit_write_seconds_count") == 1
    assert delta.of("bma_audit_write_seconds_sum") > 0
    assert value(read(), "bma_audit_queue_depth") == 0  # nothing left waiting
    assert (
        delta.of("bma_requests_total", operation="MetricsOwner", audience="agency", outcome="ok")
        == 1
    )


# ---------------------------------------------------------------------------- upstreams


def test_upstream_calls_match_the_connectors_counters(gw: Gateway):
    gw.reset_counters()
    delta = Delta()
    gw.query(DISTRICT_QUERY)
    counted = {
        source: n
        for connector in gw.connectors.all()
        for source, n in connector.counter.calls.items()
    }
    assert {"tax", "traffy", "registry:1004"} <= counted.keys()
    for source, n in counted.items():
        connector = source.partition(":")[0]
        assert delta.of("bma_upstream_calls_total", connector=connector, source=source) == n
    assert delta.sum("bma_upstream_calls_total") == sum(counted.values())
    by_connector = Counter({s.partition(":")[0]: 0 for s in counted})
    for source, n in counted.items():
        by_connector[source.partition(":")[0]] += n
    for connector, n in by_connector.items():
        assert delta.of("bma_upstream_seconds_count", connector=connector) == n
    assert delta.sum("bma_upstream_errors_total") == 0


def test_the_request_counter_sees_every_call_of_the_request(traffy_url: str):
    """Set in a request handler's context, it counts every upstream call the request makes,
    in tasks it starts (DataLoaders) too; outside such a context nothing is kept."""
    connector = TraffyConnector(traffy_url, observer=UPSTREAM_METRICS)

    async def calls() -> Counter[str]:
        with counting_calls() as kept:
            await connector.start()
            await asyncio.gather(
                asyncio.create_task(connector.stats(["1004"])),
                asyncio.create_task(connector.search(ComplaintQuery(), PageRequest(first=1))),
            )
        await connector.stats(["1004"])  # not in a request: not kept
        await connector.stop()
        return kept

    assert run(calls()) == Counter({"traffy": 2})


def test_errors_and_the_breaker_state_of_a_dead_source():
    settings = ResilienceSettings(retries=1, backoff_base=0.0, breaker_failures=3, breaker_reset=60)
    traffy = TraffyConnector(
        f"http://127.0.0.1:{free_port()}",
        timeout=0.5,
        resilience=settings,
        observer=UPSTREAM_METRICS,
    )
    delta = Delta()
    assert value(read(), "bma_breaker_state", source="traffy") == 0

    async def fail(n: int) -> list[Any]:
        await traffy.start()
        try:
            return [await _failure(traffy) for _ in range(n)]
        finally:
            await traffy.stop()

    # The first read fails twice (a retry), the second once: that opens the breaker, so it
    # is not retried; the third read fails fast, the upstream not asked.
    errors = run(fail(3))
    assert [e.reason for e in errors][-1] == "circuit open"
    labels = {"connector": "traffy", "source": "traffy"}
    assert delta.of("bma_upstream_calls_total", **labels) == 3
    assert delta.of("bma_upstream_errors_total", **labels, reason="unavailable") == 3
    assert delta.of("bma_upstream_errors_total", **labels, reason="circuit_open") == 1
    assert delta.of("bma_upstream_seconds_count", connector="traffy") == 3
    assert value(read(), "bma_breaker_state", source="traffy") == 2


async def _failure(traffy: TraffyConnector) -> UpstreamError:
    try:
        await traffy.stats(["1004"])
    except UpstreamError as exc:
        return exc
    raise AssertionError("a dead source answered")


# ---------------------------------------------------------------------------- caches


def test_cache_hits_and_misses(db: DatabaseUrls, traffy_url: str):
    server, gw = start_gateway(settings_for(db, traffy_url, cache_ttls=dict(DEFAULT_TTLS)))
    try:
        delta = Delta()
        first = 'query MetricsCacheA { district(code: "1004") { code businessCount } }'
        gw.query(first)
        assert delta.of("bma_cache_requests_total", cache="response", result="miss") == 1
        assert delta.of("bma_cache_requests_total", cache="registry.summaries", result="miss") == 1
        gw.query(first)  # the whole answer, from the response cache
        assert delta.of("bma_cache_requests_total", cache="response", result="hit") == 1
        gw.query('query MetricsCacheB { district(code: "1004") { businessCount } }')
        assert delta.of("bma_cache_requests_total", cache="response", result="miss") == 2
        assert delta.of("bma_cache_requests_total", cache="registry.summaries", result="hit") == 1
        assert delta.of("bma_cache_requests_total", cache="registry.summaries", result="miss") == 1
        assert delta.sum("bma_cache_requests_total", result="stale") == 0
        ok = "bma_requests_total"
        assert delta.of(ok, operation="MetricsCacheA", audience="anonymous", outcome="ok") == 2
    finally:
        gw.client.close()
        server.stop()


# ---------------------------------------------------------------------------- rate limits


@pytest.fixture(scope="module")
def limited(db: DatabaseUrls, traffy_url: str) -> Iterator[Gateway]:
    limits = RateLimits(anonymous=RateLimit(rate=0.01, burst=2))
    server, gateway = start_gateway(settings_for(db, traffy_url, rate_limits=limits))
    yield gateway
    gateway.client.close()
    server.stop()


def test_rate_limited_requests_are_counted(limited: Gateway):
    delta = Delta()
    statuses = [
        limited.post("query MetricsLimited { districts { code } }").status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 429, 429]
    assert delta.of("bma_rate_limited_total", audience="anonymous") == 2
    assert (
        delta.of(
            "bma_requests_total", operation="MetricsLimited", audience="anonymous", outcome="ok"
        )
        == 2
    )


def test_metrics_are_served_over_http_to_the_metrics_scope_only(
    gw: Gateway, limited: Gateway, issuer: EmbeddedIssuer, finance: dict[str, str]
):
    """Needs the /metrics route in gateway/app.py; it is not rate limited. It says who uses
    the gateway for what: anonymous callers and principals without ``metrics:read`` get a
    refusal naming the scope, not the metrics."""
    gw.query("query MetricsOverHttp { districts { code } }")
    anonymous = httpx.get(f"{limited.url}/metrics", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["errors"][0]["extensions"] == {
        "code": "SCOPE_REQUIRED",
        "scope": "metrics:read",
    }
    assert 'scope="metrics:read"' in anonymous.headers["www-authenticate"]
    assert "bma_requests_total" not in anonymous.text
    officer = httpx.get(f"{limited.url}/metrics", headers=finance, timeout=10)
    assert officer.status_code == 403 and "bma_" not in officer.text
    forged = httpx.get(f"{limited.url}/metrics", headers=bearer("eyJ.e30.x"), timeout=10)
    assert forged.status_code == 401
    assert forged.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    scraper = bearer(issuer.issue("partner", "bma-monitoring", "metrics:read"))
    for _ in range(3):  # more than the burst: /metrics is not limited
        response = httpx.get(f"{limited.url}/metrics", headers=scraper, timeout=10)
        assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    served = read(response.text)
    labels = {"operation": "MetricsOverHttp", "audience": "anonymous"}
    assert total(served, "bma_requests_total", **labels) == 1
    for name in (
        "bma_request_seconds_count",
        "bma_upstream_calls_total",
        "bma_breaker_state",
        "bma_audit_queue_depth",
    ):
        assert any(n == name for n, _ in served), name
