"""Row scope on every path: a district officer reads no row of another district, however it is
reached. Generated from the schema and the policy (tests/schema_paths.py): a new field or path
to a row-scoped type is covered without editing this file.

Each path runs as the officer of district 1039 and as the data protection officer, who reads
the whole city. The officer's answer holds no row-scoped object of another district; where no
page lies on the path (a page of a scoped list is the scope's own page), it is exactly the
city-wide answer with those objects taken out (null, or left out of a list). And every field
that answers a row-scoped type meets, on some path, a row of another district below rows of
1039 — the demo data exercises each one.
"""

from __future__ import annotations

from typing import Any

import pytest

from policies.model import load_policy
from schema import graphql_schema
from schema_paths import RowPath, cases, gate_fields, pruned, query_of, row_paths, rows
from support import Gateway

SCHEMA = graphql_schema()
POLICY = load_policy()
PATHS = row_paths(SCHEMA, POLICY)
SCOPE = frozenset({"1039"})
DENIALS = {"FORBIDDEN", "PURPOSE_REQUIRED"}

Answers = dict[str, list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]]


@pytest.fixture(scope="module")
def answers(
    anonymous: Gateway,
    principals: dict[str, dict[str, str]],
    row_path_values: dict[str, list[Any]],
) -> Answers:
    """(variables, the officer's answer, the city-wide answer) of every case of every path."""
    found: Answers = {}
    for path in PATHS:
        query = query_of(SCHEMA, POLICY, path)
        found[path.name] = [
            (
                variables,
                _body(anonymous.post(query, variables, headers=principals["officer"])),
                _body(anonymous.post(query, variables, headers=principals["dpo"])),
            )
            for variables in cases(SCHEMA, path, row_path_values)
        ]
    return found


def _body(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.status_code == 200, body
    return body


def test_the_paths_reach_every_field_that_answers_a_row_scoped_type():
    assert {p.gate for p in PATHS} == gate_fields(SCHEMA, POLICY)
    assert {p.leaf for p in PATHS} == set(POLICY.row_scopes)
    assert len(PATHS) > 40


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_the_officer_reads_no_row_of_another_district(answers: Answers, path: RowPath):
    for variables, officer, city in answers[path.name]:
        assert "errors" not in city, (variables, city["errors"])
        # A field the officer may not read is refused (and tested elsewhere), never a leak.
        codes = {e["extensions"]["code"] for e in officer.get("errors", [])}
        assert codes <= DENIALS, (variables, officer["errors"])
        outside = [r for r in rows(officer["data"], POLICY, SCOPE) if r.place not in SCOPE]
        assert outside == [], variables
        if not path.paged(SCHEMA):
            assert officer["data"] == pruned(city["data"], POLICY, SCOPE), variables


# Fields whose rows are, by what they are, always in the district of the row above them.
SAME_PLACE = {"Parcel.signboards": "a sign is taxed by the district of the parcel it stands on"}


def test_every_field_answering_a_row_scoped_type_meets_rows_of_other_districts(
    answers: Answers,
):
    """The data exercises each one: below rows of 1039 (or none), a row of another district.
    (Each field's wrapper on its own: tests/execution/test_enforcement.py.)"""
    met: set[str] = set()
    for path in PATHS:
        for _variables, _officer, city in answers[path.name]:
            if any(
                r.type_name == path.leaf and r.within and r.place not in SCOPE
                for r in rows(city["data"], POLICY, SCOPE)
            ):
                met.add(path.gate)
    assert met == gate_fields(SCHEMA, POLICY) - set(SAME_PLACE)
