"""Restricted fields behind the gate: allowed, masked or refused by the plan's verdicts."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from graphql import (
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    get_nullable_type,
    is_list_type,
    is_non_null_type,
)

import schema
from gateway.audit.trail import AccessTrail
from gateway.errors import Forbidden, PurposeRequired
from gateway.execution.enforcement import (
    FieldGate,
    enforce_restricted_fields,
    enforce_row_scopes,
    gated,
)
from policies.masks import MASKS
from policies.model import Decision, Policy, Verdict, load_policy
from policies.principal import Level, Principal

NATIONAL_ID = "1101700203451"
MASKED_ID = "x-xxxx-xxxxx-45-1"

PARTNER = Principal(
    "partner",
    "utility",
    clearance=Level.INTERNAL,
    scopes=frozenset({"tax:read"}),
    purpose="research",
)
FINANCE = Principal(
    "agency",
    "finance-officer",
    clearance=Level.CONFIDENTIAL,
    scopes=frozenset({"tax:read", "tax:personal"}),
    purpose="tax-collection",
)
FINANCE_WITHOUT_PURPOSE = Principal(
    "agency",
    "finance-officer",
    clearance=Level.CONFIDENTIAL,
    scopes=frozenset({"tax:read", "tax:personal"}),
)


class Owner:
    """An owner record whose national ID counts its reads: the field's own resolver reads it."""

    def __init__(self, national_id: str | None = NATIONAL_ID) -> None:
        self._national_id = national_id
        self.reads = 0

    @property
    def national_id(self) -> str | None:
        self.reads += 1
        return self._national_id


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture(scope="module")
def enforced(policy: Policy) -> GraphQLSchema:
    built = schema.graphql_schema()
    enforce_restricted_fields(built, policy)
    return built


def resolver(built: GraphQLSchema, type_name: str, field_name: str) -> Any:
    return built.type_map[type_name].fields[field_name].resolve


def verdict(policy: Policy, principal: Principal, type_name: str, field_name: str) -> Verdict:
    rule = policy.rule(type_name, field_name)
    assert rule is not None
    return policy.decide(rule, principal)


def gate_of(*verdicts: Verdict, principal: Principal = FINANCE) -> FieldGate:
    return FieldGate(
        {(v.rule.type_name, v.rule.field_name): v for v in verdicts}, AccessTrail(), principal
    )


# ---------------------------------------------------------------------------- wrapping


def test_restricted_fields_are_wrapped_and_open_fields_are_not(policy: Policy):
    built = schema.graphql_schema()
    originals = {
        (name, field_name): field.resolve
        for name, type_ in built.type_map.items()
        if not name.startswith("__") and isinstance(type_, GraphQLObjectType)
        for field_name, field in type_.fields.items()
    }
    enforce_restricted_fields(built, policy)
    wrapped = open_seen = 0
    for (type_name, field_name), original in originals.items():
        rule = policy.rule(type_name, field_name)
        now = resolver(built, type_name, field_name)
        if rule is None or rule.open:
            assert now is original, f"{type_name}.{field_name} is open: left as it was"
            open_seen += rule is not None
        else:
            assert now is not original, f"{type_name}.{field_name} is restricted"
            assert now.resolve is original  # the wrapper calls the field's own resolver
            wrapped += 1
    assert wrapped == sum(not rule.open for rule in policy.rules.values())
    assert wrapped > 10 and open_seen > 10
    assert resolver(built, "District", "code") is originals[("District", "code")]


def test_enforcing_twice_wraps_once(policy: Policy):
    built = schema.graphql_schema()
    enforce_restricted_fields(built, policy)
    first = resolver(built, "Owner", "nationalId")
    inner = first.resolve
    enforce_restricted_fields(built, policy)
    assert resolver(built, "Owner", "nationalId") is first
    assert first.resolve is inner
    assert not isinstance(inner, type(first))


def test_each_schema_is_enforced_on_its_own(policy: Policy, enforced: GraphQLSchema):
    fresh = schema.graphql_schema()
    before = resolver(fresh, "Owner", "nationalId")
    assert resolver(enforced, "Owner", "nationalId") is not before
    assert not hasattr(before, "coordinate")


# ---------------------------------------------------------------------------- no gate


def test_a_restricted_field_without_a_gate_is_refused(enforced: GraphQLSchema):
    owner = Owner()
    with pytest.raises(Forbidden) as raised:
        resolver(enforced, "Owner", "nationalId")(owner, None)
    assert raised.value.message == "Owner.nationalId is restricted data"
    assert raised.value.code == "FORBIDDEN"
    assert owner.reads == 0


