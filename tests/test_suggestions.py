"""No answer names what is hidden from its caller, generated from the schema and the policy.

For every audience, the names ``policies.visibility`` hides from it — types, fields, their
arguments, the input fields and enum values of hidden input types and enums — are each
mistyped in every place a client can write them: a variable's type or a fragment's type
condition (types), a selection (fields), an argument (arguments), an input object written in
the document or sent as a variable (input fields), an enum value written or sent (enum
values). The answer must refuse the typo without naming — or suggesting — any hidden name the
request did not itself contain.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
)

import schema
from gateway.auth.api_keys import ApiKeyStore
from gateway.auth.issuer import EmbeddedIssuer
from gateway.http.app import authenticator_from
from policies.model import load_policy
from policies.principal import Principal
from policies.visibility import visible_schema
from schema_walk import InputPosition, argument, input_positions, path_to, value_at
from support import run, settings_for

SCHEMA = schema.graphql_schema()
POLICY = load_policy()


@dataclass(frozen=True)
class Probe:
    """A request holding one typo of ``hidden``."""

    hidden: str  # what is mistyped, e.g. "field Owner.nationalId"
    query: str
    variables: dict | None = None


def typo(name: str) -> str:
    """``name`` with its first letter's case changed: a typo graphql-core always suggests
    the name for (a case-insensitive match is at distance 1)."""
    return name[0].swapcase() + name[1:]


def names(schema_: GraphQLSchema) -> set[str]:
    """Every name a client could read in ``schema_``: types, fields, arguments, input
    fields, enum values."""
    found: set[str] = set()
    for name, t in schema_.type_map.items():
        found.add(name)
        if isinstance(t, GraphQLObjectType):
            for field_name, field in t.fields.items():
                found.add(field_name)
                found.update(field.args)
        elif isinstance(t, GraphQLInputObjectType):
            found.update(t.fields)
        elif isinstance(t, GraphQLEnumType):
            found.update(t.values)
    return found


def _selection(path: list[str], inner: str) -> str:
    for step in reversed(path):
        inner = f"{step} {{ {inner} }}"
    return inner


def _uses(named: GraphQLNamedType) -> list[InputPosition]:
    return [p for p in input_positions(SCHEMA) if p.named is named]


def probes(visible: GraphQLSchema) -> Iterator[Probe]:
    """Typos of everything the full schema has and ``visible`` has not."""
    for name, t in sorted(SCHEMA.type_map.items()):
        if name.startswith("__"):
            continue
        shown = visible.type_map.get(name)
        if shown is None:
            yield from _type_probes(t)
        if isinstance(t, GraphQLObjectType):
            shown_fields = shown.fields if isinstance(shown, GraphQLObjectType) else {}
            for field_name, field in t.fields.items():
                if field_name not in shown_fields:
                    yield from _field_probes(t, field_name, list(field.args))


def _type_probes(t: GraphQLNamedType) -> Iterator[Probe]:
    yield Probe(f"type {t.name}", f"query($v: {typo(t.name)}) {{ __typename }}")
    yield Probe(f"type {t.name}", f"{{ ... on {typo(t.name)} {{ __typename }} }}")
    if isinstance(t, GraphQLInputObjectType):
        for field_name in t.fields:
            for position in _uses(t):
                yield from _value_probes(f"input field {t.name}.{field_name}", position, "{}")
                yield from _value_probes(
                    f"input field {t.name}.{field_name}",
                    position,
                    f"{{{typo(field_name)}: null}}",
                    {typo(field_name): None},
                )
    if isinstance(t, GraphQLEnumType):
        # Where the enum is taken; an enum only ever answered (not taken) has its values
        # mistyped where any enum is taken.
        positions = _uses(t) or [p for p in input_positions(SCHEMA) if _is_enum(p)]
        for value in t.values:
            for position in positions:
                yield from _value_probes(f"enum value {t.name}.{value}", position, typo(value))


def _is_enum(position: InputPosition) -> bool:
    return isinstance(position.named, GraphQLEnumType)


def _value_probes(
    hidden: str, position: InputPosition, literal: str, sent: object = None
) -> Iterator[Probe]:
    """``literal`` written at ``position``, and sent there as a variable (``sent``, else the
    literal as a JSON string: an enum value)."""
    arg = argument(SCHEMA, position)
    path = path_to(SCHEMA, position.parent)

    def at(value: str) -> str:
        return _selection(
            path,
            f"{position.field}({position.arg}: {value_at(position, value, arg.type)}) {{ __typename }}",
        )

    yield Probe(hidden, f"{{ {at(literal)} }}")
    yield Probe(
        hidden,
        f"query($v: {position.type}) {{ {at('$v')} }}",
        {"v": literal if sent is None else sent},
    )


def _field_probes(t: GraphQLObjectType, field: str, args: list[str]) -> Iterator[Probe]:
    path = path_to(SCHEMA, t.name)
    yield Probe(f"field {t.name}.{field}", f"{{ {_selection(path, typo(field))} }}")
    yield Probe(
        f"field {t.name}.{field}",
        f"{{ ...F }} fragment F on {t.name} {{ {typo(field)} }}",
    )
    for arg in args:
        yield Probe(
            f"argument {t.name}.{field}({arg})",
            f"{{ {_selection(path, f'{field}({typo(arg)}: null) {{ __typename }}')} }}",
        )


@pytest.fixture(scope="module")
def audiences(principals, issuer: EmbeddedIssuer, db, traffy_url) -> dict[str, Principal]:
    """Each audience's principal, as the gateway authenticates its credential."""

    async def authenticate() -> dict[str, Principal]:
        store = ApiKeyStore(db.gateway)
        await store.start()
        try:
            authenticator = authenticator_from(settings_for(db, traffy_url), issuer, store)
            return {a: await authenticator.authenticate(h) for a, h in principals.items()}
        finally:
            await store.stop()

    return run(authenticate())


AUDIENCES = [
    "anonymous",
    "app",
    "partner",
    "officer",
    "officer-without-purpose",
    "finance",
    "finance-marketing",
    "dpo",
]


def test_every_audience_of_the_credentials_is_probed(principals):
    assert sorted(principals) == sorted(AUDIENCES)


def test_the_probes_reach_every_kind_of_hidden_name(audiences):
    visible = visible_schema(SCHEMA, POLICY, audiences["partner"])
    kinds = {p.hidden.split()[0] for p in probes(visible)}
    assert {"type", "field", "argument", "input", "enum"} <= kinds, kinds


@pytest.mark.parametrize("audience", AUDIENCES)
def test_no_answer_names_a_hidden_name(anonymous, principals, audiences, audience):
    visible = visible_schema(SCHEMA, POLICY, audiences[audience])
    hidden_names = names(SCHEMA) - names(visible)
    caller = anonymous.acting_as(principals[audience])
    leaks = []
    for probe in probes(visible):
        response = caller.post(probe.query, probe.variables)
        body = response.json()
        assert body.get("errors"), (probe, body)  # the typo is refused
        written = set(re.findall(r"\w+", f"{probe.query} {probe.variables}"))
        for error in body["errors"]:
            named = set(re.findall(r"'\$?(\w+)'", error["message"])) & hidden_names
            if named - written:
                leaks.append((probe.hidden, probe.query, probe.variables, error["message"]))
    assert not leaks, leaks[:5]
