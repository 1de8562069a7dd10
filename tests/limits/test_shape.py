"""The parsed document's shape: depth through fragments, root fields, introspection."""

from __future__ import annotations

import dataclasses

import pytest
from graphql import get_introspection_query, parse

from gateway.errors import (
    INTROSPECTION_DISABLED,
    QUERY_TOO_DEEP,
    TOO_MANY_ROOT_FIELDS,
    IntrospectionDisabled,
    QueryTooDeep,
    TooManyRootFields,
)
from gateway.limits.config import DEFAULTS
from gateway.limits.shape import (
    COST_CAP,
    INTROSPECTION_DEPTH,
    Analysis,
    dependency_order,
    fragments_of,
)

ANONYMOUS = DEFAULTS["anonymous"]  # max_depth 10, max_root_fields 20, introspection on
AGENCY = DEFAULTS["agency"]  # max_depth 20


def analysis(text: str) -> Analysis:
    return Analysis.of(parse(text, no_location=True))


def nested(depth: int, leaf: str = "code") -> str:
    """A selection ``depth`` fields deep: ``a { a { … code } }``."""
    return "a { " * (depth - 1) + leaf + " }" * (depth - 1)


# ---------------------------------------------------------------------------- depth


def test_depth_counts_fields_on_the_longest_path():
    assert analysis("{ districts { code } }").depth == 2
    assert analysis("{ a b { c } d { e { f } } }").depth == 3
    assert analysis("{ __typename }").depth == 1


def test_depth_through_fragments():
    found = analysis(
        "query { ...F }"
        " fragment F on Query { districts { ...G } }"
        " fragment G on District { code name { th } }"
    )
    assert found.depth == 3  # districts > name > th
    assert found.fragments == 2


def test_depth_through_inline_fragments_adds_no_level():
    assert analysis("{ a { ... on T { b { ... { c } } } } }").depth == 3


def test_fragment_defined_before_use_or_after():
    before = "fragment G on T { x { y } } query { a { ...G } }"
    after = "query { a { ...G } } fragment G on T { x { y } }"
    assert analysis(before).depth == analysis(after).depth == 3


def test_unused_fragment_still_counts_for_depth():
    # Validation visits every fragment, used or not.
    found = analysis("{ a } fragment Deep on Query { " + nested(12) + " }")
    assert found.depth == 12
    assert found.root_fields == 1  # an unused fragment selects nothing at the root


def test_deepest_operation_counts():
    found = analysis("query A { a } query B { " + nested(7) + " }")
    assert found.depth == 7


# ---------------------------------------------------------------------------- root fields


def test_root_fields_through_fragments_and_inline_fragments():
    found = analysis(
        "{ a b ... on Query { c d } ...F } fragment F on Query { e f ...G } fragment G on Query { g }"
    )
    assert found.root_fields == 7


def test_nested_fields_are_not_root_fields():
    assert analysis("{ a { b c d } ...F } fragment F on Query { e { f g } }").root_fields == 2


def test_root_fields_are_the_most_of_any_operation():
    assert analysis("query A { a b c } query B { d }").root_fields == 3


def test_root_fields_of_a_fragment_bomb_are_capped():
    n = 60  # each level spreads the next twice: 2**60 root fields
    text = (
        "query { ...F0 } "
        + " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(n))
        + f" fragment F{n} on Query {{ a }}"
    )
    found = analysis(text)
    assert found.root_fields == COST_CAP
    assert isinstance(found.exceeds(AGENCY), TooManyRootFields)


# ---------------------------------------------------------------------------- introspection


def test_the_standard_introspection_query():
    found = analysis(get_introspection_query())
    assert found.introspects
    assert found.introspection_depth == INTROSPECTION_DEPTH == 15
    assert found.depth == 0  # no data field
    # Allowed to anonymous callers though their max_depth is 10.
    assert ANONYMOUS.max_depth < INTROSPECTION_DEPTH
    assert found.exceeds(ANONYMOUS) is None


def test_introspection_and_data_depths_apart():
    found = analysis("{ __schema { types { name } } districts { code } }")
    assert found.introspects
    assert found.introspection_depth == 3
    assert found.depth == 2


def test_introspection_through_fragment_on_an_introspection_type():
    found = analysis(
        '{ __type(name: "X") { ...T } } fragment T on __Type { ofType { ofType { name } } }'
    )
    assert found.introspects
    assert found.introspection_depth == 4
    assert found.depth == 0


def test_introspection_inside_a_fragment_is_found():
    found = analysis(
        "{ districts { ...I } } fragment I on District { x { __schema { types { name } } } }"
    )
    assert found.introspects
    assert found.introspection_depth == 5  # districts > x > __schema > types > name
    assert found.depth == 2  # districts > x


def test_typename_is_not_introspection():
    found = analysis("{ __typename districts { __typename } }")
    assert not found.introspects
    assert found.exceeds(dataclasses.replace(ANONYMOUS, introspection=False)) is None


