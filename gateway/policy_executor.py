"""graphql-core's executor with the policy plan applied at the fields the plan names.

Only operations that reach restricted fields run here; every field costs one dictionary
lookup, and only restricted fields do more: each is noted in the access trail (the audit
record), a denied one answers null with an error naming the rule and what would grant it,
a masked one answers its value through the mask.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from graphql import GraphQLError, GraphQLObjectType
from graphql.execution.executor import Executor
from graphql.pyutils import Path

from gateway import metrics
from gateway.audit import AccessTrail
from policies.masks import MASKS
from policies.model import Decision, Verdict


class PolicyExecutor(Executor):
    def __init__(
        self,
        *args: Any,
        verdicts: Mapping[tuple[str, str], Verdict],
        trail: AccessTrail,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.trail = trail
        # By type, then field: most types have no restricted field, and a miss costs one lookup.
        self.verdicts: dict[str, dict[str, Verdict]] = {}
        for (type_name, field_name), verdict in verdicts.items():
            self.verdicts.setdefault(type_name, {})[field_name] = verdict

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        on_type = self.verdicts.get(parent_type.name)
        name = field_details_list[0].node.name.value
        verdict = on_type.get(name) if on_type else None
        if verdict is None:
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        self.trail.saw(parent_type.name, name, verdict, source)
        if verdict.decision is Decision.ALLOW:
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        if verdict.decision is Decision.MASK:
            value = super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
            return _masked(value, verdict, self.is_awaitable(value))
        metrics.observe_denial(verdict.rule.coordinate, verdict.code)
        nodes = [d.node for d in field_details_list]
        self.collected_errors.add(denial_error(verdict, nodes, path.as_list()), path)
        return None


def denial_error(
    verdict: Verdict, nodes: Any = None, path: list[str | int] | None = None
) -> GraphQLError:
    rule = verdict.rule
    if verdict.decision is Decision.PURPOSE_REQUIRED:
        message = f"{rule.coordinate} is personal data: declare a purpose with the X-Purpose header"
    else:
        message = f"{rule.coordinate} is {rule.level.name.lower()} data; you may not read it"
    return GraphQLError(
        message,
        nodes,
        path=path,
        extensions={
            "code": verdict.code,
            "rule": f"{rule.coordinate}: {rule.level.name.lower()}"
            + (f" {' '.join(sorted(rule.tags))}" if rule.tags else ""),
            "grantedBy": verdict.grant,
        },
    )


def _masked(value: Any, verdict: Verdict, awaitable: bool) -> Any:
    mask = MASKS[verdict.rule.mask or ""]
    if not awaitable:
        return None if value is None else mask(value)

    async def later(pending: Awaitable[Any]) -> Any:
        result = await pending
        return None if result is None else mask(result)

    return later(value)
