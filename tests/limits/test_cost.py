"""The static cost of an operation: every field 1, lists multiply what they select."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse

import schema
from gateway.errors import QUERY_TOO_COSTLY, QueryTooCostly
from gateway.limits.config import DEFAULTS
from gateway.limits.cost import DEFAULT_LIST_SIZE, LIST_SIZES, CostModel, too_costly
from gateway.limits.shape import COST_CAP

DEFAULT_PAGE = 20
MAX_PAGE = 100


@pytest.fixture(scope="module")
def model() -> CostModel:
    return CostModel(schema.graphql_schema(), DEFAULT_PAGE, MAX_PAGE)


def operations(text: str) -> tuple[Any, list[OperationDefinitionNode]]:
    document = parse(text)
    return document, [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]


def cost(model: CostModel, text: str, variables: dict[str, Any] | None = None) -> int:
    document, (operation,) = operations(text)
    return model.cost(document, operation, variables or {})


def bound(model: CostModel, text: str) -> tuple[int, bool]:
    costs, dynamic = model.bounds(parse(text))
    (only,) = costs.values()
    return only, dynamic


def test_every_field_costs_one(model):
    text = '{ district(code: "1039") { code nameTh nameEn } }'
    assert cost(model, text) == 4
    assert bound(model, text) == (4, False)
    assert cost(model, "{ __typename }") == 1


def test_a_list_multiplies_what_it_selects_by_its_assumed_size(model):
    assert LIST_SIZES[("Query", "districts")] == 50
    assert cost(model, "{ districts { code } }") == 1 + 50 * 1
    assert cost(model, "{ districts { code nameTh } }") == 1 + 50 * 2


def test_lists_not_named_are_assumed_default_size(model):
    assert ("AccessRecord", "fields") not in LIST_SIZES
    text = "{ accessLog(first: 1) { edges { node { fields { field access } } } } }"
    # accessLog 1 + edges (1 + 1 x (node 1 + fields (1 + 50 x 2)))
    assert cost(model, text) == 1 + 1 + 1 * (1 + 1 + DEFAULT_LIST_SIZE * 2)


def test_a_list_of_scalars_costs_one(model):
    assert cost(model, '{ complaint(ticketId: "x") { types } }') == 2


def test_a_named_list_takes_its_size(model):
    text = '{ district(code: "1") { complaintStats { byState { key count } } } }'
    assert cost(model, text) == 1 + 1 + (1 + LIST_SIZES[("ComplaintStats", "byState")] * 2)


def test_a_connection_without_first_takes_the_default_page_size(model):
    text = "{ complaints { totalCount edges { node { ticketId state } } } }"
    # complaints 1 + totalCount 1 + edges (1 + 20 x (node 1 + 2 fields))
    assert cost(model, text) == 1 + 1 + 1 + DEFAULT_PAGE * 3
    assert bound(model, text) == (63, False)


def test_a_connection_multiplies_by_a_literal_first(model):
    text = "{ complaints(first: 5) { edges { cursor node { ticketId } } } }"
    assert cost(model, text) == 1 + 1 + 5 * (1 + 2)
    assert cost(model, text.replace("5", "0")) == 2


def test_first_with_a_schema_default(model):
    # Parcel.nearbyComplaints(first: Int! = 20) is a plain list with a `first`.
    text = '{ parcel(id: "1") { nearbyComplaints(radiusMeters: 5) { ticketId } } }'
    assert cost(model, text) == 1 + 1 + 20 * 1
    given = '{ parcel(id: "1") { nearbyComplaints(radiusMeters: 5, first: 3) { ticketId } } }'
    assert cost(model, given) == 1 + 1 + 3 * 1


def test_nested_lists_multiply(model):
    text = (
        "{ parcels(first: 2) { edges { node {"
        " assessments { taxYear } nearbyComplaints(radiusMeters: 5) { ticketId } } } } }"
    )
    node = 1 + (1 + LIST_SIZES[("Parcel", "assessments")]) + (1 + 20)
    assert cost(model, text) == 1 + 1 + 2 * node


def test_edges_through_a_fragment_on_the_connection_count_the_largest_page(model):
    text = "{ parcels(first: 2) { ...C } } fragment C on ParcelConnection { edges { node { id } } }"
    assert cost(model, text) == 1 + 1 + MAX_PAGE * 2


def test_fragments_and_inline_fragments_count_their_fields(model):
    text = (
        '{ district(code: "1") { ...D ... on District { nameEn } } }'
        " fragment D on District { code nameTh }"
    )
    assert cost(model, text) == 1 + 3


def test_a_variable_first_makes_bounds_dynamic_with_a_lower_bound(model):
    text = "query Q($n: Int) { complaints(first: $n) { edges { node { ticketId } } } }"
    costs, dynamic = model.bounds(parse(text))
    assert dynamic is True
    assert costs == {"Q": 1 + 1 + 0}  # the variable's `first` counts 0
    assert cost(model, text, {"n": 7}) == 1 + 1 + 7 * 2
    assert cost(model, text, {"n": 50}) == 1 + 1 + 50 * 2


def test_a_variables_default_counts_when_the_variable_is_not_given(model):
    text = "query Q($n: Int = 3) { complaints(first: $n) { edges { node { ticketId } } } }"
    assert cost(model, text) == 1 + 1 + 3 * 2
    assert cost(model, text, {"n": 4}) == 1 + 1 + 4 * 2


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (True, DEFAULT_PAGE),  # not a number: the default (coercion refuses it later)
        ("5", 5),
        (2.0, 2),
        (-5, 0),  # never negative
        (None, DEFAULT_PAGE),
    ],
)
def test_variable_values_read_as_whole_numbers(model, value, size):
    text = "query Q($n: Int) { complaints(first: $n) { edges { node { ticketId } } } }"
    assert cost(model, text, {"n": value}) == 1 + 1 + size * 2


def test_costs_by_operation_name(model):
    costs, dynamic = model.bounds(
        parse('query A { districts { code } } query B { parcel(id: "1") { id } }')
    )
    assert costs == {"A": 51, "B": 2}
    assert dynamic is False
    unnamed, _ = model.bounds(parse("{ districts { code } }"))
    assert unnamed == {None: 51}


def test_one_variable_anywhere_makes_every_bound_dynamic(model):
    costs, dynamic = model.bounds(
        parse(
            "query A { districts { code } }"
            " query B($n: Int) { complaints(first: $n) { edges { cursor } } }"
        )
    )
    assert costs == {"A": 51, "B": 2}
    assert dynamic is True


def test_introspection_lists_count_once(model):
    assert cost(model, "{ __schema { types { name fields { name } } } }") == 5


def test_unknown_fields_count_their_fields(model):
    assert cost(model, "{ nope { a b } }") == 3


def test_the_cost_is_capped(model):
    inner = "ticketId"
    for _ in range(4):
        inner = f"complaints(first: 1000000000) {{ edges {{ node {{ district {{ {inner} }} }} }} }}"
    text = '{ district(code: "1") { ' + inner + " } }"
    assert cost(model, text) == COST_CAP
    assert bound(model, text) == (COST_CAP, False)


def test_too_costly_names_the_limit_and_the_cost():
    limits = DEFAULTS["anonymous"]
    error = too_costly(limits, 60_000)
    assert isinstance(error, QueryTooCostly)
    assert error.code == QUERY_TOO_COSTLY.code
    assert (error.limit, error.actual) == (limits.max_cost, 60_000)
    assert error.extensions == {"limit": 50_000, "actual": 60_000}
    assert "60000" in error.message and "50000" in error.message
