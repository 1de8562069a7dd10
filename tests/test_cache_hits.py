"""The thin way of a response-cache hit (``GraphQLHTTP._from_cache``, ``Executor.cached``):
through a running gateway, a hit answers what the whole way answers — the same bytes and
headers, counted, logged, rate-limited — and every request it cannot answer (a refused
credential, variables that do not fit, a body the handler refuses, an entry no longer stored)
is answered by the whole way as before. (What is cached for whom: tests/test_caching.py.)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator

import httpx
import orjson
import pytest

from connectors.cache import DEFAULT_TTLS
from gateway.demo.embedded import DatabaseUrls
from gateway.execution.response_cache import NAME
from gateway.limits.config import DEFAULTS, AudienceLimits
from gateway.observability import metrics
from gateway.ratelimit.config import RateLimit, RateLimits
from support import Gateway, run, settings_for, start_gateway

QUERY = 'query HitDistrict { district(code: "1004") { code nameEn businessCount } }'
BY_CODE = "query HitByCode($code: String!) { district(code: $code) { code nameEn } }"
# Headers that differ between any two answers.
PER_ANSWER = {"x-request-id", "server-timing", "x-cache", "date"}


@pytest.fixture(scope="module")
def gw(db: DatabaseUrls, traffy_url: str) -> Iterator[Gateway]:
    server, gateway = start_gateway(settings_for(db, traffy_url, cache_ttls=dict(DEFAULT_TTLS)))
    yield gateway
    gateway.client.close()
    server.stop()


def clear_response_cache(gw: Gateway) -> None:
    assert gw.connectors.cache is not None
    run(gw.connectors.cache.clear([NAME]))


def requests_counted(operation: str, outcome: str = "ok") -> float:
    value = metrics.REGISTRY.get_sample_value(
        "bma_requests_total", {"operation": operation, "audience": "anonymous", "outcome": outcome}
    )
    return value or 0.0


def hits_counted() -> float:
    value = metrics.REGISTRY.get_sample_value(
        "bma_cache_requests_total", {"cache": NAME, "result": "hit"}
    )
    return value or 0.0


def test_a_hit_carries_the_bytes_and_headers_of_the_miss(gw: Gateway):
    clear_response_cache(gw)
    miss = gw.post(QUERY)
    hit = gw.post(QUERY, headers={"x-request-id": "hit-1"})
    assert (miss.status_code, hit.status_code) == (200, 200)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert hit.content == miss.content
    assert [k for k, _ in hit.headers.multi_items()] == [k for k, _ in miss.headers.multi_items()]
    same = {k: v for k, v in miss.headers.items() if k not in PER_ANSWER}
    assert {k: v for k, v in hit.headers.items() if k not in PER_ANSWER} == same
    assert same["content-type"] == "application/graphql-response+json; charset=utf-8"
    assert same["vary"] == "accept"
    assert same["x-content-type-options"] == "nosniff"
    assert same["cache-control"] == "no-store"
    assert hit.headers["x-request-id"] == "hit-1"  # the caller's id, kept
    assert hit.headers["server-timing"].startswith("app;dur=")


def test_a_hit_answers_in_the_media_type_asked_for(gw: Gateway):
    gw.query(QUERY)  # stored
    legacy = gw.post(QUERY, headers={"accept": "application/json"})
    assert legacy.headers["x-cache"] == "hit"
    assert legacy.headers["content-type"] == "application/json"
    refused = gw.post(QUERY, headers={"accept": "text/html"})
    assert refused.status_code == 406  # the full path says why
    assert refused.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"


def test_a_hit_is_counted_as_the_operation_it_answers(gw: Gateway):
    gw.query(QUERY)  # stored, and known
    before, hits = requests_counted("HitDistrict"), hits_counted()
    for _ in range(3):
        assert gw.post(QUERY).headers["x-cache"] == "hit"
    assert requests_counted("HitDistrict") - before == 3
    assert hits_counted() - hits == 3


def test_a_hit_leaves_its_request_line(gw: Gateway, caplog: pytest.LogCaptureFixture):
    gw.query(QUERY)
    with caplog.at_level(logging.INFO, logger="bma.request"):
        hit = gw.post(QUERY, headers={"x-request-id": "hit-logged"})
    assert hit.headers["x-cache"] == "hit"
    [line] = [r for r in caplog.records if getattr(r, "request_id", None) == "hit-logged"]
    assert line.status == 200  # type: ignore[attr-defined]
    assert line.cache == "hit"  # type: ignore[attr-defined]
    assert line.principal == "anonymous"  # type: ignore[attr-defined]
    assert line.upstream_calls == {}  # type: ignore[attr-defined]
    [operation] = line.operations  # type: ignore[attr-defined]
    assert operation["name"] is None  # no operationName was sent
    assert len(operation["document"]) == 64


def test_variables_are_checked_on_every_hit(gw: Gateway):
    assert gw.query(BY_CODE, {"code": "1004"})["district"]["code"] == "1004"
    assert gw.post(BY_CODE, {"code": "1004"}).headers["x-cache"] == "hit"
    # Another value is another answer; a value that does not fit, or none, is refused as
    # the whole way refuses it, never answered from another caller's entry.
    other = gw.post(BY_CODE, {"code": "1005"})
    assert other.headers["x-cache"] == "miss"
    assert other.json()["data"]["district"]["code"] == "1005"
    for variables in ({"code": 1004}, {}, None):
        refused = gw.post(BY_CODE, variables)
        assert refused.status_code == 400, refused.text
        assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "x-cache" not in refused.headers


def test_an_entry_cleared_from_the_store_is_executed_again(gw: Gateway):
    """What is kept per document says how to look an answer up, never the answer."""
    gw.query(QUERY)
    assert gw.post(QUERY).headers["x-cache"] == "hit"
    clear_response_cache(gw)
    again = gw.post(QUERY)
    assert again.headers["x-cache"] == "miss"
    assert gw.post(QUERY).headers["x-cache"] == "hit"


def test_a_refused_credential_is_refused_on_a_known_operation(gw: Gateway):
    gw.query(QUERY)
    forged = gw.post(QUERY, headers={"authorization": "Bearer not.a.token"})
    assert forged.status_code == 401
    assert forged.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"query": ', "application/json", 400),  # not JSON
        (b'{"query": 5}', "application/json", 400),  # not an operation
        (orjson.dumps({"query": QUERY}), "text/plain", 415),  # not a GraphQL media type
    ],
)
def test_a_body_the_handler_refuses_is_refused_as_before(
    gw: Gateway, content: bytes, content_type: str, status: int
):
    gw.query(QUERY)
    refused = gw.client.post("/graphql", content=content, headers={"content-type": content_type})
    assert refused.status_code == status
    assert refused.json()["errors"][0]["extensions"]["code"]


def test_other_ways_to_ask_are_answered_by_the_handler(gw: Gateway):
    """A batch, a GET, a streamed body without Content-Length and a media type with
    parameters: the same answer, each read by the whole way or the thin one."""
    expected = gw.query(QUERY)
    batch = gw.client.post("/graphql", json=[{"query": QUERY}, {"query": QUERY}])
    assert [a["data"] for a in batch.json()] == [expected, expected]
    got = gw.client.get("/graphql", params={"query": QUERY})
    assert (got.status_code, got.json()["data"]) == (200, expected)

    def chunks() -> Iterator[bytes]:
        body = orjson.dumps({"query": QUERY})
        yield body[:10]
        yield body[10:]

    streamed = gw.client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert (streamed.status_code, streamed.json()["data"]) == (200, expected)
    typed = gw.client.post(
        "/graphql",
        content=orjson.dumps({"query": QUERY}),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert (typed.headers["x-cache"], typed.json()["data"]) == ("hit", expected)


def test_hits_take_from_the_rate_limit(db: DatabaseUrls, traffy_url: str):
    limits = RateLimits(anonymous=RateLimit(rate=0.001, burst=3))
    settings = settings_for(db, traffy_url, cache_ttls=dict(DEFAULT_TTLS), rate_limits=limits)
    server, gw = start_gateway(settings)
    try:
        answers = [gw.post(QUERY) for _ in range(4)]
    finally:
        gw.client.close()
        server.stop()
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers.get("x-cache") for a in answers[:3]] == ["miss", "hit", "hit"]
    assert [a.headers["ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[3].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def test_a_client_reading_a_hit_over_http_gets_it_whole(gw: Gateway):
    """Content-Length and body agree (the thin way builds its own headers)."""
    gw.query(QUERY)
    with httpx.stream("POST", gw.url + "/graphql", json={"query": QUERY}) as hit:
        body = hit.read()
    assert hit.headers["x-cache"] == "hit"
    assert int(hit.headers["content-length"]) == len(body)
    assert orjson.loads(body)["data"] == gw.query(QUERY)


def test_a_hit_holds_each_audience_to_its_own_cost_limit(
    db: DatabaseUrls, traffy_url: str, principals: dict[str, dict[str, str]]
):
    """A partner and anonymous callers share entries (same row scope and page sizes), not
    limits: anonymous asking with the variables of a partner's stored answer is refused for
    their cost, not answered from the partner's entry."""
    cheap = dataclasses.replace(DEFAULTS["anonymous"], max_cost=120)
    settings = settings_for(
        db,
        traffy_url,
        cache_ttls=dict(DEFAULT_TTLS),
        operation_limits=AudienceLimits(anonymous=cheap),
    )
    server, gw = start_gateway(settings)
    query = "query HitCost($n: Int) { complaints(first: $n) { edges { node { ticketId } } } }"
    try:
        assert gw.post(query, {"n": 60}, headers=principals["partner"]).status_code == 200
        assert gw.post(query, {"n": 60}, headers=principals["partner"]).headers["x-cache"] == "hit"
        assert gw.post(query, {"n": 2}).status_code == 200  # anonymous: known now
        assert gw.post(query, {"n": 2}).headers["x-cache"] == "hit"
        refused = gw.post(query, {"n": 60})
    finally:
        gw.client.close()
        server.stop()
    assert refused.status_code == 400
    assert "x-cache" not in refused.headers
    assert refused.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
