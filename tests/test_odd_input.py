"""Odd input, generated from the schema: every place a string goes in refuses what is not
text before any upstream call, and every enum value the schema takes as input works.

The places are walked from the schema (``schema_walk``): every argument and input field of a
string-taking scalar (String, ID, Date, DateTime, Decimal, …), given a non-text code point as
a literal, as a variable in its place, and inside a variable holding the whole argument;
every value of every enum an argument or input field takes, as a literal and as a variable.
"""

from __future__ import annotations

import logging

import pytest
from graphql import GraphQLEnumType

import schema
from schema_walk import (
    InputPosition,
    argument,
    input_positions,
    operation,
    string_literal,
    takes_strings,
    value_at,
)

SCHEMA = schema.graphql_schema()
POSITIONS = list(input_positions(SCHEMA))
STRING_POSITIONS = [p for p in POSITIONS if takes_strings(p)]
ENUM_POSITIONS = [p for p in POSITIONS if isinstance(p.named, GraphQLEnumType)]

# One of each kind refused (connectors/text.py): NUL, another C0 control, DEL, a C1 control,
# noncharacters in the BMP, in the block U+FDD0–U+FDEF and at the end of the last plane.
NOT_TEXT = ["\x00", "\x1b", "\x7f", "\x85", "\ufffe", "\ufdd0", "\U0010ffff"]


def _upstream_calls(gateway) -> dict[str, int]:
    return {s: n for c in gateway.connectors.all() for s, n in c.counter.calls.items() if n}


def _nested(position: InputPosition, value: object) -> object:
    for name in reversed(position.inside):
        value = {name: value}
    return value


def _requests(position: InputPosition, text: str) -> list[tuple[str, dict | None]]:
    """The text at ``position``: as a literal, as a variable in its place, and (inside an
    input object) within a variable holding the whole argument."""
    arg = argument(SCHEMA, position)
    parent, field = position.parent, position.field
    literal = value_at(position, string_literal(text), arg.type)
    requests: list[tuple[str, dict | None]] = [
        (operation(SCHEMA, parent, field, {position.arg: literal}), None),
        (
            operation(
                SCHEMA,
                parent,
                field,
                {position.arg: value_at(position, "$v", arg.type)},
                {"v": position.type},
            ),
            {"v": text},
        ),
    ]
    if position.inside:
        whole = operation(SCHEMA, parent, field, {position.arg: "$a"}, {"a": arg.type})
        requests.append((whole, {"a": _nested(position, text)}))
    return requests


def test_the_walk_finds_the_places_the_attack_round_used():
    found = {str(p) for p in STRING_POSITIONS}
    assert {
        "Query.businesses.filter.type",
        "District.buildingPermits.after",
        "Query.accessLog.filter.dataSubject",
        "Query.complaint.ticketId",
    } <= found
    assert "Query.complaints.filter.state" in {str(p) for p in ENUM_POSITIONS}


@pytest.mark.parametrize("position", STRING_POSITIONS, ids=str)
def test_a_string_that_is_not_text_is_refused_before_any_upstream_call(gateway, caplog, position):
    for text in NOT_TEXT:
        code_point = f"U+{ord(text):04X}"
        for query, variables in _requests(position, f"ok{text}"):
            gateway.reset_counters()
            with caplog.at_level(logging.ERROR):
                response = gateway.post(query, variables)
            assert response.status_code == 400, (query, variables, response.text)
            found = response.json()["errors"]
            assert any(
                e["extensions"]["code"] == "BAD_USER_INPUT" and code_point in e["message"]
                for e in found
            ), (query, variables, found)
            assert _upstream_calls(gateway) == {}, query
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_text_with_tabs_newlines_thai_and_zero_width_spaces_is_accepted(gateway):
    text = "ถนน\u200bทางเท้า\t\r\n😀"
    for position in STRING_POSITIONS:
        if str(position) == "Query.complaints.filter.type":
            for query, variables in _requests(position, text):
                response = gateway.post(query, variables)
                assert response.status_code == 200 and "errors" not in response.json(), query


def _enum_requests(position: InputPosition, value: str) -> list[tuple[str, dict | None]]:
    arg = argument(SCHEMA, position)
    parent, field = position.parent, position.field
    target = SCHEMA.type_map[parent].fields[field]
    extra = {"first": "1"} if "first" in target.args else {}  # a page, not a default one
    literal = {position.arg: value_at(position, value, arg.type), **extra}
    variable = {position.arg: value_at(position, "$v", arg.type), **extra}
    return [
        (operation(SCHEMA, parent, field, literal), None),
        (operation(SCHEMA, parent, field, variable, {"v": position.type}), {"v": value}),
    ]


@pytest.mark.parametrize("position", ENUM_POSITIONS, ids=str)
def test_every_advertised_enum_value_works(gateway, caplog, position):
    assert isinstance(position.named, GraphQLEnumType)
    for value in position.named.values:
        for query, variables in _enum_requests(position, value):
            with caplog.at_level(logging.ERROR):
                response = gateway.post(query, variables)
            assert response.status_code == 200, (query, variables, response.text)
            assert "errors" not in response.json(), (query, variables, response.json())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
