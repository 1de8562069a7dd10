"""The static cost of an operation, in the style of the IBM GraphQL cost specification.

Every field costs 1; a list multiplies the cost of what is selected in it by its size — the
``first`` argument (literal, variable, or the argument's default) of a list that takes one,
the gateway's default page size for a connection's ``edges``, the size assumed in
``LIST_SIZES`` (or ``DEFAULT_LIST_SIZE``) for other lists: the spec's
``@listSize(assumedSize:)``. It is an upper bound of the values the answer can hold.
Introspection lists count once (graphql-core's ``MaxIntrospectionDepthRule`` bounds its
recursion).

The answer's size is not the work behind it: a field that reaches an upstream system (its
resolver loads from a connector, ``schema.upstream``) adds the upstream work it causes, once
per parent it resolves under (the spec's ``@cost(weight:)``), so a lookup nested under a
list of 100 costs 100 lookups. A key of a batched read adds ``UPSTREAM_LOOKUP``; a
connection, which makes its own upstream call per parent, ``UPSTREAM_CALL``; a radius search
(an argument ``radiusMeters``) fetches every item in its circle's bounding box whatever its
``first``, and adds that area times ``ITEMS_PER_KM2``, up to the most one search may fetch.

``CostModel.bounds`` runs before validation, with a ``first`` given by a variable counted 0
(a lower bound); ``CostModel.cost`` runs on the operation that executes, with the request's
variables, before planning and execution, so a refused operation never reaches a source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)

from connectors.traffy import NEARBY_FETCH_LIMIT
from gateway.errors import QueryTooCostly
from gateway.limits.config import OperationLimits
from gateway.limits.shape import (
    COST_CAP,
    INTROSPECTION_ROOTS,
    dependency_order,
    fragments_of,
    operation_name,
    operations_of,
)
from schema.upstream import reads_upstream

# The size assumed for a list field that takes no `first`: the most it holds in practice,
# with room to grow. Lists not named here are assumed to hold DEFAULT_LIST_SIZE.
DEFAULT_LIST_SIZE = 50
LIST_SIZES: Mapping[tuple[str, str], int] = {
    ("Query", "districts"): 50,  # exactly the 50 districts
    ("District", "populationStats"): 50,  # years x 2 sexes x 6 age bands (24 in 2 years)
    ("ComplaintStats", "byState"): 6,  # the ComplaintState values
    ("ComplaintStats", "byType"): 30,  # Traffy's complaint types
    ("Parcel", "assessments"): 10,  # one per tax year
    ("Parcel", "signboards"): 10,  # its signs, one row per sign and tax year
    ("Business", "signboards"): 10,
    ("Business", "licences"): 5,  # one per licence kind, renewed
    ("District", "revenue"): 2,  # one per TaxType
    ("RevenueStatistics", "months"): 24,  # the tax year's 12, and late payments after it
}

# The upstream work of a field that reaches an upstream system, per parent, in the unit of
# the rest of the cost (a value in the answer):
UPSTREAM_LOOKUP = 5  # one key of a batched read: an index probe and its rows' transfer
UPSTREAM_CALL = 50  # a connection's own call: a round trip, a page query and a count
# A radius search fetches every item in the bounding box of its circle: (2r)² of area, at
# this density (the demo's densest square kilometre holds 192 complaints), and at most what
# one search may fetch before it fails.
RADIUS_ARGUMENT = "radiusMeters"
ITEMS_PER_KM2 = 200
MOST_ITEMS_PER_SEARCH = NEARBY_FETCH_LIMIT


def too_costly(limits: OperationLimits, cost: int) -> QueryTooCostly:
    return QueryTooCostly(
        f"the operation's static cost is {cost}; the limit is {limits.max_cost} "
        "(ask for fewer rows with `first`, or fewer nested lists)",
        limits.max_cost,
        cost,
    )


@dataclass(frozen=True)
class _Field:
    is_list: bool  # multiplies what it selects
    connection: bool  # multiplies what its `edges` select
    first_default: int | None  # the schema default of its `first` argument
    has_first: bool
    assumed_size: int  # without a `first`
    upstream: int  # the upstream work it causes per parent, radius searches' area apart
    radius_search: bool  # fetches the items within its `radiusMeters`


class Unknown:
    """A variable value the cost cannot know yet: counted as 0 (a lower bound)."""


LOWER_BOUND = Unknown()


class CostModel:
    """The static cost of an operation over one schema."""

    def __init__(self, schema: GraphQLSchema, default_page_size: int, max_page_size: int) -> None:
        self.schema = schema
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self._fields: dict[tuple[str, str], _Field | None] = {}

    def _field(self, parent: Any, name: str) -> _Field | None:
        key = (parent.name, name)
        if key not in self._fields:
            definition = parent.fields.get(name)
            if definition is None:
                self._fields[key] = None
            else:
                type_ = definition.type
                if isinstance(type_, GraphQLNonNull):
                    type_ = type_.of_type
                named = get_named_type(type_)
                connection = (
                    isinstance(named, GraphQLObjectType)
                    and "edges" in named.fields
                    and "pageInfo" in named.fields
                )
                first = definition.args.get("first")
                default = first.default_value if first is not None else None
                upstream = reads_upstream(definition)
                self._fields[key] = _Field(
                    is_list=isinstance(type_, GraphQLList),
                    connection=connection,
                    first_default=default if type(default) is int else None,
                    has_first=first is not None,
                    assumed_size=LIST_SIZES.get(key, DEFAULT_LIST_SIZE),
                    upstream=_upstream_weight(upstream, connection),
                    radius_search=upstream and RADIUS_ARGUMENT in definition.args,
                )
        return self._fields[key]

    def bounds(self, document: DocumentNode) -> tuple[dict[str | None, int], bool]:
        """The cost of each operation by its name (None: an unnamed one, which validation
        allows only alone), and whether a variable changes them; if one does, these are
        lower bounds (a ``first`` given by a variable counts as 0). One walk, whatever the
        number of operations."""
        walk = self._walk(document, None, LOWER_BOUND)
        costs = {
            operation_name(operation): walk.operation(operation)
            for operation in operations_of(document)
        }
        return costs, walk.dynamic

    def cost(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
    ) -> int:
        """The cost of the operation that runs, with the request's variables."""
        return self._walk(document, operation, variables).operation(operation)

    def _walk(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode | None,
        variables: Mapping[str, Any] | Unknown,
    ) -> _CostWalk:
        """A walk with the cost of every fragment known, in dependency order."""
        walk = _CostWalk(self, operation, variables)
        fragments = fragments_of(document)
        for name in dependency_order(fragments):
            fragment = fragments[name]
            condition = fragment.type_condition.name.value
            parent = self.schema.get_type(condition)
            on_introspection = condition.startswith("__")
            walk.fragments[name] = walk.selections(
                fragment.selection_set, parent, on_introspection, None
            )
        return walk


