"""The benchmarks' load client (bench/http_load.py) reads real responses right: it counts
only complete, checked answers and stops at a wrong one, or counts error answers by code."""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path

import pytest

from support import Gateway

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.http_load import (  # noqa: E402
    BadResponse,
    Result,
    encode_get,
    encode_graphql,
    graphql_error_codes,
    graphql_ok,
    load,
)


def test_a_closed_loop_of_graphql_requests_is_counted(anonymous: Gateway):
    requests = [
        encode_graphql(
            anonymous.url, "query($c: String!) { district(code: $c) { code } }", {"c": c}
        )
        for c in ("1001", "1002")
    ]
    result = asyncio.run(load(anonymous.url, requests, 0.5, 2, graphql_ok))
    assert result.requests == len(result.latencies) > 10
    assert 0 < result.percentile(0.5) <= result.percentile(0.99)
    assert result.throughput == result.requests / result.seconds


def test_an_error_answer_stops_the_load(anonymous: Gateway):
    wrong = [encode_graphql(anonymous.url, "{ nosuchfield }")]
    with pytest.raises(BadResponse, match="400"):
        asyncio.run(load(anonymous.url, wrong, 0.5, 1, graphql_ok))
    missing = [encode_get(anonymous.url, "/no-such-path")]
    with pytest.raises(BadResponse, match="404"):
        asyncio.run(load(anonymous.url, missing, 0.5, 1))


def test_error_answers_are_counted_by_code_without_stopping_the_load(anonymous: Gateway):
    """With a tally, a validation failure (400) and a denied field (200 with an error) are
    counted by their codes, beside the clean answers, and the load runs on."""
    requests = [
        encode_graphql(anonymous.url, "{ districts { code } }"),
        encode_graphql(anonymous.url, "{ nosuchfield }"),
        encode_graphql(
            anonymous.url, "{ parcels(first: 1) { edges { node { id owner { kind } } } } }"
        ),
    ]
    result = asyncio.run(load(anonymous.url, requests, 0.5, 1, tally=graphql_error_codes))
    assert result.requests == len(result.latencies) >= 6
    # One connection sends the three in turn: a third of the answers each, give or take one.
    assert set(result.errors) == {"GRAPHQL_VALIDATION_FAILED", "FORBIDDEN"}
    assert abs(result.errors["GRAPHQL_VALIDATION_FAILED"] - result.errors["FORBIDDEN"]) <= 1
    assert result.failed == sum(result.errors.values())
    assert result.requests - result.failed >= result.requests // 3
    assert result.good_throughput == (result.requests - result.failed) / result.seconds


def test_error_codes_of_an_answer():
    assert graphql_error_codes(200, b'{"data": {"x": 1}}') == []
    two = b'{"errors": [{"extensions": {"code": "UPSTREAM_TIMEOUT"}}, {"message": "m"}, {"extensions": {"code": "FORBIDDEN"}}, {"extensions": {"code": "FORBIDDEN"}}]}'
    assert graphql_error_codes(200, two) == ["FORBIDDEN", "NO_CODE", "UPSTREAM_TIMEOUT"]
    assert graphql_error_codes(502, b"<html>bad gateway</html>") == ["HTTP 502"]
    assert graphql_error_codes(500, b'{"detail": "x"}') == ["HTTP 500"]


def test_percentiles_are_nearest_rank_in_milliseconds():
    result = Result(10, 1.0, [n / 1000 for n in range(10, 0, -1)])  # 1..10 ms, unordered
    assert result.percentile(0.5) == 5.0
    assert result.percentile(0.9) == 9.0
    assert result.percentile(0.99) == result.percentile(1.0) == 10.0
    assert result.percentile(0.0) == 1.0
    assert math.isnan(Result(0, 1.0, []).percentile(0.5))
