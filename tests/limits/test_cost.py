"""The static cost of an operation: every field 1, lists multiply what they select, and a
field that reaches an upstream system adds its upstream work per parent.

Figures below name CALL (a connection's own upstream call) and LOOKUP (a key of a batched
read) where a field reaches upstream."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLField,
    GraphQLObjectType,
    OperationDefinitionNode,
    get_named_type,
    parse,
)

import schema
from gateway.errors import QUERY_TOO_COSTLY, QueryTooCostly
from gateway.limits.config import DEFAULTS
from gateway.limits.cost import (
    DEFAULT_LIST_SIZE,
    ITEMS_PER_KM2,
    LIST_SIZES,
    MOST_ITEMS_PER_SEARCH,
    UPSTREAM_CALL,
    UPSTREAM_LOOKUP,
    CostModel,
    too_costly,
)
from gateway.limits.shape import COST_CAP
from nesting import (
    PAGE,
    SAMPLE_ARGUMENTS,
    fields_with_resolvers,
    is_connection,
    is_list,
    nestings,
    select,
)
from schema.context import Limits
from schema.upstream import reads_upstream

DEFAULT_PAGE = 20
MAX_PAGE = 100
CALL, LOOKUP = UPSTREAM_CALL, UPSTREAM_LOOKUP
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = Limits().default_page_size, Limits().max_page_size


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
    assert cost(model, text) == CALL + 1 + 1 + 1 * (1 + 1 + DEFAULT_LIST_SIZE * 2)


def test_a_list_of_scalars_costs_one(model):
    assert cost(model, '{ complaint(ticketId: "x") { types } }') == LOOKUP + 2


def test_a_named_list_takes_its_size(model):
    text = '{ district(code: "1") { complaintStats { byState { key count } } } }'
    by_state = 1 + LIST_SIZES[("ComplaintStats", "byState")] * 2
    assert cost(model, text) == 1 + LOOKUP + 1 + by_state


def test_a_connection_without_first_takes_the_default_page_size(model):
    text = "{ complaints { totalCount edges { node { ticketId state } } } }"
    # complaints 1 + totalCount 1 + edges (1 + 20 x (node 1 + 2 fields))
    assert cost(model, text) == CALL + 1 + 1 + 1 + DEFAULT_PAGE * 3
    assert bound(model, text) == (CALL + 63, False)


def test_a_connection_multiplies_by_a_literal_first(model):
    text = "{ complaints(first: 5) { edges { cursor node { ticketId } } } }"
    assert cost(model, text) == CALL + 1 + 1 + 5 * (1 + 2)
    assert cost(model, text.replace("5", "0")) == CALL + 2


def test_first_with_a_schema_default(model):
    # Parcel.nearbyComplaints(first: Int! = 20) is a plain list with a `first`.
    # A 5 m radius searches 0.0001 km², under one item: its area counts 1.
    text = '{ parcel(id: "1") { nearbyComplaints(radiusMeters: 5) { ticketId } } }'
    assert cost(model, text) == LOOKUP + 1 + (LOOKUP + 1) + 1 + 20 * 1
    given = '{ parcel(id: "1") { nearbyComplaints(radiusMeters: 5, first: 3) { ticketId } } }'
    assert cost(model, given) == LOOKUP + 1 + (LOOKUP + 1) + 1 + 3 * 1


def test_nested_lists_multiply(model):
    text = (
        "{ parcels(first: 2) { edges { node {"
        " assessments { taxYear } nearbyComplaints(radiusMeters: 5) { ticketId } } } } }"
    )
    assessments = LOOKUP + 1 + LIST_SIZES[("Parcel", "assessments")]
    nearby = LOOKUP + 1 + 1 + 20  # its 5 m radius's area counts 1
    assert cost(model, text) == CALL + 1 + 1 + 2 * (1 + assessments + nearby)


def test_edges_through_a_fragment_on_the_connection_count_the_largest_page(model):
    text = "{ parcels(first: 2) { ...C } } fragment C on ParcelConnection { edges { node { id } } }"
    assert cost(model, text) == CALL + 1 + 1 + MAX_PAGE * 2


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
    assert costs == {"Q": CALL + 1 + 1 + 0}  # the variable's `first` counts 0
    assert cost(model, text, {"n": 7}) == CALL + 1 + 1 + 7 * 2
    assert cost(model, text, {"n": 50}) == CALL + 1 + 1 + 50 * 2


def test_a_variables_default_counts_when_the_variable_is_not_given(model):
    text = "query Q($n: Int = 3) { complaints(first: $n) { edges { node { ticketId } } } }"
    assert cost(model, text) == CALL + 1 + 1 + 3 * 2
    assert cost(model, text, {"n": 4}) == CALL + 1 + 1 + 4 * 2


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
    assert cost(model, text, {"n": value}) == CALL + 1 + 1 + size * 2


def test_costs_by_operation_name(model):
    costs, dynamic = model.bounds(
        parse('query A { districts { code } } query B { parcel(id: "1") { id } }')
    )
    assert costs == {"A": 51, "B": LOOKUP + 2}
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
    assert costs == {"A": 51, "B": CALL + 2}
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


# ---------------------------------------------------------------------------- upstream work

# An anonymous query that made 12 Traffy calls for 4-8 s and then failed (issue #12, item 7):
# each parcel's 5 km search fetches every complaint in 100 km², whatever its `first`.
FAN_OUT = (
    "{ parcels(first: 100) { edges { node {"
    " nearbyComplaints(radiusMeters: 5000, first: 100) { ticketId } } } } }"
)


def test_the_fan_out_of_radius_searches_is_over_the_anonymous_limit(model):
    # parcels: CALL + 1 + edges (1 + 100 x (node 1 + nearby (LOOKUP + area + 1 + 100)))
    area = min(10 * 10 * ITEMS_PER_KM2, MOST_ITEMS_PER_SEARCH)
    expected = CALL + 1 + 1 + 100 * (1 + LOOKUP + area + 1 + 100)
    assert cost(model, FAN_OUT) == expected
    assert expected > DEFAULTS["anonymous"].max_cost


def test_a_radius_search_costs_its_area_up_to_the_most_one_search_fetches(model):
    def nearby(radius: int) -> int:
        text = f'{{ parcel(id: "1") {{ nearbyComplaints(radiusMeters: {radius}, first: 0) {{ ticketId }} }} }}'
        return cost(model, text) - (LOOKUP + 1 + LOOKUP + 1)

    assert nearby(300) == math.ceil(0.6 * 0.6 * ITEMS_PER_KM2)  # its box is 600 m square
    assert nearby(1000) == 2 * 2 * ITEMS_PER_KM2
    assert nearby(5000) == nearby(10**9) == MOST_ITEMS_PER_SEARCH
    assert nearby(-5) == 0  # refused by the resolver before any upstream call


def test_a_radius_given_by_a_variable_is_costed_with_its_value(model):
    text = (
        "query N($r: Int!) { parcels(first: 10) { edges { node {"
        " nearbyComplaints(radiusMeters: $r, first: 1) { ticketId } } } } }"
    )
    costs, dynamic = model.bounds(parse(text))
    assert dynamic is True  # the radius is not known before the variables are
    lower = costs["N"]
    assert cost(model, text, {"r": 1000}) == lower + 10 * 2 * 2 * ITEMS_PER_KM2
    assert cost(model, text, {"r": 5000}) > DEFAULTS["anonymous"].max_cost > lower


def _answer(field: GraphQLField, parent: str, name: str) -> int:
    """What nesting.select's selection of the field answers, as the cost model counts it."""
    named = get_named_type(field.type)
    if is_connection(named):
        return 2  # the field, its totalCount
    if not isinstance(named, GraphQLObjectType):
        return 1
    if not is_list(field):
        return 2  # the field, its __typename
    size = PAGE if "first" in field.args else LIST_SIZES.get((parent, name), DEFAULT_LIST_SIZE)
    return 1 + size


