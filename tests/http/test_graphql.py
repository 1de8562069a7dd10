"""Reading a GraphQL request: what cannot be an operation is refused before execution."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.errors import BadRequest, VariablesTooDeep
from gateway.execution.executor import Operation
from gateway.http.graphql import ORJSON_DEPTH, _json, _nested_too_deep, _operation
from gateway.limits.config import DEFAULTS

ANONYMOUS = DEFAULTS["anonymous"]


# ---------------------------------------------------------------------------- _operation


def test_an_operation_read():
    operation = _operation(
        {
            "query": "query Q($c: String!) { district(code: $c) { code } }",
            "variables": {"c": "1039"},
            "operationName": "Q",
        }
    )
    assert operation == Operation(
        "query Q($c: String!) { district(code: $c) { code } }", {"c": "1039"}, "Q"
    )


def test_variables_and_name_are_optional():
    assert _operation({"query": "{ __typename }"}) == Operation("{ __typename }", None, None)
    explicit = _operation({"query": "{ a }", "variables": None, "operationName": None})
    assert explicit == Operation("{ a }", None, None)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([{"query": "{ a }"}], "the body must be a JSON object with `query`"),
        ("{ a }", "the body must be a JSON object with `query`"),
        (None, "the body must be a JSON object with `query`"),
        ({}, "`query` must be a non-empty string"),
        ({"query": ""}, "`query` must be a non-empty string"),
        ({"query": "   \n"}, "`query` must be a non-empty string"),
        ({"query": 42}, "`query` must be a non-empty string"),
        ({"query": ["{ a }"]}, "`query` must be a non-empty string"),
        ({"query": "{ a }", "variables": [1]}, "`variables` must be a JSON object"),
        ({"query": "{ a }", "variables": "{}"}, "`variables` must be a JSON object"),
        ({"query": "{ a }", "operationName": 1}, "`operationName` must be a string"),
        ({"query": "{ a }", "operationName": ["Q"]}, "`operationName` must be a string"),
    ],
)
def test_operation_refusals(payload: Any, message: str):
    with pytest.raises(BadRequest) as raised:
        _operation(payload)
    assert raised.value.message == message
    assert raised.value.code == "BAD_REQUEST"
    assert raised.value.status == 400


# ---------------------------------------------------------------------------- _json


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


def test_valid_json_read():
    assert _json(b'{"query": "{ a }", "variables": {"x": [1, {"y": null}]}}', ANONYMOUS) == {
        "query": "{ a }",
        "variables": {"x": [1, {"y": None}]},
    }
    # Exactly orjson's limit is still read (unwrapped by hand: == would recurse too deep).
    value = _json(nested(ORJSON_DEPTH), ANONYMOUS)
    for _ in range(ORJSON_DEPTH):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value == 1


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"query": }', b"not json", b"\xff\xfe", b"{'query': 'x'}", b"[1, 2"],
)
def test_invalid_json_is_a_bad_request(raw: bytes):
    with pytest.raises(BadRequest) as raised:
        _json(raw, ANONYMOUS)
    assert raised.value.message == "the body is not valid JSON"


def test_nesting_past_orjsons_limit_is_variables_too_deep():
    raw = b'{"query": "{ a }", "variables": {"v": ' + nested(ORJSON_DEPTH) + b"}}"
    with pytest.raises(VariablesTooDeep) as raised:
        _json(raw, ANONYMOUS)
    error = raised.value
    assert error.code == "VARIABLES_TOO_DEEP"
    assert error.limit == ANONYMOUS.max_variable_depth
    assert error.extensions == {"limit": ANONYMOUS.max_variable_depth}
    assert "1024" in error.message


def test_the_limit_named_is_the_audiences():
    limits = dataclasses.replace(DEFAULTS["agency"], max_variable_depth=7)
    with pytest.raises(VariablesTooDeep) as raised:
        _json(nested(ORJSON_DEPTH + 1), limits)
    assert raised.value.limit == 7
    assert "variables may nest 7 levels" in raised.value.message


def test_brackets_inside_strings_are_not_counted():
    # Invalid JSON (a trailing comma) whose strings hold thousands of brackets: not deep.
    text = b'"' + b"[" * 5000 + b'\\"{{{' + b'"'
    raw = b'{"query": ' + text + b", }"
    with pytest.raises(BadRequest) as raised:
        _json(raw, ANONYMOUS)
    assert not isinstance(raised.value, VariablesTooDeep)


# ---------------------------------------------------------------------------- _nested_too_deep


def test_nested_too_deep_counts_past_the_limit():
    assert not _nested_too_deep(nested(ORJSON_DEPTH))
    assert _nested_too_deep(nested(ORJSON_DEPTH + 1))
    assert _nested_too_deep(b"{" * (ORJSON_DEPTH + 1))  # unclosed: still deep
    assert _nested_too_deep(b'{"a":' * (ORJSON_DEPTH + 1))


def test_nested_too_deep_counts_the_deepest_not_the_total():
    side_by_side = b"[" + b",".join([nested(10)] * 500) + b"]"
    assert not _nested_too_deep(side_by_side)


def test_nested_too_deep_ignores_strings_and_their_escapes():
    in_string = b'["' + b"[" * 2000 + b'"]'
    assert not _nested_too_deep(in_string)
    # An escaped quote does not end the string; an escaped backslash before a quote does.
    escaped_quote = b'["\\"' + b"[" * 2000 + b'"]'
    assert not _nested_too_deep(escaped_quote)
    escaped_backslash = b'["\\\\"' + b"[" * 2000
    assert _nested_too_deep(escaped_backslash)
