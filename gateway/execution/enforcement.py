"""The policy plan applied where it matters: at the restricted fields, and only there.

At start, ``enforce_restricted_fields`` wraps the resolver of every field the policy does not
classify as open data, once per schema; open fields keep their resolvers untouched, so an
operation that reads open data only runs with no policy work at all. For an operation that
reaches restricted fields, the executor opens a ``FieldGate`` holding the plan's verdicts and
the access trail. A wrapped resolver asks the gate: every restricted field it resolves is
noted in the trail (the audit record); an allowed one resolves; a masked one answers its
value through the mask; a refused one answers null with an error naming the rule and what
would grant it, its resolver never called. A restricted field reached without a gate, or
without a verdict, is refused: deny by default.

Row scopes are held here too, at one place every path goes through: ``enforce_row_scopes``
wraps every field whose named type the policy declares row-scoped (``Query.parcel``,
``Signboard.business``, a connection's ``node``, ``Business.signboards`` …). For a principal
with a row scope, an object outside it answers null, a list drops it, and a non-null field
(a connection's node, which list resolvers keep in scope by pushing it into the upstream
query) answers an error in its place. A principal without one passes at the cost of one
check.

Only public graphql-core API is used: a field's ``resolve`` and the error a resolver raises.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLFieldResolver,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    get_named_type,
)
from graphql import default_field_resolver as graphql_default_resolver

from gateway.audit.trail import AccessTrail
from gateway.errors import Forbidden, denial
from policies.masks import MASKS
from policies.model import Decision, Policy, Verdict
from policies.principal import Principal
from policies.row_scope import admits_row

Coordinate = tuple[str, str]


@dataclass(frozen=True)
class FieldGate:
    """One operation's verdicts on the restricted fields it reaches, its access trail, and
    whose row scope its row-scoped objects are held to."""

    verdicts: Mapping[Coordinate, Verdict]
    trail: AccessTrail
    principal: Principal


# The gate of the operation being executed; resolvers run in its context (DataLoader tasks
# inherit it), and a field outside any gate finds None.
_gate: ContextVar[FieldGate | None] = ContextVar("field_gate", default=None)


@contextlib.contextmanager
def gated(gate: FieldGate) -> Iterator[None]:
    token = _gate.set(gate)
    try:
        yield
    finally:
        _gate.reset(token)


def resolving(policy: Policy, verdicts: Mapping[Coordinate, Verdict]) -> Callable[[str, str], bool]:
    """Whether a field's resolver runs under an operation's verdicts: an open field's always,
    a restricted one's when allowed or masked; a refused one's never, nor one the plan did
    not reach. List resolvers ask before they load related records for a whole page."""

    def resolves(type_name: str, field_name: str) -> bool:
        rule = policy.rules.get((type_name, field_name))
        if rule is not None and rule.open:
            return True
        verdict = verdicts.get((type_name, field_name))
        return verdict is not None and verdict.decision in (Decision.ALLOW, Decision.MASK)

    return resolves


def enforce_restricted_fields(schema: GraphQLSchema, policy: Policy) -> None:
    """Put every restricted field of ``schema`` behind the gate (idempotent)."""
    for (type_name, field_name), rule in policy.rules.items():
        if rule.open:
            continue
        type_ = schema.type_map.get(type_name)
        if not isinstance(type_, GraphQLObjectType) or field_name not in type_.fields:
            continue  # the policy check at start refuses a policy naming fields not there
        field = type_.fields[field_name]
        if not _wrapped_by(field, _Restricted):
            field.resolve = _Restricted(type_name, field_name, field.resolve)


def enforce_row_scopes(schema: GraphQLSchema, policy: Policy) -> None:
    """Hold every field of ``schema`` that answers objects of a row-scoped type to the row
    scope of the operation's principal (idempotent)."""
    for type_name, type_ in schema.type_map.items():
        if not isinstance(type_, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for field_name, field in type_.fields.items():
            dimension = policy.row_scope(get_named_type(field.type).name)
            if dimension is not None and not _wrapped_by(field, _RowScoped):
                field.resolve = _RowScoped(type_name, field_name, field, dimension)


def layers(resolve: Any) -> tuple[Any, bool, bool]:
    """A field's own resolver under the wrappers put on it here, and whether it is
    restricted and row-scoped (for the compiler, which builds these checks into its code)."""
    restricted = row_scoped = False
    while isinstance(resolve, _Restricted | _RowScoped):
        restricted = restricted or isinstance(resolve, _Restricted)
        row_scoped = row_scoped or isinstance(resolve, _RowScoped)
        resolve = resolve.resolve
    return resolve, restricted, row_scoped


def _wrapped_by(field: GraphQLField, kind: type) -> bool:
    """Whether ``field``'s resolver is already behind a wrapper of ``kind`` (wrappers nest)."""
    resolve: Any = field.resolve
    while isinstance(resolve, _Restricted | _RowScoped):
        if isinstance(resolve, kind):
            return True
        resolve = resolve.resolve
    return False


class _Restricted:
    """A restricted field's resolver behind the gate."""

    def __init__(
        self, type_name: str, field_name: str, resolve: GraphQLFieldResolver | None
    ) -> None:
        self.type_name = type_name
        self.field_name = field_name
        self.coordinate = (type_name, field_name)
        self.resolve: Callable[..., Any] = resolve or graphql_default_resolver

    def __call__(self, source: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
        gate = _gate.get()
        verdict = gate.verdicts.get(self.coordinate) if gate is not None else None
        if gate is None or verdict is None:
            raise Forbidden(f"{self.type_name}.{self.field_name} is restricted data")
        gate.trail.saw(self.type_name, self.field_name, verdict, source)
        if verdict.decision is Decision.ALLOW:
            return self.resolve(source, info, **args)
        if verdict.decision is Decision.MASK:
            return _masked(self.resolve(source, info, **args), MASKS[verdict.rule.mask or ""])
        raise denial(verdict)


def _masked(value: Any, mask: Callable[[Any], Any]) -> Any:
    if not inspect.isawaitable(value):
        return None if value is None else mask(value)

    async def later(pending: Awaitable[Any]) -> Any:
        result = await pending
        return None if result is None else mask(result)

    return later(value)


class _RowScoped:
    """A field answering objects of a row-scoped type, held to the principal's row scope."""

    def __init__(self, type_name: str, field_name: str, field: GraphQLField, dimension: str):
        self.coordinate = (type_name, field_name)
        self.dimension = dimension
        self.resolve: Callable[..., Any] = field.resolve or graphql_default_resolver
        self.listed = _is_list(field)
        self.nullable = not isinstance(field.type, GraphQLNonNull)

    def __call__(self, source: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
        gate = _gate.get()
        if gate is None:
            raise Forbidden(f"{self.coordinate[0]}.{self.coordinate[1]} is row-scoped data")
        value = self.resolve(source, info, **args)
        if gate.principal.districts is None:  # city-wide: nothing to hold
            return value
        if inspect.isawaitable(value):
            return self._later(value, gate.principal)
        return self._scoped(value, gate.principal)

    async def _later(self, pending: Awaitable[Any], principal: Principal) -> Any:
        return self._scoped(await pending, principal)

    def _scoped(self, value: Any, principal: Principal) -> Any:
        if value is None:
            return None
        if self.listed:
            return [r for r in value if r is None or admits_row(principal, self.dimension, r)]
        if admits_row(principal, self.dimension, value):
            return value
        if self.nullable:
            return None
        # Only a list resolver that failed to push the scope into its query gets here.
        raise Forbidden(f"{self.coordinate[0]}.{self.coordinate[1]}: a row outside your row scope")


def _is_list(field: GraphQLField) -> bool:
    type_ = field.type
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)
