"""Operations that introspect: the schema answered as the principal may see it, data as ever.

``__schema`` and ``__type`` describe the principal's own schema (``policies.visibility``:
denied fields and emptied types left out), so that neither the docs nor ``__type(name:)``
reveal what the principal may not use. The data an operation reads beside them is still
denied, masked or granted field by field through the gate, exactly as without the
introspection. So an operation that does both is split once, when its document is prepared:
its introspection fields run against the principal's schema (no upstream is asked), the rest
against the whole schema, and the two answers are put back together in the operation's
order. Both fields can only stand at the root (on the query type).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    REMOVE,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    visit,
)

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


@dataclass(frozen=True)
class Split:
    """A document's data part and its introspection part (None when it has none)."""

    data: DocumentNode | None
    introspection: DocumentNode | None


def split(schema: GraphQLSchema, document: DocumentNode) -> Split:
    data = _keeping(schema, document, introspection=False)
    introspection = _keeping(schema, document, introspection=True)
    return Split(
        data if _selects_any(data) else None,
        introspection if _selects_any(introspection) else None,
    )


def merged(
    document: DocumentNode,
    operation: OperationDefinitionNode,
    data: ExecutionResult | None,
    introspection: ExecutionResult | None,
) -> ExecutionResult:
    """The operation's answer from its two parts, its root keys in the operation's order."""
    parts = [r for r in (data, introspection) if r is not None]
    failed = next((r for r in parts if r.data is None), None)
    if failed is not None:  # variables that do not fit: both parts refuse them alike
        return failed
    values: dict[str, Any] = {}
    for result in parts:
        values.update(result.data or {})
    order = [_key(s) for s in operation.selection_set.selections if isinstance(s, FieldNode)]
    ordered = {key: values.pop(key) for key in order if key in values}
    ordered.update(values)  # keys from fragments, in the parts' order
    found = [e for result in parts for e in (result.errors or ())]
    return ExecutionResult(ordered, found or None)


def _key(field: FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value


def _keeping(schema: GraphQLSchema, document: DocumentNode, *, introspection: bool) -> DocumentNode:
    """``document`` with only its introspection root fields, or without them."""
    type_info = TypeInfo(schema)
    query_type = schema.query_type

    class Keep(Visitor):
        def enter_field(self, node: FieldNode, *_args: object) -> Any:
            if type_info.get_parent_type() is not query_type:
                return None
            is_introspection = node.name.value in INTROSPECTION_ROOTS
            if is_introspection != introspection and not (
                node.name.value == "__typename" and not introspection
            ):
                return REMOVE
            return None

    kept: DocumentNode = visit(document, TypeInfoVisitor(type_info, Keep()))
    return kept


def _selects_any(document: DocumentNode) -> bool:
    """Whether an operation of ``document`` still selects a field (through its fragments
    too: a fragment whose fields all went leaves nothing to run)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    pending: list[SelectionSetNode] = [
        d.selection_set for d in document.definitions if isinstance(d, OperationDefinitionNode)
    ]
    seen: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                return True
            if isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                if selection.name.value in fragments:
                    pending.append(fragments[selection.name.value].selection_set)
    return False
