"""Abuse: every abusive request is refused with its code and limit in under 50 ms of server
time, before any upstream call; a flood of them leaves normal queries answered; each
audience gets its own limits.

The requests are bench/abuse.py's, which times the same ones for docs/benchmarks.md. Server
time is the gateway's ``Server-Timing: app;dur=`` header (the handler's own clock).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query

from connectors.districts import all_districts
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.credentials import SCOPES as ALL_SCOPES
from gateway.settings import Settings
from support import REQUIRED_ENV, Gateway, settings_for, start_gateway, wait_until

# The requests are the benchmark's (bench/abuse.py), from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.abuse import ABUSES, JSON_HEADERS, NORMAL_QUERY, Abuse, check, server_ms  # noqa: E402

SERVER_MS = 50.0


@pytest.fixture(scope="module")
def abused(db, traffy_url) -> Iterator[Gateway]:
    """A gateway of its own with default settings: the flood disturbs no other test."""
    server, gw = start_gateway(settings_for(db, traffy_url))
    yield gw
    gw.client.close()
    server.stop()


@pytest.fixture(scope="module")
def agency_headers(issuer: EmbeddedIssuer) -> dict[str, str]:
    token = issuer.issue(
        "agency",
        "bma-dpo",
        " ".join(ALL_SCOPES),
        "secret",
        purpose="pdpa-audit",
        ttl=timedelta(hours=1),
    )
    return {"authorization": f"Bearer {token}"}


def _send(gw: Gateway, abuse: Abuse, n: int, headers: dict[str, str] | None = None):
    return gw.client.post(
        "/graphql", content=abuse.body(n), headers={**JSON_HEADERS, **(headers or {})}
    )


@pytest.mark.parametrize("abuse", ABUSES, ids=[a.name for a in ABUSES])
def test_each_abuse_is_refused_with_its_code_fast(abused: Gateway, abuse: Abuse):
    timings = []
    for n in range(3):  # three different requests: none is answered from a cache
        response = _send(abused, abuse, n)
        error = check(abuse, response)
        assert "Traceback" not in response.text
        assert "data" not in response.json()
        timings.append(server_ms(response))
    # The median of three: a collection of the test process's large heap (all its gateways
    # share one interpreter) can land in any one request.
    assert statistics.median(timings) < SERVER_MS, (abuse.name, timings, error)


@pytest.mark.parametrize("abuse", ABUSES, ids=[a.name for a in ABUSES])
def test_known_callers_are_refused_as_fast(
    abused: Gateway, agency_headers: dict[str, str], abuse: Abuse
):
    """The most generous audience's limits stop the same requests, as fast: the lexer stops
    at its 10,000th token, 200th alias or 21st level."""
    timings = []
    for n in range(3):
        response = _send(abused, abuse, 100 + n, agency_headers)
        assert response.status_code == abuse.status, response.text[:300]
        assert response.json()["errors"][0]["extensions"]["code"] == abuse.code
        timings.append(server_ms(response))
    assert statistics.median(timings) < SERVER_MS, (abuse.name, timings)


def test_no_abuse_reaches_a_source(abused: Gateway):
    abused.reset_counters()
    for abuse in ABUSES:
        check(abuse, _send(abused, abuse, 10))
    calls = {s: n for c in abused.connectors.all() for s, n in c.counter.calls.items()}
    assert calls == {}
    abused.query('{ district(code: "1001") { complaintStats { total } } }')  # they do count
    assert sum(n for c in abused.connectors.all() for n in c.counter.calls.values()) > 0


def test_depth_is_reported_with_what_was_found(abused: Gateway):
    """The lexer refuses direct nesting as soon as it passes the limit (no `actual`); depth
    through fragments is measured on the parsed document (`actual` too)."""
    level = "complaints(first: 1) { edges { node { district { "
    ten = "{ districts { " + level * 2 + "code" + " } } } }" * 2 + " } }"
    assert abused.post(ten).status_code == 200  # the limit itself is allowed
    eleven = ten.replace("code", "complaints(first: 1) { totalCount }")
    direct = abused.post(eleven)
    assert direct.status_code == 400
    assert direct.json()["errors"][0]["extensions"] == {"code": "QUERY_TOO_DEEP", "limit": 10}
    through = abused.post(
        "{ districts { ...A } } fragment A on District { complaints(first: 1) { edges { node {"
        " ...B } } } } fragment B on Complaint { district { complaints(first: 1) { edges { node"
        " { district { complaints(first: 1) { totalCount } } } } } } }"
    )
    assert through.status_code == 400
    assert through.json()["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_DEEP",
        "limit": 10,
        "actual": 11,
    }


def test_nesting_in_arguments_and_get_variables(abused: Gateway, agency_headers: dict[str, str]):
    """A list literal nested past the parser's own bound (200), and variables nested past
    orjson's (1,024) in a GET, are refused with their codes too."""
    literal = "{ complaint(ticketId: " + "[" * 1000 + "]" * 1000 + ") { ticketId } }"
    response = abused.post(literal, headers=agency_headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"] == {"code": "QUERY_TOO_DEEP", "limit": 20}
    variables = "{" + '"v": ' + "[" * 1100 + "]" * 1100 + "}"
    got = abused.client.get(
        "/graphql",
        params={"query": "query($v: [Int]) { districts { code } }", "variables": variables},
    )
    assert got.status_code == 400
    assert got.json()["errors"][0]["extensions"] == {"code": "VARIABLES_TOO_DEEP", "limit": 32}


@pytest.mark.parametrize(
    "cycle",
    [
        "{ districts { ...A } } fragment A on District { ...A }",
        "{ districts { ...A } } fragment A on District { code ...B } fragment B on District { ...C }"
        " fragment C on District { nameEn ...A }",
        "{ districts { ...F0 } } "
        + " ".join(f"fragment F{i} on District {{ code ...F{(i + 1) % 50} }}" for i in range(50)),
    ],
    ids=["self", "three", "ring-of-50"],
)
def test_fragment_cycles_end(abused: Gateway, agency_headers: dict[str, str], cycle: str):
    # As an agency: anonymous callers may not spread 50 fragments at all.
    timings = []
    for n in range(3):  # three documents (a comment apart): none is a cached validation
        response = abused.post(f"{cycle} # {n}", headers=agency_headers)
        error = response.json()["errors"][0]
        assert response.status_code == 400, response.text
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "Cannot spread fragment" in error["message"]
        timings.append(server_ms(response))
    assert statistics.median(timings) < SERVER_MS, timings


@pytest.mark.parametrize(("who", "limit"), [("anonymous", 30), ("agency", 100)])
def test_fragment_spreads_are_capped_before_validation(
    abused: Gateway, agency_headers: dict[str, str], who: str, limit: int
):
    """1,000 spreads side by side would take validation ~350 ms; the lexer stops them."""
    spreads = " ".join("...F" for _ in range(1000))
    query = f"{{ districts {{ {spreads} }} }} fragment F on District {{ code }}"
    timings = []
    for n in range(3):
        response = abused.post(f"{query} # {n}", headers=agency_headers if who == "agency" else {})
        error = response.json()["errors"][0]
        assert response.status_code == 400
        assert error["extensions"] == {"code": "TOO_MANY_FRAGMENT_SPREADS", "limit": limit}
        timings.append(server_ms(response))
    assert statistics.median(timings) < SERVER_MS, timings
    within = " ".join("...F" for _ in range(limit))
    allowed = abused.post(
        f"{{ districts {{ {within} }} }} fragment F on District {{ code }}",
        headers=agency_headers if who == "agency" else {},
    )
    assert allowed.status_code == 200, allowed.text[:300]
    assert len(allowed.json()["data"]["districts"]) == 50


def test_a_batch_over_the_limit_runs_none_of_its_operations(abused: Gateway):
    """Refused whole, before any item is parsed: an item that is not GraphQL does not get
    an error of its own."""
    items = [{"query": "{ districts { code } }"}] * 10 + [{"query": "{ not graphql"}]
    response = abused.client.post("/graphql", json=items)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"] == {
        "code": "BATCH_TOO_LARGE",
        "limit": 10,
        "actual": 11,
    }


