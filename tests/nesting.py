"""Every field of the graph nested under a list, generated from the schema: for each object
type, the shortest path from the root that passes through a list, with the number of parents
the cost model counts at its end (a connection asked for `first: 2`, a list its `first: 2` or
its assumed size)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    get_named_type,
)

from gateway.limits.cost import DEFAULT_LIST_SIZE, LIST_SIZES

PAGE = 2  # `first` of every list on a path
# Values for the arguments a field requires; a field requiring another is not on any path.
SAMPLE_ARGUMENTS = {
    "radiusMeters": "300",
    "year": "2025",
    "code": '"1039"',
    "id": '"1"',
    "ticketId": '"x"',
    "registrationNo": '"1039-2566-00001"',
}


def is_connection(type_: object) -> bool:
    return isinstance(type_, GraphQLObjectType) and {"edges", "pageInfo"} <= set(type_.fields)


def is_list(field: GraphQLField) -> bool:
    type_ = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    return isinstance(type_, GraphQLList)


def arguments(field: GraphQLField, **given: str) -> str | None:
    """The field's arguments: its required ones from the samples, and ``given``; None when
    it requires one there is no sample for."""
    values = dict(given)
    for name, argument in field.args.items():
        required = isinstance(argument.type, GraphQLNonNull) and argument.default_value is Undefined
        if required and name not in values:
            if name not in SAMPLE_ARGUMENTS:
                return None
            values[name] = SAMPLE_ARGUMENTS[name]
    values = {k: v for k, v in values.items() if k in field.args}
    return "(" + ", ".join(f"{k}: {v}" for k, v in values.items()) + ")" if values else ""


@dataclass(frozen=True)
class Nesting:
    """``wrap`` puts a selection on ``type_name`` at the end of the path."""

    type_name: str
    template: str  # with "{}" where the selection goes
    parents: int

    def wrap(self, selection: str) -> str:
        return self.template.replace("{}", selection)


def nestings(schema: GraphQLSchema) -> dict[str, Nesting]:
    """For every object type reachable through a list, the shortest path there."""
    root = schema.query_type
    assert root is not None
    found: dict[str, Nesting] = {}
    queue = deque([(root, "{ {} }", 1, False)])
    seen = {(root.name, False)}
    while queue:
        parent, template, parents, listed = queue.popleft()
        if listed and parent.name not in found:
            found[parent.name] = Nesting(parent.name, template, parents)
        for name, field in parent.fields.items():
            named = get_named_type(field.type)
            if not isinstance(named, GraphQLObjectType) or name.startswith("__"):
                continue
            step = _step(parent, name, field)
            if step is None:
                continue
            text, inner, size = step
            state = (inner.name, listed or size is not None)
            if state in seen:
                continue
            seen.add(state)
            nested = template.replace("{}", text)
            queue.append((inner, nested, parents * (size or 1), state[1]))
    return found


def _step(
    parent: GraphQLObjectType, name: str, field: GraphQLField
) -> tuple[str, GraphQLObjectType, int | None] | None:
    """The text of one step, the type it reaches and its size (None: not a list)."""
    named = get_named_type(field.type)
    assert isinstance(named, GraphQLObjectType)
    if is_connection(named):
        args = arguments(field, first=str(PAGE))
        node = get_named_type(get_named_type(named.fields["edges"].type).fields["node"].type)
        return (
            None
            if args is None
            else (f"{name}{args} {{ edges {{ node {{ {{}} }} }} }}", node, PAGE)
        )
    if is_list(field):
        if "first" in field.args:
            args, size = arguments(field, first=str(PAGE)), PAGE
        else:
            args, size = arguments(field), LIST_SIZES.get((parent.name, name), DEFAULT_LIST_SIZE)
        return None if args is None else (f"{name}{args} {{ {{}} }}", named, size)
    args = arguments(field)
    return None if args is None else (f"{name}{args} {{ {{}} }}", named, None)


def fields_with_resolvers(schema: GraphQLSchema) -> Iterator[tuple[str, str]]:
    """(type, field) of every field whose value a resolver computes (strawberry's own
    definition carries it), on every object type reachable through a list."""
    for type_name in sorted(nestings(schema)):
        type_ = schema.get_type(type_name)
        assert isinstance(type_, GraphQLObjectType)
        for name, field in type_.fields.items():
            definition = (field.extensions or {}).get("strawberry-definition")
            if getattr(definition, "base_resolver", None) is not None:
                yield type_name, name


def select(field_name: str, field: GraphQLField) -> str | None:
    """The smallest selection of the field: a connection's `totalCount` of no rows, a list
    of `first: 2`, an object's `__typename`; None when it requires an unknown argument."""
    named = get_named_type(field.type)
    if is_connection(named):
        args = arguments(field, first="0")
        return None if args is None else f"{field_name}{args} {{ totalCount }}"
    args = arguments(field, first=str(PAGE)) if "first" in field.args else arguments(field)
    if args is None:
        return None
    if isinstance(named, GraphQLObjectType):
        return f"{field_name}{args} {{ __typename }}"
    return f"{field_name}{args}"
