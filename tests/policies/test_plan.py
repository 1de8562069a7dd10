"""policies/plan.py: the fields an operation reaches, through aliases, fragments and directives,
and the plan of what each principal gets of them."""

from __future__ import annotations

from policies.model import Decision, load_policy
from policies.plan import Planner, reachable_fields
from policies.principal import ANONYMOUS, Level, Principal
from schema import graphql_schema

SCHEMA = graphql_schema()


POLICY = load_policy()


PARTNER = Principal(
    "partner", "p1", "utility-partner", Level.INTERNAL, frozenset({"tax:read"}), purpose="research"
)


def test_plan_sees_fields_through_aliases_fragments_and_directives():
    from graphql import get_operation_ast, parse

    query = """query Q($x: Boolean!) { a: parcel(id: "1") { ...P ... on Parcel { b: owner { nationalId @include(if: $x) } } } }
               fragment P on Parcel { ...Q2 }  fragment Q2 on Parcel { appraisedValue }
               query Other { districts { code } }"""
    document = parse(query)
    chosen, other_operation = (get_operation_ast(document, n) for n in ("Q", "Other"))
    found = set(reachable_fields(SCHEMA, document, chosen))
    assert found == {
        ("Query", "parcel"),
        ("Parcel", "owner"),
        ("Owner", "nationalId"),
        ("Parcel", "appraisedValue"),
    }
    plan = Planner(POLICY, SCHEMA).plan(query, document, chosen, PARTNER)
    assert {k: v.decision for k, v in plan.actions.items()} == {
        ("Owner", "nationalId"): Decision.MASK,
        ("Parcel", "appraisedValue"): Decision.MASK,
    }
    assert not plan.open_only
    other = Planner(POLICY, SCHEMA).plan(query, document, other_operation, ANONYMOUS)
    assert other.actions == {} and other.open_only