def test_the_cost_counts_variables(abused: Gateway, agency_headers: dict[str, str]):
    """The same document, cached once, is cheap or too costly by the value of `first`."""
    query = """query($n: Int) { parcels(first: $n) { edges { node { id
                 signboards { id business { name licences { kind } } } } } } }"""
    small = abused.post(query, {"n": 5})
    assert small.status_code == 200, small.text
    assert len(small.json()["data"]["parcels"]["edges"]) == 5
    big = abused.post(query, {"n": 1000})
    assert big.status_code == 400
    assert big.json()["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COSTLY",
        "limit": 50_000,
        # Each of 1,000 parcels looks up its signboards, each of 10 signboards its business
        # and that business's licences: 21,000 upstream lookups of 5 beside 93,002 values.
        "actual": 198_052,
    }
    # The agency's limit is higher; the default page size counts when `first` is null.
    assert abused.post(query, {"n": 1000}, headers=agency_headers).status_code == 200
    assert abused.post(query, {"n": None}).status_code == 200


def test_limits_differ_by_audience(abused: Gateway, agency_headers: dict[str, str]):
    level = "complaints(first: 1) { edges { node { district { "
    eleven = (
        "{ districts { "
        + level * 2
        + "complaints(first: 1) { totalCount }"
        + " } } } }" * 2
        + " } }"
    )
    assert abused.post(eleven).json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_DEEP"
    answered = abused.post(eleven, headers=agency_headers)
    assert answered.status_code == 200 and "errors" not in answered.json(), answered.text
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(40)) + " }"
    assert abused.post(aliases).json()["errors"][0]["extensions"] == {
        "code": "TOO_MANY_ALIASES",
        "limit": 30,
    }
    assert abused.post(aliases, headers=agency_headers).status_code == 200