def test_a_gate_without_the_fields_verdict_refuses_it(policy: Policy, enforced: GraphQLSchema):
    other = verdict(policy, FINANCE, "Owner", "name")
    gate = gate_of(other)
    owner = Owner()
    with gated(gate), pytest.raises(Forbidden, match="Owner.nationalId is restricted data"):
        resolver(enforced, "Owner", "nationalId")(owner, None)
    assert owner.reads == 0
    assert gate.trail.seen == {}


def test_the_gate_is_closed_after_its_block(policy: Policy, enforced: GraphQLSchema):
    allow = verdict(policy, FINANCE, "Owner", "nationalId")
    with gated(gate_of(allow)):
        assert resolver(enforced, "Owner", "nationalId")(Owner(), None) == NATIONAL_ID
    with pytest.raises(Forbidden):
        resolver(enforced, "Owner", "nationalId")(Owner(), None)


# ---------------------------------------------------------------------------- verdicts


def test_allow_calls_through_and_notes_the_trail(policy: Policy, enforced: GraphQLSchema):
    allow = verdict(policy, FINANCE, "Owner", "nationalId")
    assert allow.decision is Decision.ALLOW
    gate = gate_of(allow)
    first, second = Owner(), Owner("3100500112233")
    with gated(gate):
        assert resolver(enforced, "Owner", "nationalId")(first, None) == NATIONAL_ID
        assert resolver(enforced, "Owner", "nationalId")(second, None) == "3100500112233"
    assert first.reads == second.reads == 1
    assert gate.trail.seen == {("Owner", "nationalId"): (allow, [first, second])}
    assert gate.trail.revealed


def test_mask_masks_a_value(policy: Policy, enforced: GraphQLSchema):
    mask = verdict(policy, PARTNER, "Owner", "nationalId")
    assert mask.decision is Decision.MASK
    assert mask.rule.mask == "national_id"
    gate = gate_of(mask)
    owner, nobody = Owner(), Owner(None)
    with gated(gate):
        assert resolver(enforced, "Owner", "nationalId")(owner, None) == MASKED_ID
        assert resolver(enforced, "Owner", "nationalId")(nobody, None) is None  # None stays
    assert owner.reads == 1
    assert gate.trail.seen[("Owner", "nationalId")] == (mask, [owner, nobody])
    assert gate.trail.revealed  # masked is revealed, not denied


async def test_mask_masks_an_awaitable_value(policy: Policy):
    built = schema.graphql_schema()
    reads: list[Any] = []

    async def national_id_later(source: Any, info: Any, **args: Any) -> Any:
        reads.append(source)
        return source.national_id

    built.type_map["Owner"].fields["nationalId"].resolve = national_id_later
    enforce_restricted_fields(built, policy)
    mask = verdict(policy, PARTNER, "Owner", "nationalId")
    with gated(gate_of(mask)):
        pending = resolver(built, "Owner", "nationalId")(Owner(), None)
        empty = resolver(built, "Owner", "nationalId")(Owner(None), None)
    assert inspect.isawaitable(pending)
    assert await pending == MASKED_ID
    assert await empty is None
    assert len(reads) == 2


async def test_allow_passes_an_awaitable_through(policy: Policy):
    built = schema.graphql_schema()

    async def national_id_later(source: Any, info: Any, **args: Any) -> Any:
        return source.national_id

    built.type_map["Owner"].fields["nationalId"].resolve = national_id_later
    enforce_restricted_fields(built, policy)
    allow = verdict(policy, FINANCE, "Owner", "nationalId")
    with gated(gate_of(allow)):
        pending = resolver(built, "Owner", "nationalId")(Owner(), None)
    assert await pending == NATIONAL_ID


def test_mask_of_an_amount(policy: Policy, enforced: GraphQLSchema):
    rule = policy.rule("Parcel", "appraisedValue")
    assert rule is not None and rule.mask == "round_million"
    mask = Verdict(Decision.MASK, rule, "clearance confidential")

    class Parcel:
        appraised_value = "12600000.50"

    with gated(gate_of(mask)):
        value = resolver(enforced, "Parcel", "appraisedValue")(Parcel(), None)
    assert value == MASKS["round_million"]("12600000.50") == "13000000"


def test_deny_raises_the_denial_without_calling_the_resolver(
    policy: Policy, enforced: GraphQLSchema
):
    deny = verdict(policy, Principal("anonymous", "anonymous"), "Owner", "nationalId")
    assert deny.decision is Decision.DENY
    gate = gate_of(deny)
    owner = Owner()
    with gated(gate), pytest.raises(Forbidden) as raised:
        resolver(enforced, "Owner", "nationalId")(owner, None)
    assert owner.reads == 0
    assert raised.value.extensions == {
        "rule": "Owner.nationalId: confidential personal",
        "grantedBy": deny.grant,
    }
    # The refusal is in the trail (the audit record names it), with the object refused.
    assert gate.trail.seen == {("Owner", "nationalId"): (deny, [owner])}
    assert not gate.trail.revealed


