"""What a list field's selection asks of its connection: the total, and the fields of a node;
and the related records a page loads for its nodes.

List resolvers read this to do only the work asked for: count the filter's matches only when
``totalCount`` is selected, and load a node's related records (a parcel's owner …) for the
whole page in one call when the nodes select them. Fragments, inline fragments and aliases
count; ``@skip``/``@include`` are honoured. Type conditions are not checked: a field under a
fragment on another type counts as asked, which can only mean a little more work, never
less than the response needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from graphql import (
    BooleanValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLResolveInfo,
    InlineFragmentNode,
    SelectionNode,
    VariableNode,
)
from strawberry.types import Info

from schema.context import context_of

# Related records loaded for a whole page, by field name: the records by key, or the error
# loading them raised (each row's field answers that error, as its own load would have).
Related = Mapping[str, Mapping[Any, Any] | Exception]
NOTHING_RELATED: Related = MappingProxyType({})


def prefetched(related: Related, name: str) -> Mapping[Any, Any] | None:
    """The page's records for the field ``name``; None when the page did not load them."""
    found = related.get(name)
    if isinstance(found, Exception):
        raise found
    return found


def rows_of(found: Mapping[Any, Any], key: Any) -> list[Any]:
    """One row's records in a page's: a source that failed for this row (one district's
    registry) answers its error, as the row's own load would have."""
    rows = found.get(key, [])
    if isinstance(rows, Exception):
        raise rows
    rows_found: list[Any] = rows
    return rows_found


async def related_records(loads: Mapping[str, Awaitable[Mapping[Any, Any]]]) -> Related:
    """Await a page's loads together; a failed one is kept as its error, for its fields."""
    if not loads:
        return NOTHING_RELATED
    answers = await asyncio.gather(*loads.values(), return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, Exception):
            raise answer  # cancelled: not a failure of the source
    return dict(zip(loads, answers, strict=True))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ListSelection:
    """What one list field's selection asks for."""

    total: bool  # `totalCount` is selected
    node: frozenset[str]  # the fields selected of `edges { node { … } }`, by schema name


def list_selection(info: Info) -> ListSelection:
    """The selection of the list field being resolved; worked out once per field of the
    document in a request (a list under 50 districts asks 50 times)."""
    raw: GraphQLResolveInfo[Any] = info._raw_info
    key = tuple(id(n) for n in raw.field_nodes)
    memo = context_of(info).selections
    found = memo.get(key)
    if found is None:
        found = memo[key] = _list_selection(raw)
    return found


def _list_selection(info: GraphQLResolveInfo[Any]) -> ListSelection:
    # graphql-core's executor passes a VariableValues container, others a plain dict.
    given: Any = info.variable_values
    variables: Mapping[str, Any] = getattr(given, "coerced", given)
    fragments = info.fragments
    connection = _subfields(info.field_nodes, fragments, variables)
    edges = _subfields(connection.get("edges", ()), fragments, variables)
    node = _subfields(edges.get("node", ()), fragments, variables)
    return ListSelection(total="totalCount" in connection, node=frozenset(node))


def _subfields(
    fields: Iterable[FieldNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> dict[str, list[FieldNode]]:
    """The sub-fields selected under ``fields``, by field name (aliases merged)."""
    found: dict[str, list[FieldNode]] = {}
    for field in fields:
        if field.selection_set is not None:
            _collect(field.selection_set.selections, fragments, variables, found, set())
    return found


def _collect(
    selections: Iterable[SelectionNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    found: dict[str, list[FieldNode]],
    spread: set[str],
) -> None:
    for selection in selections:
        if not _included(selection, variables):
            continue
        if isinstance(selection, FieldNode):
            found.setdefault(selection.name.value, []).append(selection)
        elif isinstance(selection, InlineFragmentNode):
            _collect(selection.selection_set.selections, fragments, variables, found, spread)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in spread:
                spread.add(name)
                _collect(fragment.selection_set.selections, fragments, variables, found, spread)


def _included(selection: SelectionNode, variables: Mapping[str, Any]) -> bool:
    for directive in selection.directives or ():
        name = directive.name.value
        if name not in ("skip", "include"):
            continue
        condition = next((a.value for a in directive.arguments or () if a.name.value == "if"), None)
        if isinstance(condition, VariableNode):
            value = bool(variables.get(condition.name.value))
        elif isinstance(condition, BooleanValueNode):
            value = condition.value
        else:
            continue
        if value == (name == "skip"):
            return False
    return True
