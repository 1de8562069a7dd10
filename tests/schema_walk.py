"""Walking the GraphQL schema for the suites generated from it: every place a client's value
goes in (arguments and the input fields inside them), and a valid operation that reaches any
field, so a new field or argument is covered without editing a test."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    get_named_type,
    is_leaf_type,
    is_required_argument,
    is_required_input_field,
)

# Scalars whose values are not strings; every other scalar (String, ID, Date, Decimal, …)
# takes a string.
NOT_STRINGS = frozenset({"Int", "Float", "Boolean"})


@dataclass(frozen=True)
class InputPosition:
    """One place a value goes: ``parent.field(arg: {inside…: <here>})``."""

    parent: str
    field: str
    arg: str
    inside: tuple[str, ...]
    type: GraphQLInputType  # the type at that place, wrappers included

    @property
    def named(self) -> GraphQLNamedType:
        return get_named_type(self.type)

    def __str__(self) -> str:
        return ".".join((self.parent, self.field, self.arg, *self.inside))


def object_types(schema: GraphQLSchema) -> list[GraphQLObjectType]:
    return [
        t
        for name, t in sorted(schema.type_map.items())
        if isinstance(t, GraphQLObjectType) and not name.startswith("__")
    ]


def input_positions(schema: GraphQLSchema) -> Iterator[InputPosition]:
    """Every argument of every field, and every input field inside them, down to leaves."""
    for parent in object_types(schema):
        for field_name, field in parent.fields.items():
            for arg_name, arg in field.args.items():
                yield from _inside(parent.name, field_name, arg_name, (), arg.type, set())


def _inside(
    parent: str,
    field: str,
    arg: str,
    inside: tuple[str, ...],
    type_: GraphQLInputType,
    seen: set[str],
) -> Iterator[InputPosition]:
    yield InputPosition(parent, field, arg, inside, type_)
    named = get_named_type(type_)
    if isinstance(named, GraphQLInputObjectType) and named.name not in seen:
        for name, input_field in named.fields.items():
            yield from _inside(
                parent, field, arg, (*inside, name), input_field.type, seen | {named.name}
            )


def takes_strings(position: InputPosition) -> bool:
    named = position.named
    return isinstance(named, GraphQLScalarType) and named.name not in NOT_STRINGS


def path_to(schema: GraphQLSchema, type_name: str) -> list[str]:
    """The shortest selection path from Query to an object of ``type_name``, through fields
    that need no argument (e.g. ``["parcels", "edges", "node"]`` for Parcel)."""
    query = schema.query_type
    assert query is not None
    paths: dict[str, list[str]] = {query.name: []}
    queue = deque([query])
    while queue:
        current = queue.popleft()
        if current.name == type_name:
            return paths[current.name]
        for name, field in current.fields.items():
            target = get_named_type(field.type)
            needs = any(is_required_argument(a) for a in field.args.values())
            if isinstance(target, GraphQLObjectType) and target.name not in paths and not needs:
                paths[target.name] = [*paths[current.name], name]
                queue.append(target)
    raise AssertionError(f"no path from Query to {type_name} without arguments")


def operation(
    schema: GraphQLSchema,
    parent: str,
    field: str,
    args: dict[str, str],
    variables: dict[str, GraphQLInputType] | None = None,
) -> str:
    """A valid operation selecting ``parent.field(args)``; the field's other required
    arguments get the example their description gives, else a sample value."""
    parent_type = schema.type_map[parent]
    assert isinstance(parent_type, GraphQLObjectType)
    target = parent_type.fields[field]
    given = dict(args)
    for name, arg in target.args.items():
        if name not in given and is_required_argument(arg):
            given[name] = example(arg) or sample(arg.type)
    written = ", ".join(f"{k}: {v}" for k, v in given.items())
    leaf = is_leaf_type(get_named_type(target.type))
    selection = f"{field}({written})" if given else field
    selection += "" if leaf else " { __typename }"
    for step in reversed(path_to(schema, parent)):
        selection = f"{step} {{ {selection} }}"
    declared = ", ".join(f"${k}: {t}" for k, t in (variables or {}).items())
    return f"query{f'({declared})' if declared else ''} {{ {selection} }}"


def value_at(position: InputPosition, leaf: str, arg_type: GraphQLInputType) -> str:
    """The literal of the argument that puts ``leaf`` (a literal) at ``position``, with the
    required input fields beside it sampled."""
    return _wrapped(arg_type, position.inside, leaf)


def _wrapped(type_: GraphQLInputType, inside: tuple[str, ...], leaf: str) -> str:
    if not inside:
        return leaf
    named = get_named_type(type_)
    assert isinstance(named, GraphQLInputObjectType)
    head, *rest = inside
    fields = {head: _wrapped(named.fields[head].type, tuple(rest), leaf)}
    for name, f in named.fields.items():
        if name not in fields and is_required_input_field(f):
            fields[name] = sample(f.type)
    return "{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


def argument(schema: GraphQLSchema, position: InputPosition) -> GraphQLArgument:
    parent = schema.type_map[position.parent]
    assert isinstance(parent, GraphQLObjectType)
    return parent.fields[position.field].args[position.arg]


def input_field(schema: GraphQLSchema, type_name: str, name: str) -> GraphQLInputField:
    named = schema.type_map[type_name]
    assert isinstance(named, GraphQLInputObjectType)
    return named.fields[name]


def example(arg: GraphQLArgument) -> str | None:
    """The literal an argument's description gives as its example (``…, e.g. 2025.``), if
    any: a value the field accepts, where ``sample`` only parses."""
    found = re.search(r"\be\.g\. ([^\s,;]+?)\.?(?:$|[\s,;])", arg.description or "")
    if found is None:
        return None
    value = found.group(1)
    return value if get_named_type(arg.type).name in NOT_STRINGS else string_literal(value)


def sample(type_: GraphQLInputType) -> str:
    """A literal of ``type_`` that parses (not necessarily one the field accepts)."""
    if isinstance(type_, GraphQLNonNull):
        return sample(type_.of_type)
    named = get_named_type(type_)
    if isinstance(named, GraphQLEnumType):
        return next(iter(named.values))
    if isinstance(named, GraphQLInputObjectType):
        required = [(k, f) for k, f in named.fields.items() if is_required_input_field(f)]
        return "{" + ", ".join(f"{k}: {sample(f.type)}" for k, f in required) + "}"
    return {"Int": "1", "Float": "1.0", "Boolean": "true"}.get(named.name, '"1"')


def string_literal(text: str) -> str:
    """``text`` as a GraphQL string literal, every character escaped the JSON way (which
    GraphQL shares); beyond the BMP, GraphQL's ``\\u{…}``."""
    escaped = orjson.dumps(text).decode()[1:-1]
    out = []
    for char in escaped:
        code = ord(char)
        if code < 0x20 or 0x7F <= code:
            out.append(f"\\u{{{code:X}}}" if code > 0xFFFF else f"\\u{code:04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
