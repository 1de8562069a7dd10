"""On the parsed document, before validation: how deep it nests, how many root fields it
selects, whether it introspects.

Validation's time grows faster than the document (a field repeated, fragments spread many
times or in a ring), so these come first. Fragments are visited in dependency order, so a
cycle cannot recurse; introspection (``__schema``, ``__type``) answers from memory, bounded
by the schema, and has its own depth allowance (``INTROSPECTION_DEPTH``, the depth of the
standard introspection query), whatever the audience's ``max_depth``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from gateway.errors import IntrospectionDisabled, LimitExceeded, TooManyRootFields
from gateway.limits.config import OperationLimits
from gateway.limits.scan import too_deep

# The depth the standard introspection query needs (graphql-core's get_introspection_query:
# 15); introspection may always nest this deep, whatever the audience's max_depth.
INTROSPECTION_DEPTH = 15
INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
COST_CAP = 10**15  # counts of fragment bombs grow exponentially: no need for bignums


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def operations_of(document: DocumentNode) -> list[OperationDefinitionNode]:
    return [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]


def operation_name(operation: OperationDefinitionNode) -> str | None:
    return operation.name.value if operation.name else None


def _spreads(selection_set: SelectionSetNode | None) -> Iterator[str]:
    pending = [selection_set] if selection_set else []
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                yield selection.name.value
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                pending.append(selection.selection_set)


def dependency_order(fragments: Mapping[str, FragmentDefinitionNode]) -> list[str]:
    """Fragment names, each after every fragment it spreads; a spread that closes a cycle is
    left out (validation refuses cycles: NoFragmentCyclesRule)."""
    order: list[str] = []
    state: dict[str, bool] = {}  # False: being visited, True: done
    for root in fragments:
        if root in state:
            continue
        state[root] = False
        stack = [(root, _spreads(fragments[root].selection_set))]
        while stack:
            name, spreads = stack[-1]
            following = next(spreads, None)
            if following is None:
                stack.pop()
                state[name] = True
                order.append(name)
            elif following in fragments and following not in state:
                state[following] = False
                stack.append((following, _spreads(fragments[following].selection_set)))
    return order


@dataclass(frozen=True)
class _Shape:
    depth: int = 0  # data fields on the longest path
    introspection_depth: int = 0  # fields on the longest path through __schema or __type
    root_fields: int = 0  # fields at the top level (inline fragments and spreads included)
    introspects: bool = False


def _shape(
    selection_set: SelectionSetNode, shapes: Mapping[str, _Shape], introspecting: bool
) -> _Shape:
    depth = introspection_depth = root_fields = 0
    introspects = False
    stack: list[tuple[SelectionSetNode, int, bool, bool]] = [
        (selection_set, 0, introspecting, True)
    ]
    while stack:
        current, level, inside, top = stack.pop()
        for selection in current.selections:
            if isinstance(selection, FieldNode):
                here = level + 1
                root_fields += top
                entering = selection.name.value in INTROSPECTION_ROOTS
                introspects = introspects or entering
                if inside or entering:
                    introspection_depth = max(introspection_depth, here)
                else:
                    depth = max(depth, here)
                if selection.selection_set:
                    stack.append((selection.selection_set, here, inside or entering, False))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, level, inside, top))
            elif isinstance(selection, FragmentSpreadNode):
                shape = shapes.get(selection.name.value)
                if shape is None:  # unknown, or closes a cycle: validation refuses both
                    continue
                root_fields = min(root_fields + top * shape.root_fields, COST_CAP)
                introspects = introspects or shape.introspects
                if inside:
                    deepest = max(shape.depth, shape.introspection_depth)
                    introspection_depth = max(introspection_depth, level + deepest)
                else:
                    depth = max(depth, level + shape.depth)
                    if shape.introspection_depth:
                        introspection_depth = max(
                            introspection_depth, level + shape.introspection_depth
                        )
    return _Shape(depth, introspection_depth, root_fields, introspects)


@dataclass(frozen=True)
class Analysis:
    """What the limits need to know of a parsed document, computed once per document."""

    depth: int
    introspection_depth: int
    root_fields: int  # the most of any operation
    introspects: bool
    fragments: int  # fragment definitions

    @classmethod
    def of(cls, document: DocumentNode) -> Analysis:
        fragments = fragments_of(document)
        shapes: dict[str, _Shape] = {}
        for name in dependency_order(fragments):
            fragment = fragments[name]
            on_introspection = fragment.type_condition.name.value.startswith("__")
            shapes[name] = _shape(fragment.selection_set, shapes, on_introspection)
        operations = [_shape(o.selection_set, shapes, False) for o in operations_of(document)]
        every = [*operations, *shapes.values()]  # an unused fragment is still validated
        return cls(
            depth=max((s.depth for s in every), default=0),
            introspection_depth=max((s.introspection_depth for s in every), default=0),
            root_fields=max((s.root_fields for s in operations), default=0),
            introspects=any(s.introspects for s in every),
            fragments=len(fragments),
        )

    def exceeds(self, limits: OperationLimits) -> LimitExceeded | None:
        if self.introspects and not limits.introspection:
            return IntrospectionDisabled()
        if self.depth > limits.max_depth:
            return too_deep(limits.max_depth, self.depth)
        introspection_limit = max(limits.max_depth, INTROSPECTION_DEPTH)
        if self.introspection_depth > introspection_limit:
            return too_deep(introspection_limit, self.introspection_depth)
        if self.root_fields > limits.max_root_fields:
            return TooManyRootFields(
                f"an operation selects {self.root_fields} root fields; "
                f"the limit is {limits.max_root_fields}",
                limits.max_root_fields,
                self.root_fields,
            )
        return None
