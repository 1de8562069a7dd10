"""Prometheus metrics of one gateway process, served at ``/metrics`` in the text format.

Every metric lives on ``REGISTRY``, a registry of our own rather than prometheus-client's
global default: tests and scripts that start several gateways in one process share it
without clashing on registration, and nothing a library registers globally leaks out.

Labels take bounded values only — never raw user input:

* ``operation``: the name of the operation that ran, as the parsed document spells it (a
  GraphQL name); ``anonymous`` for an unnamed one, ``unknown`` when no operation ran (the
  document was refused before execution). The first ``MAX_OPERATIONS`` distinct names of
  each audience are kept; any later name of that audience is counted as ``other``. Each
  audience has slots of its own, so anonymous callers inventing names fill only theirs and
  never turn an agency's operations into ``other``.
* ``audience``: the principal's kind (anonymous, app, partner, agency).
* ``outcome`` of a request (one GraphQL operation):
  ``ok`` (data, no errors), ``partial`` (data beside errors, e.g. a source down),
  ``denied`` (the policy refused a field: errors coded FORBIDDEN or PURPOSE_REQUIRED, with
  or without other data), ``refused`` (4xx: limits, validation, bad variables),
  ``unavailable`` (5xx: e.g. restricted data while the audit store is down), ``error`` (a
  bug raised out of the executor: answered 500 with a reference). Requests refused before
  an operation runs — 401, 413, malformed JSON, 429 — are not operations and not counted
  here (429s are ``bma_rate_limited_total``).
* ``connector`` and ``source``: the connector (``tax``, ``registry``, ``traffy``,
  ``audit``) and its source (``registry:1039``...): about 53 in all.
* ``reason`` of an upstream error: ``unavailable``, ``timeout``, ``circuit_open`` (failed
  fast, the upstream not asked) or ``rejected`` (the source refused our request as such).
* ``cache``: the cache names of ``connectors.cache.DEFAULT_TTLS`` (``response`` included);
  ``result``: ``hit`` (fresh entry), ``miss`` (fetched), ``stale`` (the fetch failed and an
  expired entry was served instead) — one per key looked up, exclusive.
* ``rule``: a policy rule's field coordinate (``Owner.nationalId``); ``code``: the denial code.

Multiprocess serving (``bma-gateway serve --workers N``) is out of scope: each worker has its
own registry, and a scrape reaches whichever worker accepts it. Run one worker per scraped
target, or add prometheus-client's multiprocess mode later.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "REGISTRY", "observe_request", "operation_label", "render"]

REGISTRY = CollectorRegistry(auto_describe=True)

MAX_OPERATIONS = 200  # distinct operation names kept per audience; later ones count as "other"
MAX_NAME_LENGTH = 100

# Request latency: a cached answer takes a millisecond, a fan-out over 50 districts more.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_UPSTREAM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

requests = Counter(
    "bma_requests",
    "GraphQL operations answered, by operation name, audience and outcome",
    ["operation", "audience", "outcome"],
    registry=REGISTRY,
)
request_seconds = Histogram(
    "bma_request_seconds",
    "Time to answer one GraphQL operation (limits, execution, audit), by audience",
    ["audience"],
    buckets=_REQUEST_BUCKETS,
    registry=REGISTRY,
)
upstream_calls = Counter(
    "bma_upstream_calls",
    "Upstream calls made (each attempt, retries included), by connector and source",
    ["connector", "source"],
    registry=REGISTRY,
)
upstream_errors = Counter(
    "bma_upstream_errors",
    "Upstream calls that failed, or failed fast, by connector, source and reason",
    ["connector", "source", "reason"],
    registry=REGISTRY,
)
upstream_seconds = Histogram(
    "bma_upstream_seconds",
    "Time of one upstream call attempt (not the wait for a slot), by connector",
    ["connector"],
    buckets=_UPSTREAM_BUCKETS,
    registry=REGISTRY,
)
cache_requests = Counter(
    "bma_cache_requests",
    "Cache lookups by cache and result (hit, miss, stale)",
    ["cache", "result"],
    registry=REGISTRY,
)
policy_denials = Counter(
    "bma_policy_denials",
    "Fields the access policy refused, by rule (field coordinate) and code",
    ["rule", "code"],
    registry=REGISTRY,
)
audit_queue_depth = Gauge(
    "bma_audit_queue_depth",
    "Audit records waiting for the next batch to be written",
    registry=REGISTRY,
)
audit_write_seconds = Histogram(
    "bma_audit_write_seconds",
    "Time to write (commit) one batch of audit records",
    buckets=_UPSTREAM_BUCKETS,
    registry=REGISTRY,
)
audit_records = Counter(
    "bma_audit_records",
    "Audit records by result: written (committed) or refused (store down, queue full)",
    ["result"],
    registry=REGISTRY,
)
rate_limited = Counter(
    "bma_rate_limited",
    "Requests refused with 429 by the rate limiter, by audience",
    ["audience"],
    registry=REGISTRY,
)
executions = Counter(
    "bma_executions",
    "Operations executed, by path: compiled, or the reference executor and why (fallback)",
    ["path", "reason"],
    registry=REGISTRY,
)
breaker_state = Gauge(
    "bma_breaker_state",
    "Circuit breaker state by source: 0 closed, 1 half-open, 2 open",
    ["source"],
    registry=REGISTRY,
)

BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}

_operations: dict[str, set[str]] = {}  # audience -> the operation names kept as labels
_operations_lock = threading.Lock()


def render() -> bytes:
    """The registry in the Prometheus text format (serve as ``CONTENT_TYPE_LATEST``)."""
    return generate_latest(REGISTRY)


def operation_label(name: str | None, audience: str) -> str:
    """A bounded label for an operation name: kept for the first ``MAX_OPERATIONS`` names
    of ``audience`` (a principal's kind: a bounded set itself)."""
    if not name:
        return "anonymous"
    kept = _operations.get(audience)
    if kept is not None and name in kept:
        return name
    if len(name) > MAX_NAME_LENGTH:
        return "other"
    with _operations_lock:
        kept = _operations.setdefault(audience, set())
        if name not in kept and len(kept) >= MAX_OPERATIONS:
            return "other"
        kept.add(name)
    return name


def connector_of(source: str) -> str:
    """The connector a source belongs to: ``registry:1039`` -> ``registry``."""
    return source.partition(":")[0]


# The series of each label set, looked up once: ``labels()`` validates and locks on every
# call, a measurable share of a request answered from the response cache. Label values are
# bounded (see above), and so are these tables.
_request_series: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_cache_series: dict[tuple[str, str], Any] = {}


def observe_request(operation: str, audience: str, outcome: str, seconds: float) -> None:
    """One GraphQL operation answered; ``operation`` is a label (``operation_label``)."""
    series = _request_series.get((operation, audience, outcome))
    if series is None:
        series = (requests.labels(operation, audience, outcome), request_seconds.labels(audience))
        _request_series[(operation, audience, outcome)] = series
    count, duration = series
    count.inc()
    duration.observe(seconds)


def observe_upstream_call(source: str) -> None:
    upstream_calls.labels(connector_of(source), source).inc()


def observe_upstream_error(source: str, reason: str) -> None:
    upstream_errors.labels(connector_of(source), source, reason).inc()


def observe_upstream_seconds(source: str, seconds: float) -> None:
    upstream_seconds.labels(connector_of(source)).observe(seconds)


def observe_cache(cache: str, result: str, n: int = 1) -> None:
    if n:
        series = _cache_series.get((cache, result))
        if series is None:
            series = _cache_series[(cache, result)] = cache_requests.labels(cache, result)
        series.inc(n)


def observe_denial(rule: str, code: str) -> None:
    policy_denials.labels(rule, code).inc()


def observe_execution(path: str, reason: str = "") -> None:
    executions.labels(path, reason).inc()


def observe_breaker(source: str, state: str) -> None:
    breaker_state.labels(source).set(BREAKER_VALUES[state])