def test_suggestions_for_known_callers_only(abused: Gateway, agency_headers: dict[str, str]):
    for query in (
        "{ districts { nameEnn } }",
        "{ parcels(filter: {landUse: RESIDENTAL}) { totalCount } }",
    ):
        anonymous = abused.post(query)
        assert anonymous.status_code == 400
        assert anonymous.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "Did you mean" not in anonymous.text
        agency = abused.post(query, headers=agency_headers)
        assert agency.status_code == 400 and "Did you mean" in agency.text
    # Variable values too: their errors come from coercion, after validation.
    enum = "query($u: LandUse) { parcels(filter: {landUse: $u}) { totalCount } }"
    anonymous = abused.post(enum, {"u": "RESIDENTAL"})
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "Did you mean" not in anonymous.text
    assert "Did you mean" in abused.post(enum, {"u": "RESIDENTAL"}, headers=agency_headers).text


def test_the_standard_introspection_query_fits_every_audience(
    abused: Gateway, agency_headers: dict[str, str]
):
    """GraphiQL's introspection (depth 15) is within even the anonymous limits."""
    query = get_introspection_query(descriptions=True, input_value_deprecation=True)
    for headers in ({}, agency_headers):
        response = abused.post(query, headers=headers)
        assert response.status_code == 200 and response.json()["data"]["__schema"]
    recursive = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
    error = abused.post(recursive).json()["errors"][0]
    assert error["message"] == "Maximum introspection depth exceeded"


@pytest.fixture(scope="module")
def configured(db, traffy_url) -> Iterator[Gateway]:
    """A gateway whose BMA_OPERATION_LIMITS turn anonymous introspection off and lower the
    anonymous page size, read the way the environment variable is."""
    raw = '{"anonymous": {"introspection": false, "max_page_size": 50}}'
    limits = Settings.from_env({**REQUIRED_ENV, "BMA_OPERATION_LIMITS": raw}).operation_limits
    server, gw = start_gateway(settings_for(db, traffy_url, operation_limits=limits))
    yield gw
    gw.client.close()
    server.stop()


