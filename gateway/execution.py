"""Running one GraphQL operation: cached parse and validation, execution, error shaping.

Every error leaves here with a stable ``extensions.code``. Errors raised on purpose carry
their code (``schema.errors``, ``connectors.base``); anything else is a bug, answered as
``INTERNAL_ERROR`` with a reference, and logged with its stack on the server only.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    Visitor,
    execute,
    parse,
    validate,
    visit,
)

from connectors.base import UpstreamError
from gateway.audit import AccessTrail, AuditUnavailable, AuditWriter, Caller, access_entry
from gateway.policy_executor import PolicyExecutor, denial_error
from policies.model import Policy
from policies.plan import Planner
from policies.principal import Principal
from policies.visibility import visible_schema

log = logging.getLogger("bma.gateway")

CACHE_SIZE = 1024
VISIBLE_CACHE_SIZE = 256
# Documents longer than this are parsed every time: caching them would let a client fill
# memory with large one-off documents (1,024 entries of 1 MB each).
CACHEABLE_LENGTH = 20_000


@dataclass
class Outcome:
    """What one operation answered, ready to encode, and the HTTP status it deserves."""

    body: dict[str, Any]
    status: int = 200

    @property
    def request_error(self) -> bool:
        return self.status >= 400


@dataclass(frozen=True)
class Parsed:
    document: DocumentNode
    introspects: bool  # selects __schema or __type: runs against the principal's schema


class Executor:
    """Parse, validate, plan and execute, each cached as far as its inputs allow."""

    def __init__(
        self,
        schema: GraphQLSchema,
        policy: Policy,
        audit: AuditWriter,
        *,
        mode: str = "filter",
    ) -> None:
        if mode not in ("filter", "reject"):
            raise ValueError(f"policy mode must be filter or reject, not {mode!r}")
        self.schema = schema
        self.policy = policy
        self.audit = audit
        self.mode = mode
        self.planner = Planner(policy, schema)
        # Parse and validation depend only on the document text: do each once per text.
        self._cached_document = lru_cache(maxsize=CACHE_SIZE)(self._parse_and_validate)
        # What a principal may see depends only on its grants, not on who it is.
        self._visible: dict[tuple, GraphQLSchema] = {}

    def _document(self, query: str) -> Parsed | list[GraphQLError]:
        if len(query) > CACHEABLE_LENGTH:
            return self._parse_and_validate(query)
        return self._cached_document(query)

    def _parse_and_validate(self, query: str) -> Parsed | list[GraphQLError]:
        try:
            document = parse(query)
        except GraphQLSyntaxError as exc:
            return [_with_code(exc, "GRAPHQL_PARSE_FAILED")]
        errors = validate(self.schema, document)
        if errors:
            return [_with_code(e, "GRAPHQL_VALIDATION_FAILED") for e in errors]
        return Parsed(document, _introspects(document))

    def visible_to(self, principal: Principal) -> GraphQLSchema:
        schema = self._visible.get(principal.grants)
        if schema is None:
            if len(self._visible) >= VISIBLE_CACHE_SIZE:
                self._visible.clear()  # grant sets are few; a flood of odd ones just resets
            schema = self._visible[principal.grants] = visible_schema(
                self.schema, self.policy, principal
            )
        return schema

    def _invalid(self, query: str, principal: Principal) -> list[GraphQLError]:
        """Validation errors as the principal's own schema words them: a suggestion never
        names a field the principal may not see."""
        try:
            document = parse(query)
        except GraphQLSyntaxError as exc:
            return [_with_code(exc, "GRAPHQL_PARSE_FAILED")]
        errors = validate(self.visible_to(principal), document)
        return [_with_code(e, "GRAPHQL_VALIDATION_FAILED") for e in errors]

    async def run(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
    ) -> Outcome:
        principal: Principal = context.principal
        parsed = self._document(query)
        if isinstance(parsed, list):
            errors = parsed if _is_syntax(parsed) else self._invalid(query, principal) or parsed
            return Outcome({"errors": [format_error(e) for e in errors]}, status=400)
        plan = self.planner.plan(query, parsed.document, operation_name, principal)
        trail = AccessTrail()
        if self.mode == "reject" and plan.denials:
            errors = [denial_error(v) for v in plan.denials]
            trail.refused(plan.denials)
            outcome = Outcome({"errors": [format_error(e) for e in errors]}, status=403)
            return await self._audited(
                outcome, trail, query, parsed.document, operation_name, context
            )
        policy_args: dict[str, Any] = {}
        if plan.audited:
            policy_args = {
                "executor_class": PolicyExecutor,
                "verdicts": plan.audited,
                "trail": trail,
            }
        result = execute(
            self.visible_to(principal) if parsed.introspects else self.schema,
            parsed.document,
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
            **policy_args,
        )
        if inspect.isawaitable(result):
            result = await result
        outcome = _outcome(result, getattr(context, "partial_errors", ()))
        return await self._audited(outcome, trail, query, parsed.document, operation_name, context)

    async def _audited(
        self,
        outcome: Outcome,
        trail: AccessTrail,
        query: str,
        document: DocumentNode,
        operation_name: str | None,
        context: Any,
    ) -> Outcome:
        """The outcome once its audit record is committed; refused if it carries restricted
        data and the record cannot be written. A pure refusal is answered either way: it
        reveals nothing, and a store outage must not change what a denied caller sees."""
        if not trail.touched:
            return outcome
        caller = Caller(context.principal, context.request_id, context.client)
        name = operation_name or _operation_name(document)
        entry = access_entry(self.policy, caller, query, name, trail)
        try:
            await self.audit.record(entry)
        except AuditUnavailable as exc:
            if not trail.revealed:
                log.warning("denied request %s not audited: %s", caller.request_id, exc)
                return outcome
            message = f"restricted data is not served while it cannot be audited ({exc})"
            error = {"message": message, "extensions": {"code": AuditUnavailable.code}}
            return Outcome({"errors": [error], "data": None}, status=503)
        return outcome


def _operation_name(document: DocumentNode) -> str | None:
    """The name of a document's only operation (the one that ran without operationName)."""
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            return definition.name.value if definition.name else None
    return None


