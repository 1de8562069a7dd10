"""Every path from the root of the schema to a row-scoped type, as a query: for the suites
that must cover each one (tests/test_row_scope_paths.py, tests/test_cache_isolation.py).

Generated from the schema and the policy at run time: a path is the fields from ``Query`` to
a field answering a type the policy declares row-scoped (``row_scope``), visiting no object
type twice. Every row-scoped object on the path selects ``__typename`` and where it belongs,
so an answer tells which rows it holds. A new field, type or path is covered without
editing a test; a new required argument on a path needs values (``cases`` names it).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    get_nullable_type,
    is_list_type,
    is_required_argument,
)

from policies.model import Policy

# How a row of each row-scope dimension says where it belongs, as a selection and as a read
# of the answer.
PLACE_SELECTION = {"district": "district { code }"}
INNER_PAGE = 2


def place_of(row: Mapping[str, Any], dimension: str) -> str | None:
    assert dimension == "district", f"teach tests/schema_paths.py the dimension {dimension}"
    district = row.get("district")
    return district["code"] if district else None


@dataclass(frozen=True)
class RowPath:
    steps: tuple[tuple[str, str], ...]  # (parent type, field) from Query
    leaf: str  # the row-scoped type the last field answers

    @property
    def gate(self) -> str:
        """The last field: the one that answers the row-scoped objects."""
        return ".".join(self.steps[-1])

    @property
    def name(self) -> str:
        return " > ".join(".".join(s) for s in self.steps)

    def paged(self, schema: GraphQLSchema) -> bool:
        """Whether a field on the path pages its list (`first`): a page of a row-scoped
        list is the scope's own page, not a filtered unscoped one."""
        return any("first" in _field(schema, t, f).args for t, f in self.steps)


def row_paths(schema: GraphQLSchema, policy: Policy) -> list[RowPath]:
    """Every acyclic path from Query to a field answering a row-scoped type."""
    found: list[RowPath] = []

    def walk(type_: GraphQLObjectType, steps: tuple[tuple[str, str], ...], seen: frozenset[str]):
        for field_name, field in type_.fields.items():
            named = get_named_type(field.type)
            if not isinstance(named, GraphQLObjectType) or named.name in seen:
                continue
            here = (*steps, (type_.name, field_name))
            if policy.row_scope(named.name) is not None:
                found.append(RowPath(here, named.name))
            walk(named, here, seen | {named.name})

    assert schema.query_type is not None
    walk(schema.query_type, (), frozenset({schema.query_type.name}))
    return found


def gate_fields(schema: GraphQLSchema, policy: Policy) -> set[str]:
    """Every field of the schema that answers a row-scoped type."""
    return {
        f"{name}.{field_name}"
        for name, type_ in schema.type_map.items()
        if isinstance(type_, GraphQLObjectType) and not name.startswith("__")
        for field_name, field in type_.fields.items()
        if policy.row_scope(get_named_type(field.type).name) is not None
    }


def query_of(schema: GraphQLSchema, policy: Policy, path: RowPath) -> str:
    """The path as one operation; required arguments are variables ``$a0``, ``$a1`` …

    The outermost list keeps its default length (a page's differs by audience); pages
    inside it ask for ``INNER_PAGE`` rows, so that no path costs more than an anonymous
    caller may ask."""
    arguments = _required(schema, path)
    names = {coordinate: f"a{i}" for i, coordinate in enumerate(arguments)}
    inner = _inner_pages(schema, path)
    selection = _row_selection(policy, path.leaf)
    for type_name, field_name in reversed(path.steps):
        given = [
            f"{arg}: ${names[(type_name, field_name, arg)]}"
            for (t, f, arg) in arguments
            if (t, f) == (type_name, field_name)
        ]
        if (type_name, field_name) in inner:
            given.append(f"first: {INNER_PAGE}")
        args = f"({', '.join(given)})" if given else ""
        selection = f"{field_name}{args} {{ {selection} }}"
        if policy.row_scope(type_name) is not None:
            selection = f"{_row_selection(policy, type_name)} {selection}"
    declared = ", ".join(f"${names[c]}: {t}" for c, t in arguments.items())
    return f"query{f'({declared})' if declared else ''} {{ {selection} }}"


def cases(
    schema: GraphQLSchema, path: RowPath, values: Mapping[str, Sequence[Any]]
) -> list[dict[str, Any]]:
    """The variables of every combination of the values given for the path's required
    arguments (``values`` by ``Type.field.argument``)."""
    arguments = list(_required(schema, path))
    choices = []
    for i, (t, f, arg) in enumerate(arguments):
        given = values.get(f"{t}.{f}.{arg}")
        assert given, f"{path.name}: give values for the required argument {t}.{f}({arg})"
        choices.append([(f"a{i}", v) for v in given])
    return [dict(combination) for combination in itertools.product(*choices)]


# ---------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Row:
    type_name: str
    place: str | None
    within: bool  # every row-scoped object above it is in the scope


def rows(data: Any, policy: Policy, scope: frozenset[str], within: bool = True) -> Iterator[Row]:
    """Every row-scoped object of an answer, whether those above it are in ``scope``."""
    if isinstance(data, list):
        for item in data:
            yield from rows(item, policy, scope, within)
        return
    if not isinstance(data, dict):
        return
    dimension = policy.row_scope(data.get("__typename", ""))
    if dimension is not None:
        place = place_of(data, dimension)
        yield Row(data["__typename"], place, within)
        within = within and place in scope
    for value in data.values():
        yield from rows(value, policy, scope, within)


def pruned(data: Any, policy: Policy, scope: frozenset[str]) -> Any:
    """An unscoped answer as ``scope`` must see it: a row outside the scope is null, and is
    dropped from a list."""

    def outside(value: Any) -> bool:
        if not isinstance(value, dict):
            return False
        dimension = policy.row_scope(value.get("__typename", ""))
        return dimension is not None and place_of(value, dimension) not in scope

    if isinstance(data, list):
        return [pruned(v, policy, scope) for v in data if not outside(v)]
    if isinstance(data, dict):
        return {k: None if outside(v) else pruned(v, policy, scope) for k, v in data.items()}
    return data


# ---------------------------------------------------------------------------- helpers


def _field(schema: GraphQLSchema, type_name: str, field_name: str) -> Any:
    type_ = schema.type_map[type_name]
    assert isinstance(type_, GraphQLObjectType)
    return type_.fields[field_name]


def _required(schema: GraphQLSchema, path: RowPath) -> dict[tuple[str, str, str], str]:
    """(type, field, argument) -> its GraphQL type, for every required argument on the path."""
    return {
        (t, f, arg): str(argument.type)
        for t, f in path.steps
        for arg, argument in _field(schema, t, f).args.items()
        if is_required_argument(argument)
    }


def _inner_pages(schema: GraphQLSchema, path: RowPath) -> set[tuple[str, str]]:
    """The fields of the path with a `first` that lie inside another list of the path."""
    inner: set[tuple[str, str]] = set()
    outer = False
    for t, f in path.steps:
        field = _field(schema, t, f)
        if outer and "first" in field.args:
            inner.add((t, f))
        outer = outer or "first" in field.args or is_list_type(get_nullable_type(field.type))
    return inner


def _row_selection(policy: Policy, type_name: str) -> str:
    dimension = policy.row_scope(type_name)
    assert dimension is not None
    return f"__typename {PLACE_SELECTION[dimension]}"