class _CostWalk:
    def __init__(
        self,
        model: CostModel,
        operation: OperationDefinitionNode | None,
        variables: Mapping[str, Any] | Unknown,
    ) -> None:
        self.model = model
        self.variables = variables
        definitions = (operation.variable_definitions or ()) if operation else ()
        self.defaults = {
            v.variable.name.value: v.default_value.value
            for v in definitions
            if isinstance(v.default_value, IntValueNode)
        }
        self.fragments: dict[str, int] = {}
        self.dynamic = False  # a `first` or a radius is a variable

    def operation(self, operation: OperationDefinitionNode) -> int:
        root = self.model.schema.get_root_type(operation.operation)
        return self.selections(operation.selection_set, root, False, None)

    def selections(
        self, selection_set: SelectionSetNode, parent: Any, introspecting: bool, sized: int | None
    ) -> int:
        """``sized``: the size of the connection whose selection this is (for `edges`)."""
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, introspecting, sized)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.model.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, inner, introspecting, sized)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragments.get(selection.name.value, 0)
        return min(total, COST_CAP)

    def field(self, node: FieldNode, parent: Any, introspecting: bool, sized: int | None) -> int:
        """The field's cost: its answer's values and the upstream work it causes."""
        name = node.name.value
        if name in INTROSPECTION_ROOTS and node.selection_set is not None:
            inner = self.model.schema.get_type("__Schema" if name == "__schema" else "__Type")
            return 1 + self.selections(node.selection_set, inner, True, None)
        info = self.model._field(parent, name) if hasattr(parent, "fields") else None
        if introspecting or info is None:  # an unknown field: validation refuses it
            if node.selection_set is None:
                return 1
            inner_type = get_named_type(parent.fields[name].type) if info else None
            return 1 + self.selections(node.selection_set, inner_type, introspecting, None)
        return min(self.upstream(node, info) + self.answer(node, parent, info, sized), COST_CAP)

    def upstream(self, node: FieldNode, info: _Field) -> int:
        """The upstream work of one resolution of the field (one parent)."""
        if not info.radius_search:
            return info.upstream
        radius = max(0, min(self.argument(node, RADIUS_ARGUMENT) or 0, COST_CAP))
        items = -(-((2 * radius) ** 2) * ITEMS_PER_KM2 // 1_000_000)  # its box's m², rounded up
        return info.upstream + min(items, MOST_ITEMS_PER_SEARCH)

    def answer(self, node: FieldNode, parent: Any, info: _Field, sized: int | None) -> int:
        """The values the field's answer can hold."""
        name = node.name.value
        if node.selection_set is None:
            return 1
        inner_type = get_named_type(parent.fields[name].type)
        if name == "edges" and _is_connection(parent):
            # A connection's edges reached through a fragment on the connection: its size
            # is not known there, so the largest page counts.
            size = sized if sized is not None else self.model.max_page_size
            return min(
                1 + size * self.selections(node.selection_set, inner_type, False, None), COST_CAP
            )
        if info.connection:
            size = self.size(node, info, self.model.default_page_size)
            return 1 + self.selections(node.selection_set, inner_type, False, size)
        if info.is_list:
            size = self.size(node, info, info.assumed_size) if info.has_first else info.assumed_size
            return min(
                1 + size * self.selections(node.selection_set, inner_type, False, None), COST_CAP
            )
        return 1 + self.selections(node.selection_set, inner_type, False, None)

    def size(self, node: FieldNode, info: _Field, fallback: int) -> int:
        value = self.argument(node, "first")
        if value is None:
            value = info.first_default if info.first_default is not None else fallback
        return max(0, min(value, COST_CAP))

    def argument(self, node: FieldNode, name: str) -> int | None:
        """A whole-number argument given as a literal or a variable; a variable not known
        yet counts 0 (a lower bound); None when not given or not a whole number."""
        for argument in node.arguments or ():
            if argument.name.value != name:
                continue
            literal = argument.value
            if isinstance(literal, IntValueNode):
                return int(literal.value)
            if isinstance(literal, VariableNode):
                self.dynamic = True
                variable = literal.name.value
                if isinstance(self.variables, Unknown):
                    return 0
                return _whole(self.variables.get(variable, self.defaults.get(variable)))
        return None


def _upstream_weight(reads_upstream: bool, connection: bool) -> int:
    if not reads_upstream:
        return 0
    return UPSTREAM_CALL if connection else UPSTREAM_LOOKUP


def _is_connection(type_: Any) -> bool:
    return (
        isinstance(type_, GraphQLObjectType)
        and "edges" in type_.fields
        and "pageInfo" in type_.fields
    )


def _whole(value: Any) -> int | None:
    """A variable's value (or the literal of its default) as a whole number, if it is one;
    anything else fails coercion later, and counts as the argument's default here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) < 20:
        return int(value)  # an IntValueNode's text
    return None
