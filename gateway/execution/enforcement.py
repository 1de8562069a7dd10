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

Only public graphql-core API is used: a field's ``resolve`` and the error a resolver raises.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLFieldResolver, GraphQLObjectType, GraphQLResolveInfo, GraphQLSchema
from graphql import default_field_resolver as graphql_default_resolver

from gateway.audit.trail import AccessTrail
from gateway.errors import Forbidden, denial
from policies.masks import MASKS
from policies.model import Decision, Policy, Verdict

Coordinate = tuple[str, str]


@dataclass(frozen=True)
class FieldGate:
    """One operation's verdicts on the restricted fields it reaches, and its access trail."""

    verdicts: Mapping[Coordinate, Verdict]
    trail: AccessTrail


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


def enforce_restricted_fields(schema: GraphQLSchema, policy: Policy) -> None:
    """Put every restricted field of ``schema`` behind the gate (idempotent)."""
    for (type_name, field_name), rule in policy.rules.items():
        if rule.open:
            continue
        type_ = schema.type_map.get(type_name)
        if not isinstance(type_, GraphQLObjectType) or field_name not in type_.fields:
            continue  # the policy check at start refuses a policy naming fields not there
        field = type_.fields[field_name]
        if not isinstance(field.resolve, _Restricted):
            field.resolve = _Restricted(type_name, field_name, field.resolve)


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