def _introspects(document: DocumentNode) -> bool:
    found = False

    class Find(Visitor):
        def enter_field(self, node: FieldNode, *_args: object) -> None:
            nonlocal found
            found = found or node.name.value in ("__schema", "__type")

    visit(document, Find())
    return found


def _is_syntax(errors: list[GraphQLError]) -> bool:
    return any(isinstance(e, GraphQLSyntaxError) for e in errors)


def _outcome(result: ExecutionResult, partial: Sequence[GraphQLError]) -> Outcome:
    if result.data is None and result.errors and all(e.path is None for e in result.errors):
        # Execution never started: bad variables or an unknown operation name.
        errors = [format_error(_request_error(e)) for e in result.errors]
        return Outcome({"errors": errors}, status=400)
    body: dict[str, Any] = {}
    errors = [*(result.errors or ()), *partial]
    if errors:
        body["errors"] = [format_error(e) for e in errors]
    body["data"] = result.data
    return Outcome(body)


# graphql-core's messages when execution cannot pick the operation; every other request
# error before execution is about variable values.
_OPERATION_ERRORS = (
    "Unknown operation named",
    "Must provide operation name",
    "Must provide an operation",
)


def _request_error(error: GraphQLError) -> GraphQLError:
    if error.message.startswith(_OPERATION_ERRORS):
        return _with_code(error, "OPERATION_NOT_FOUND")
    return _with_code(error, "BAD_USER_INPUT")


def _with_code(error: GraphQLError, code: str) -> GraphQLError:
    if not (error.extensions or {}).get("code"):
        error.extensions = {**(error.extensions or {}), "code": code}
    return error


def format_error(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    message = error.message
    extensions = dict(error.extensions or {})
    if original is not None and not isinstance(original, GraphQLError):
        code = getattr(original, "code", None)
        if code is None:
            reference = uuid.uuid4().hex[:12]
            log.error("internal error %s at %s", reference, error.path, exc_info=original)
            message = f"internal error (reference {reference})"
            code = "INTERNAL_ERROR"
        extensions.update(getattr(original, "extensions", None) or {})
        if isinstance(original, UpstreamError):
            extensions["source"] = original.source
            if original.district:
                extensions["district"] = original.district
        extensions["code"] = code
    extensions.setdefault("code", "INTERNAL_ERROR")
    formatted: dict[str, Any] = {"message": message}
    if error.locations:
        formatted["locations"] = [
            {"line": loc.line, "column": loc.column} for loc in error.locations
        ]
    if error.path is not None:
        formatted["path"] = error.path
    formatted["extensions"] = extensions
    return formatted
