"""The benchmarks' load client (bench/http_load.py) reads real responses right: it counts
only complete, checked answers and stops at a wrong one."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from support import Gateway

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.http_load import BadResponse, encode_get, encode_graphql, graphql_ok, load  # noqa: E402


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
