"""Random queries over a schema, seeded: the differential test's cheap generator.

``random_query(schema, rng)`` walks from the query root choosing a few fields per object,
sometimes under an alias, twice (merged), through an inline fragment or a named one, with
``__typename``; arguments get values this schema's data answer (district codes, tax years,
small pages) and, now and then, ones it refuses (an unknown code, a negative page).
"""

from __future__ import annotations

import json
import random
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
    get_named_type,
    is_leaf_type,
)

# Values by argument name: what the demo data answers, and a few it refuses.
BY_NAME: dict[str, list[Any]] = {
    "first": [0, 1, 2, 3, 3, 5, 20, 21, -1],
    "year": [2024, 2025, 2025, 2568, 1999],
    "district": ["1039", "1001", "1050", "9999"],
    "code": ["1039", "1001", "1033", "0000"],
    "radiusMeters": [100, 500, 2000, 0],
    "after": [None, "bm90LWEtY3Vyc29y", "MTA="],
    "id": ["1", "2", "42", "999999", "x"],
    "taxYear": [2024, 2025],
}
STRINGS = ["1039", "ถนน", "ร้านอาหาร", "x", "", "2025-01-01"]


def random_query(schema: GraphQLSchema, rng: random.Random, depth: int = 3) -> str:
    root = schema.query_type
    assert root is not None
    fragments: list[str] = []
    body = _selection(root, rng, depth, fragments)
    return "{ " + body + " }" + "".join(fragments)


def _selection(
    type_: GraphQLObjectType, rng: random.Random, depth: int, fragments: list[str]
) -> str:
    fields = list(type_.fields.items())
    chosen = rng.sample(fields, rng.randint(1, min(3, len(fields))))
    if type_.name == "Query" and rng.random() < 0.99:
        # All 50 districts, each with its own lists, make a query 50 times the work:
        # kept, but rarer, so that thousands of queries fit in CI.
        chosen = [(n, f) for n, f in chosen if n != "districts"] or chosen
    parts = [p for name, field in chosen if (p := _field(name, field, rng, depth, fragments))]
    if rng.random() < 0.15:
        parts.append("__typename")
    if parts and rng.random() < 0.1:
        parts.append(rng.choice(parts))  # the same field twice: merged
    if parts and rng.random() < 0.1:
        parts = [f"... on {type_.name} {{ {' '.join(parts)} }}"]
    elif parts and rng.random() < 0.05:
        name = f"F{len(fragments)}"
        fragments.append(f" fragment {name} on {type_.name} {{ {' '.join(parts)} }}")
        parts = [f"...{name}"]
    return " ".join(parts) or "__typename"


def _field(
    name: str, field: GraphQLField, rng: random.Random, depth: int, fragments: list[str]
) -> str | None:
    arguments = _arguments(field, rng)
    if arguments is None:
        return None
    alias = f"{name}{rng.randint(1, 3)}: " if rng.random() < 0.1 else ""
    named = get_named_type(field.type)
    if is_leaf_type(named):
        return f"{alias}{name}{arguments}"
    if depth <= 0 or not isinstance(named, GraphQLObjectType):
        return None
    return f"{alias}{name}{arguments} {{ {_selection(named, rng, depth - 1, fragments)} }}"


def _arguments(field: GraphQLField, rng: random.Random) -> str | None:
    given = []
    for name, argument in field.args.items():
        required = isinstance(argument.type, GraphQLNonNull) and argument.default_value is Undefined
        if not required and rng.random() > 0.35:
            continue
        value = _value(name, argument.type, rng)
        if value is None:
            if required:
                return None
            continue
        given.append(f"{name}: {value}")
    return f"({', '.join(given)})" if given else ""


def _value(name: str, type_: GraphQLInputType, rng: random.Random) -> str | None:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if isinstance(type_, GraphQLList):
        item = _value(name, type_.of_type, rng)
        return None if item is None else f"[{item}]"
    if isinstance(type_, GraphQLEnumType):
        return rng.choice(list(type_.values))
    if isinstance(type_, GraphQLInputObjectType):
        inner = [
            f"{n}: {v}"
            for n, f in type_.fields.items()
            if rng.random() < 0.5 and (v := _value(n, f.type, rng)) is not None
        ]
        return "{ " + ", ".join(inner) + " }"
    assert isinstance(type_, GraphQLScalarType)
    if name in BY_NAME:
        choice = rng.choice(BY_NAME[name])
        return None if choice is None else _literal(choice)
    if type_.name in ("Int", "Float"):
        return _literal(rng.choice([0, 1, 3, 2025]))
    if type_.name == "Boolean":
        return rng.choice(["true", "false"])
    if type_.name == "DateTime":
        return _literal(rng.choice(["2025-01-01T00:00:00", "2025-06-01T00:00:00+07:00"]))
    if type_.name == "Date":
        return _literal("2025-01-01")
    return _literal(rng.choice(STRINGS))


def _literal(value: Any) -> str:
    # JSON's string escapes are GraphQL's.
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)