def test_purpose_required_raises_its_own_denial(policy: Policy, enforced: GraphQLSchema):
    needs_purpose = verdict(policy, FINANCE_WITHOUT_PURPOSE, "Owner", "nationalId")
    assert needs_purpose.decision is Decision.PURPOSE_REQUIRED
    owner = Owner()
    with gated(gate_of(needs_purpose)), pytest.raises(PurposeRequired):
        resolver(enforced, "Owner", "nationalId")(owner, None)
    assert owner.reads == 0


async def test_tasks_started_inside_the_gate_see_it(policy: Policy, enforced: GraphQLSchema):
    allow = verdict(policy, FINANCE, "Owner", "nationalId")
    gate = gate_of(allow)

    async def read() -> Any:
        return resolver(enforced, "Owner", "nationalId")(Owner(), None)

    with gated(gate):
        task = asyncio.create_task(read())  # as a DataLoader's batch task would be
    assert await task == NATIONAL_ID
    assert len(gate.trail.seen[("Owner", "nationalId")][1]) == 1


# ---------------------------------------------------------------------------- row scopes

OFFICER = Principal(
    "agency", "officer", clearance=Level.CONFIDENTIAL, districts=frozenset({"1039"})
)


class Row:
    def __init__(self, district_code: str | None) -> None:
        if district_code is not None:
            self.district_code = district_code


def _answering(built: GraphQLSchema, policy: Policy) -> list[tuple[str, str]]:
    """Every field of the schema answering objects of a row-scoped type."""
    return [
        (name, field_name)
        for name, type_ in built.type_map.items()
        if isinstance(type_, GraphQLObjectType) and not name.startswith("__")
        for field_name, field in type_.fields.items()
        if policy.row_scope(get_named_type(field.type).name) is not None
    ]


def test_every_field_answering_a_row_scoped_type_holds_rows_to_the_scope(policy: Policy):
    built = schema.graphql_schema()
    fields = _answering(built, policy)
    assert ("Signboard", "business") in fields and ("ParcelEdge", "node") in fields
    inside, outside, nowhere = Row("1039"), Row("1001"), Row(None)
    for type_name, field_name in fields:
        field = built.type_map[type_name].fields[field_name]
        listed = is_list_type(get_nullable_type(field.type))
        given = [inside, outside, nowhere, None] if listed else None
        field.resolve = lambda source, info, given=given, **args: source if given is None else given
    enforce_row_scopes(built, policy)
    for type_name, field_name in fields:
        field = built.type_map[type_name].fields[field_name]
        where = f"{type_name}.{field_name}"
        with gated(gate_of(principal=FINANCE)):  # city-wide: untouched
            assert resolver(built, type_name, field_name)(outside, None) is not None, where
        with gated(gate_of(principal=OFFICER)):
            answer = resolver(built, type_name, field_name)
            if is_list_type(get_nullable_type(field.type)):
                assert answer(inside, None) == [inside, None], where
                continue
            assert answer(inside, None) is inside, where
            for refused in (outside, nowhere):  # a row that says not where it is: refused
                if is_non_null_type(field.type):
                    with pytest.raises(Forbidden, match="outside your row scope"):
                        answer(refused, None)
                else:
                    assert answer(refused, None) is None, where


async def test_an_awaited_row_is_held_to_the_scope(policy: Policy):
    built = schema.graphql_schema()

    async def business_later(source: Any, info: Any, **args: Any) -> Any:
        return source

    built.type_map["Signboard"].fields["business"].resolve = business_later
    enforce_row_scopes(built, policy)
    with gated(gate_of(principal=OFFICER)):
        kept = resolver(built, "Signboard", "business")(Row("1039"), None)
        dropped = resolver(built, "Signboard", "business")(Row("1001"), None)
    assert inspect.isawaitable(kept) and inspect.isawaitable(dropped)
    assert (await kept).district_code == "1039"
    assert await dropped is None


def test_a_row_scoped_field_without_a_gate_is_refused(policy: Policy):
    built = schema.graphql_schema()
    enforce_row_scopes(built, policy)
    with pytest.raises(Forbidden, match="Signboard.business is row-scoped data"):
        resolver(built, "Signboard", "business")(Row("1039"), None)


def test_row_scopes_and_restrictions_wrap_once_each_in_either_order(policy: Policy):
    built = schema.graphql_schema()
    open_field = resolver(built, "District", "code")
    for _ in range(2):
        enforce_restricted_fields(built, policy)
        enforce_row_scopes(built, policy)
    outer = resolver(built, "Signboard", "business")
    assert outer.coordinate == ("Signboard", "business")
    assert not hasattr(outer.resolve, "coordinate")  # the field's own resolver, once wrapped
    assert resolver(built, "District", "code") is open_field