def test_introspection_can_be_turned_off_per_audience(
    configured: Gateway, agency_headers: dict[str, str]
):
    for query in (
        "{ __schema { queryType { name } } }",
        '{ __type(name: "Parcel") { name } }',
        '{ districts { ...T } } fragment T on District { code t: __type(name: "X") { name } }',
    ):
        response = configured.post(query)
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "INTROSPECTION_DISABLED"
    typename = configured.query('{ __typename district(code: "1001") { __typename code } }')
    assert typename == {
        "__typename": "Query",
        "district": {"__typename": "District", "code": "1001"},
    }
    agency = configured.post("{ __schema { queryType { name } } }", headers=agency_headers)
    assert agency.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


def test_page_size_per_audience(configured: Gateway, agency_headers: dict[str, str]):
    error = configured.post("{ complaints(first: 51) { totalCount } }").json()["errors"][0]
    assert error["extensions"] == {"code": "PAGE_SIZE_EXCEEDED", "argument": "first", "max": 50}
    fifty = configured.query("{ complaints(first: 50) { edges { cursor } } }")
    assert len(fifty["complaints"]["edges"]) == 50
    agency = configured.post(
        "{ complaints(first: 51) { edges { cursor } } }", headers=agency_headers
    )
    assert len(agency.json()["data"]["complaints"]["edges"]) == 51


# ---------------------------------------------------------------------------- the flood

FLOOD_SECONDS = 1.5
QUIET_SECONDS = 0.5
FLOODERS = 4


def test_normal_queries_are_answered_during_a_flood(abused: Gateway):
    expected = {"districts": [{"code": d.code, "nameEn": d.name_en} for d in all_districts()]}
    assert abused.query(NORMAL_QUERY) == expected and len(expected["districts"]) == 50
    quiet = _normal_latencies(abused, expected, seconds=QUIET_SECONDS)
    stop = threading.Event()
    refused: list[float] = []
    failures: list[str] = []

    def flood(start: int) -> None:
        huge = {a.name: a.body(0) for a in ABUSES if a.status == 413}  # refused unread
        with httpx.Client(base_url=abused.url, timeout=30) as client:
            i = start
            while not stop.is_set():
                abuse = ABUSES[i % len(ABUSES)]
                body = huge.get(abuse.name) or abuse.body(1_000 + i)  # each one new: uncached
                i += 1
                try:
                    response = client.post("/graphql", content=body, headers=JSON_HEADERS)
                    check(abuse, response)
                    refused.append(server_ms(response))
                except Exception as exc:  # reported below: the test thread asserts
                    failures.append(f"{abuse.name}: {exc!r}"[:300])

    threads = [
        threading.Thread(target=flood, args=(k * 1_000_000 + k,), daemon=True)
        for k in range(FLOODERS)
    ]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(refused) >= FLOODERS, what="flood under way")
        during = _normal_latencies(abused, expected, seconds=FLOOD_SECONDS)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not failures, failures[:5]
    assert len(refused) > 50, len(refused)
    # Each refusal alone is held under 50 ms above; here the server shares one interpreter
    # with four flooding threads (the GIL), so single refusals may wait: the median may not.
    assert statistics.median(refused) < SERVER_MS, statistics.median(refused)
    print(
        f"\nnormal query alone: {_summary(quiet)}; during a flood of {len(refused)} refusals "
        f"(server median {statistics.median(refused):.2f} ms, max {max(refused):.1f} ms): "
        f"{_summary(during)}"
    )


def _normal_latencies(gw: Gateway, expected: dict[str, Any], seconds: float) -> list[float]:
    latencies = []
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        stop_at = time.perf_counter() + seconds
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            response = client.post("/graphql", json={"query": NORMAL_QUERY})
            latencies.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.text
            assert response.json() == {"data": expected}
    return latencies


def _summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p = lambda q: ordered[min(len(ordered) - 1, int(len(ordered) * q))]  # noqa: E731
    return f"{len(ordered)} answers, p50 {p(0.5):.1f} ms, p90 {p(0.9):.1f} ms, p99 {p(0.99):.1f} ms"
