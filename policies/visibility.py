"""The schema each principal may see: denied fields and types left without fields removed.

Introspection runs against it, and validation messages for a principal's mistakes are
written against it, so neither "did you mean …" nor ``__type(name:)`` names what the
principal may not use. Masked fields and fields that need a declared purpose stay visible:
the principal may use them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from graphql import (
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLNullableType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLType,
    get_named_type,
)

from policies.model import Decision, Policy
from policies.principal import Principal


def visible_schema(schema: GraphQLSchema, policy: Policy, principal: Principal) -> GraphQLSchema:
    """``schema`` without the fields ``principal`` is denied, and without emptied types."""

    def denied(type_name: str, field_name: str) -> bool:
        rule = policy.rule(type_name, field_name)
        return rule is None or policy.decide(rule, principal).decision is Decision.DENY

    return _filter(schema, _visible_fields(schema, denied))


def _visible_fields(
    schema: GraphQLSchema, denied: Callable[[str, str], bool]
) -> dict[str, list[str]]:
    """Per object type, the fields left; a field whose type has none left goes too."""
    objects = {
        name: t
        for name, t in schema.type_map.items()
        if isinstance(t, GraphQLObjectType) and not name.startswith("__")
    }
    visible = {name: [f for f in t.fields if not denied(name, f)] for name, t in objects.items()}
    changed = True
    while changed:
        changed = False
        for name, fields in visible.items():
            kept = [f for f in fields if _target_kept(objects[name].fields[f].type, visible)]
            if len(kept) != len(fields):
                visible[name] = kept
                changed = True
    return {name: fields for name, fields in visible.items() if fields}


def _target_kept(field_type: GraphQLType, visible: dict[str, list[str]]) -> bool:
    named = get_named_type(field_type)
    return not isinstance(named, GraphQLObjectType) or bool(visible.get(named.name))


def _filter(schema: GraphQLSchema, visible: dict[str, list[str]]) -> GraphQLSchema:
    rebuilt: dict[str, GraphQLObjectType] = {}

    def mapped(t: GraphQLType) -> GraphQLType:
        if isinstance(t, GraphQLNonNull):
            return GraphQLNonNull(cast(GraphQLNullableType, mapped(t.of_type)))
        if isinstance(t, GraphQLList):
            return GraphQLList(mapped(t.of_type))
        if isinstance(t, GraphQLObjectType) and t.name in rebuilt:
            return rebuilt[t.name]
        return t

    def fields_of(original: GraphQLObjectType) -> Callable[[], dict[str, GraphQLField]]:
        def thunk() -> dict[str, GraphQLField]:
            return {
                name: GraphQLField(
                    mapped(f.type),  # type: ignore[arg-type]
                    args=f.args,
                    resolve=f.resolve,
                    description=f.description,
                    deprecation_reason=f.deprecation_reason,
                    extensions=f.extensions,
                )
                for name, f in original.fields.items()
                if name in visible[original.name]
            }

        return thunk

    for name in visible:
        original = schema.type_map[name]
        assert isinstance(original, GraphQLObjectType)
        rebuilt[name] = GraphQLObjectType(
            name,
            fields_of(original),
            description=original.description,
            is_type_of=original.is_type_of,
            extensions=original.extensions,
        )
    return GraphQLSchema(
        query=rebuilt[schema.query_type.name],  # type: ignore[union-attr]
        # No explicit type list: only types reachable from the visible Query are listed, so an
        # enum or input used only by hidden fields is hidden too.
        directives=schema.directives,
        description=schema.description,
    )
