"""The policy plan: decided once per (document, operation, principal's grants), then cached.

The planner walks every field the operation can reach — through aliases, named and inline
fragments, and fields under ``@skip``/``@include`` whatever their variables — and keeps the
verdicts that are not a plain "allow". Execution consults only those: an operation that
reads open fields only runs with no policy work at all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from threading import Lock

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    visit,
)

from policies.model import Decision, Policy, Verdict
from policies.principal import Grants, Principal

PLAN_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Plan:
    # Verdicts other than ALLOW, by (parent type, field) — the fields execution must treat.
    actions: Mapping[tuple[str, str], Verdict]
    # Every field reached is open data: the answer is the same for every principal.
    open_only: bool
    # The verdict on every reached field that is not open data, allowed ones included:
    # reading (or being refused) any of them leaves an audit record.
    audited: Mapping[tuple[str, str], Verdict] = field(default_factory=dict)

    @property
    def denials(self) -> list[Verdict]:
        return [v for v in self.actions.values() if v.decision is not Decision.MASK]


class Planner:
    def __init__(self, policy: Policy, schema: GraphQLSchema) -> None:
        self.policy = policy
        self.schema = schema
        self._cache: OrderedDict[tuple[str, str | None, Grants], Plan] = OrderedDict()
        self._lock = Lock()

    def plan(
        self,
        document_key: str,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        principal: Principal,
    ) -> Plan:
        """The plan of ``operation`` (of ``document``, identified by ``document_key``, e.g.
        its hash) for principals with ``principal``'s grants."""
        name = operation.name.value if operation.name else None
        key = (document_key, name, principal.grants)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        plan = self._make(document, operation, principal)
        with self._lock:
            self._cache[key] = plan
            if len(self._cache) > PLAN_CACHE_SIZE:
                self._cache.popitem(last=False)
        return plan

    def _make(
        self, document: DocumentNode, operation: OperationDefinitionNode, principal: Principal
    ) -> Plan:
        audited: dict[tuple[str, str], Verdict] = {}
        for coordinate in reachable_fields(self.schema, document, operation):
            rule = self.policy.rule(*coordinate)
            if rule is None:  # the policy check at start makes this unreachable
                raise LookupError(f"no policy for {coordinate[0]}.{coordinate[1]}")
            if not rule.open:
                audited[coordinate] = self.policy.decide(rule, principal)
        actions = {c: v for c, v in audited.items() if v.decision is not Decision.ALLOW}
        return Plan(actions=actions, open_only=not audited, audited=audited)


def reachable_fields(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> Iterator[tuple[str, str]]:
    """(parent type, field) of every field ``operation`` can reach."""
    found: set[tuple[str, str]] = set()
    type_info = TypeInfo(schema)

    class Collect(Visitor):
        def enter_field(self, node: FieldNode, *_args: object) -> None:
            parent = type_info.get_parent_type()
            if parent is None or node.name.value.startswith("__"):
                return
            parent_name = get_named_type(parent).name
            if not parent_name.startswith("__"):  # introspection types: the visible schema's
                found.add((parent_name, node.name.value))

    for definition in _definitions_used(document, operation):
        visit(definition, TypeInfoVisitor(type_info, Collect()))
    return iter(sorted(found))


def _definitions_used(document: DocumentNode, operation: OperationDefinitionNode) -> list[Node]:
    """The operation and every fragment it spreads, transitively."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    used: list[Node] = [operation]
    seen: set[str] = set()
    pending: list[Node] = list(used)
    while pending:
        for name in _spread_names(pending.pop()):
            if name not in seen and name in fragments:
                seen.add(name)
                used.append(fragments[name])
                pending.append(fragments[name])
    return used


def _spread_names(node: Node) -> list[str]:
    names: list[str] = []

    class Spreads(Visitor):
        def enter_fragment_spread(self, spread: FragmentSpreadNode, *_args: object) -> None:
            names.append(spread.name.value)

    visit(node, Spreads())
    return names