def test_introspection_deeper_than_its_allowance():
    text = "{ __schema { types { " + nested(INTROSPECTION_DEPTH - 1, "name") + " } } }"
    found = analysis(text)
    assert found.introspection_depth == INTROSPECTION_DEPTH + 1
    refused = found.exceeds(ANONYMOUS)
    assert isinstance(refused, QueryTooDeep)
    assert (refused.limit, refused.actual) == (INTROSPECTION_DEPTH, INTROSPECTION_DEPTH + 1)
    # An audience whose max_depth is over the allowance may nest introspection that deep.
    assert AGENCY.max_depth > INTROSPECTION_DEPTH
    assert found.exceeds(AGENCY) is None


# ---------------------------------------------------------------------------- cycles


def test_dependency_order_puts_each_fragment_after_what_it_spreads():
    fragments = fragments_of(
        parse(
            "fragment A on Q { ...B ...C } fragment B on Q { ...C x }"
            " fragment C on Q { y } fragment D on Q { z }"
        )
    )
    order = dependency_order(fragments)
    assert sorted(order) == ["A", "B", "C", "D"]
    assert order.index("C") < order.index("B") < order.index("A")


def test_dependency_order_leaves_out_the_spread_closing_a_cycle():
    fragments = fragments_of(
        parse("fragment A on Q { ...B } fragment B on Q { ...C ...A } fragment C on Q { x }")
    )
    assert dependency_order(fragments) == ["C", "B", "A"]


def test_self_spread_and_unknown_spread():
    fragments = fragments_of(parse("fragment A on Q { ...A ...Nowhere x }"))
    assert dependency_order(fragments) == ["A"]
    found = analysis("{ ...A } fragment A on Query { ...A ...Nowhere x }")
    assert found.root_fields == 1


def test_a_cycle_is_analysed_without_recursing():
    found = analysis("{ ...A } fragment A on Query { ...B x } fragment B on Query { ...A y }")
    assert found.root_fields == 2  # x, and y through B; B's spread of A closes the cycle
    assert found.fragments == 2


def test_a_long_chain_of_fragments_does_not_recurse():
    n = 1500  # past Python's recursion limit
    text = (
        "query { ...F0 } "
        + " ".join(f"fragment F{i} on Query {{ x {{ ...F{i + 1} }} }}" for i in range(n))
        + f" fragment F{n} on Query {{ a ...F0 }}"  # and a cycle back to the start
    )
    found = analysis(text)
    assert found.depth == n + 1
    assert found.fragments == n + 1
    refused = found.exceeds(AGENCY)
    assert isinstance(refused, QueryTooDeep)
    assert (refused.limit, refused.actual) == (AGENCY.max_depth, n + 1)


# ---------------------------------------------------------------------------- exceeds


def test_within_limits():
    assert analysis("{ districts { code } }").exceeds(ANONYMOUS) is None


def test_exactly_at_the_depth_limit_passes_and_one_more_is_refused():
    assert analysis("{ " + nested(10) + " }").exceeds(ANONYMOUS) is None
    refused = analysis("{ " + nested(11) + " }").exceeds(ANONYMOUS)
    assert isinstance(refused, QueryTooDeep)
    assert refused.code == QUERY_TOO_DEEP.code
    assert (refused.limit, refused.actual) == (10, 11)
    assert refused.extensions == {"limit": 10, "actual": 11}
    assert "11" in refused.message and "10" in refused.message


def test_too_many_root_fields():
    limits = dataclasses.replace(ANONYMOUS, max_root_fields=3)
    assert analysis("{ a b c }").exceeds(limits) is None
    refused = analysis("{ a b ...F } fragment F on Query { c d }").exceeds(limits)
    assert isinstance(refused, TooManyRootFields)
    assert refused.code == TOO_MANY_ROOT_FIELDS.code
    assert (refused.limit, refused.actual) == (3, 4)
    assert refused.extensions == {"limit": 3, "actual": 4}


def test_introspection_disabled():
    limits = dataclasses.replace(ANONYMOUS, introspection=False)
    refused = analysis('{ __type(name: "Query") { name } }').exceeds(limits)
    assert isinstance(refused, IntrospectionDisabled)
    assert refused.code == INTROSPECTION_DISABLED.code
    assert refused.status == 400
    # Through a fragment as well.
    hidden = analysis("{ ...F } fragment F on Query { __schema { queryType { name } } }")
    assert isinstance(hidden.exceeds(limits), IntrospectionDisabled)
    assert hidden.exceeds(ANONYMOUS) is None


def test_introspection_refusal_comes_before_depth():
    limits = dataclasses.replace(ANONYMOUS, introspection=False)
    found = analysis("{ __schema { types { name } } " + nested(11) + " }")
    assert isinstance(found.exceeds(limits), IntrospectionDisabled)
    assert isinstance(found.exceeds(ANONYMOUS), QueryTooDeep)


@pytest.mark.parametrize("depth", [1, 5, 10])
def test_depth_limits_of_every_value(depth):
    limits = dataclasses.replace(ANONYMOUS, max_depth=depth)
    assert analysis("{ " + nested(depth) + " }").exceeds(limits) is None
    assert isinstance(analysis("{ " + nested(depth + 1) + " }").exceeds(limits), QueryTooDeep)
