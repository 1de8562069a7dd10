"""Content negotiation: Accept read with q-values and wildcards, the statuses of each type."""

from __future__ import annotations

import orjson
import pytest

from gateway import errors
from gateway.http.media_types import (
    GRAPHQL_RESPONSE,
    JSON,
    LEGACY,
    Answer,
    MediaRange,
    graphql_answer,
    negotiate,
    parse_accept,
)

SDL_TYPES = ("text/plain", "application/graphql")


def test_accept_parsed_with_q_and_position():
    assert parse_accept("application/graphql-response+json, application/json;q=0.9") == [
        MediaRange("application", "graphql-response+json", 1.0, 0),
        MediaRange("application", "json", 0.9, 1),
    ]
    # Case, spaces and other parameters do not matter; q is read wherever it stands.
    assert parse_accept(" Application/JSON ; charset=utf-8 ; Q=0.5 ") == [
        MediaRange("application", "json", 0.5, 0)
    ]


@pytest.mark.parametrize(
    "element", ["json", "application/", "/json", "*/json", "application/json;q=2", "x/y;q=abc"]
)
def test_malformed_ranges_are_left_out(element):
    assert parse_accept(f"{element}, text/plain;q=0.1") == [MediaRange("text", "plain", 0.1, 1)]


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        # No Accept: the legacy type (the audit's 80D8).
        (None, JSON),
        ("", JSON),
        ("  ", JSON),
        # What a client should send, and the new type alone (22EB).
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE),
        ("application/graphql-response+json", GRAPHQL_RESPONSE),
        ("application/json;q=0.9, application/graphql-response+json", GRAPHQL_RESPONSE),
        # The legacy type asked for (4655), or any type (47DE): application/json.
        ("application/json", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
        # Equal q, both named: the one listed first.
        ("application/json, application/graphql-response+json", JSON),
        ("application/graphql-response+json, application/json", GRAPHQL_RESPONSE),
        # The more specific range decides a type's q; a named type beats a wildcard's match.
        ("application/json;q=0.5, */*", GRAPHQL_RESPONSE),
        ("application/graphql-response+json;q=0.5, application/*", JSON),
        ("application/graphql-response+json, */*", GRAPHQL_RESPONSE),
        # q=0 refuses a type even where a wildcard would take it.
        ("*/*, application/json;q=0", GRAPHQL_RESPONSE),
        ("application/graphql-response+json;q=0, */*", JSON),
        # Nothing acceptable.
        ("text/html", None),
        ("application/xml, text/*", None),
        ("application/json;q=0", None),
        ("*/*;q=0", None),
        ("garbage", None),
    ],
)
def test_negotiated_graphql_answers(accept, chosen):
    assert negotiate(accept, (JSON, GRAPHQL_RESPONSE)) == chosen


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "text/plain"),
        ("*/*", "text/plain"),
        ("application/graphql", "application/graphql"),
        ("text/plain;q=0.5, application/graphql", "application/graphql"),
        ("text/*", "text/plain"),
        ("application/json", None),
    ],
)
def test_negotiation_serves_any_offers(accept, chosen):
    assert negotiate(accept, SDL_TYPES) == chosen


def test_nothing_acceptable_is_a_406_naming_the_types():
    with pytest.raises(errors.NotAcceptable) as refused:
        graphql_answer("text/html")
    refusal = refused.value
    assert refusal.status == 406
    assert refusal.code == "NOT_ACCEPTABLE"
    assert refusal.extensions == {"offered": [JSON, GRAPHQL_RESPONSE]}
    assert graphql_answer("application/graphql-response+json") == Answer(GRAPHQL_RESPONSE)


def test_statuses_of_each_type():
    modern = Answer(GRAPHQL_RESPONSE)
    for status in (200, 400, 401, 403, 413, 429, 500, 503):
        assert modern.status(status) == status
    # application/json: an operation's request errors are 200; a server's failure is not.
    assert [LEGACY.status(s) for s in (200, 400, 403, 500, 503)] == [200, 200, 200, 500, 503]


def test_content_types_and_bodies():
    modern = Answer(GRAPHQL_RESPONSE).response({"data": {"a": 1}})
    assert modern.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
    assert orjson.loads(modern.body) == {"data": {"a": 1}}
    legacy = LEGACY.response(b'{"data":null}', 200)
    assert legacy.headers["content-type"] == "application/json"
    assert legacy.body == b'{"data":null}'


def test_a_refusal_keeps_its_status_and_headers_under_either_type():
    limited = errors.RateLimited("slow down", 3, {"ratelimit-limit": "10"})
    for answer in (LEGACY, Answer(GRAPHQL_RESPONSE)):
        response = answer.refusal(limited)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.headers["content-type"] == answer.content_type
        assert orjson.loads(response.body)["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