def _upstream(field: GraphQLField) -> int:
    if not reads_upstream(field):
        return 0
    if is_connection(get_named_type(field.type)):
        return CALL
    radius = SAMPLE_ARGUMENTS["radiusMeters"] if "radiusMeters" in field.args else "0"
    side_m = 2 * int(radius)
    return LOOKUP + math.ceil(side_m * side_m * ITEMS_PER_KM2 / 1_000_000)


GRAPH = schema.graphql_schema()
NESTINGS = nestings(GRAPH)


@pytest.mark.parametrize(
    ("parent", "name"), list(fields_with_resolvers(GRAPH)), ids=lambda v: str(v)
)
def test_every_field_with_a_resolver_nested_under_a_list_costs_its_upstream_work_per_parent(
    model, parent, name
):
    """Generated from the schema: each field a resolver computes, on each type reachable
    through a list, nested under one: adding it costs its answer and, if it reaches an
    upstream system, its upstream work, once per parent."""
    nesting = NESTINGS[parent]
    type_ = GRAPH.get_type(parent)
    assert isinstance(type_, GraphQLObjectType)
    field = type_.fields[name]
    selection = select(name, field)
    assert selection is not None, f"{parent}.{name} requires an argument without a sample"
    without = cost(model, nesting.wrap("__typename"))
    with_field = cost(model, nesting.wrap(f"__typename {selection}"))
    per_parent = _answer(field, parent, name) + _upstream(field)
    assert with_field - without == nesting.parents * per_parent, nesting.wrap(selection)


def test_the_upstream_fields_are_those_that_load_from_a_connector():
    upstream = {
        f"{parent}.{name}"
        for parent, name in fields_with_resolvers(GRAPH)
        if reads_upstream(GRAPH.get_type(parent).fields[name])  # type: ignore[union-attr]
    }
    local = {f"{p}.{n}" for p, n in fields_with_resolvers(GRAPH)} - upstream
    # Computed from the record already fetched: no upstream work.
    assert local == {
        "BudgetUnit.district",
        "BuildingPermit.district",
        "Business.district",
        "Complaint.district",
        "Contract.integrity",
        "Contract.process",
        "InfrastructureProject.district",
        "Licence.valid",
        "Parcel.district",
        "ProcurementProcess.contract",
        "ProcurementProcess.infrastructureProject",
        "ProcurementProcess.integrity",
        "Signboard.district",
    }
    assert {"Parcel.nearbyComplaints", "Parcel.owner", "District.complaints"} <= upstream


ROOT = Path(__file__).resolve().parents[2]


def _documented_queries() -> list[str]:
    """Every GraphQL block of the README and docs."""
    blocks = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        blocks += re.findall(r"```graphql\n(.*?)```", text, flags=re.S)
    return [q for block in blocks for q in re.split(r"\n(?=#)", block) if "{" in q]


@pytest.mark.parametrize("query", _documented_queries())
def test_the_documented_queries_are_within_the_anonymous_limit(query):
    gateway_model = CostModel(GRAPH, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    body = "\n".join(line for line in query.splitlines() if not line.startswith("#"))
    assert cost(gateway_model, body) <= DEFAULTS["anonymous"].max_cost
