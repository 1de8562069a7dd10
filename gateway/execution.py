"""Running one GraphQL operation: limits, cached parse and validation, execution, errors.

Before anything else, the operation is held to the limits of the caller's audience
(``gateway.limits``): variables' nesting, then — once per document text and audience,
cached — tokens, aliases, directives and depth read by the lexer, depth through fragments,
root fields, introspection and a lower bound of the cost on the parsed document; only then
validation. The exact cost (with the request's variables, when a ``first`` is one) is
checked before planning and execution, so a refused operation never reaches a source.

Every error leaves here with a stable ``extensions.code``. Errors raised on purpose carry
their code (``schema.errors``, ``connectors.base``); anything else is a bug, answered as
``INTERNAL_ERROR`` with a reference, and logged with its stack on the server only.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    NoFragmentCyclesRule,
    OperationDefinitionNode,
    execute,
    parse,
    recommended_rules,
    specified_rules,
    validate,
)

from connectors.base import UpstreamError
from connectors.cache import CacheStore, StaleUse, stale_uses
from gateway import metrics
from gateway.audit import AccessTrail, AuditUnavailable, AuditWriter, Caller, access_entry
from gateway.limits import (
    Analysis,
    AudienceLimits,
    CostModel,
    OperationLimits,
    nested_deeper_than,
    scan,
    too_costly,
    too_deep,
    too_many_tokens,
    variables_too_deep,
)
from gateway.policy_executor import PolicyExecutor, denial_error
from gateway.response_cache import ResponseCache
from policies.model import Policy
from policies.plan import Planner
from policies.principal import Principal
from policies.visibility import visible_schema
from schema.context import Limits

log = logging.getLogger("bma.gateway")

CACHE_SIZE = 1024
VISIBLE_CACHE_SIZE = 256
# Documents longer than this are parsed every time: caching them would let a client fill
# memory with large one-off documents (1,024 entries of 1 MB each).
CACHEABLE_LENGTH = 20_000
# The specified rules and graphql-core's recommended MaxIntrospectionDepthRule, which stops
# introspection that recurses through `fields { type { fields { type ...`.
RULES = (*specified_rules, *recommended_rules)


@dataclass
class Outcome:
    """What one operation answered, ready to encode, and the HTTP status it deserves."""

    body: dict[str, Any]
    status: int = 200
    # From the response cache: "hit" (``encoded`` is the answer) or "miss" (stored now).
    cache: str | None = None
    encoded: bytes | None = None
    # The operation that ran, for the metrics: None when none did (refused, or not found).
    operation: OperationDefinitionNode | None = field(default=None, repr=False)
    # SHA-256 of the document, once it parsed: the audit record's, the log line's.
    document_hash: str | None = None

    @property
    def request_error(self) -> bool:
        return self.status >= 400


@dataclass(frozen=True)
class Parsed:
    document: DocumentNode
    introspects: bool  # selects __schema or __type: runs against the principal's schema
    # The cost by requested operation name, for operations whose cost no variable changes.
    static_costs: Mapping[str | None, int] = field(default_factory=dict)
    # SHA-256 of the text: computed once per document, like the parse, not once per request.
    digest: str = ""


@dataclass(frozen=True)
class Refused:
    """A document that does not run: over a limit, not GraphQL, or invalid."""

    errors: list[GraphQLError]
    invalid: DocumentNode | None = None  # the document, when validation refused it


class Executor:
    """Parse, validate, plan and execute, each cached as far as its inputs allow."""

    def __init__(
        self,
        schema: GraphQLSchema,
        policy: Policy,
        audit: AuditWriter,
        *,
        mode: str = "filter",
        limits: AudienceLimits | None = None,
        page_limits: Limits | None = None,
        responses: CacheStore | None = None,
    ) -> None:
        if mode not in ("filter", "reject"):
            raise ValueError(f"policy mode must be filter or reject, not {mode!r}")
        self.schema = schema
        self.policy = policy
        self.audit = audit
        self.mode = mode
        self.limits = limits or AudienceLimits()
        self.responses = ResponseCache(responses)
        page = page_limits or Limits()
        self.cost_model = CostModel(schema, page.default_page_size, page.max_page_size)
        self.planner = Planner(policy, schema)
        # The limits, parse and validation depend only on the document text and the
        # audience (its limits, whether suggestions are shown): done once per pair.
        self._cached_document = lru_cache(maxsize=CACHE_SIZE)(self._prepare)
        # What a principal may see depends only on its grants, not on who it is.
        self._visible: dict[tuple, GraphQLSchema] = {}

    def _document(self, query: str, audience: str) -> Parsed | Refused:
        if len(query) > CACHEABLE_LENGTH:
            return self._prepare(query, audience)
        return self._cached_document(query, audience)

    def _prepare(self, query: str, audience: str) -> Parsed | Refused:
        limits = self.limits.of(audience)
        exceeded = scan(query, limits)  # before parsing: the lexer's pass, stopped early
        if exceeded:
            return Refused([exceeded.error()])
        try:
            document = parse(query, max_lexical_tokens=limits.max_tokens)
        except GraphQLSyntaxError as exc:
            if "Document is nested too deeply" in exc.message:  # in an argument
                return Refused([too_deep(limits.max_depth).error()])
            if "Document contains more than" in exc.message:  # the scan counts alike
                return Refused([too_many_tokens(limits.max_tokens).error()])
            return Refused([_with_code(exc, "GRAPHQL_PARSE_FAILED")])
        analysis = Analysis.of(document)
        exceeded = analysis.exceeds(limits)
        if exceeded:
            return Refused([exceeded.error()])
        if analysis.fragments:
            # Cycles first, with their own rule (linear): in the full validation a ring of
            # 150 fragments costs a quarter of a second.
            cycles = validate(self.schema, document, [NoFragmentCyclesRule])
            if cycles:
                return Refused([_with_code(e, "GRAPHQL_VALIDATION_FAILED") for e in cycles])
        # Before validation as well: a document of thousands of fields is refused for its
        # cost without being validated. A `first` given by a variable counts 0 here.
        costs, dynamic = self.cost_model.bounds(document)
        lowest = min(costs.values(), default=0)
        if lowest > limits.max_cost:
            return Refused([too_costly(limits, lowest).error()])
        errors = validate(self.schema, document, RULES, hide_suggestions=not limits.suggestions)
        if errors:
            errors = [_with_code(e, "GRAPHQL_VALIDATION_FAILED") for e in errors]
            return Refused(errors, invalid=document)
        digest = hashlib.sha256(query.encode()).hexdigest()
        return Parsed(document, analysis.introspects, {} if dynamic else costs, digest)

    def visible_to(self, principal: Principal) -> GraphQLSchema:
        schema = self._visible.get(principal.grants)
        if schema is None:
            if len(self._visible) >= VISIBLE_CACHE_SIZE:
                self._visible.clear()  # grant sets are few; a flood of odd ones just resets
            schema = self._visible[principal.grants] = visible_schema(
                self.schema, self.policy, principal
            )
        return schema

    def _invalid(
        self, document: DocumentNode, principal: Principal, limits: OperationLimits
    ) -> list[GraphQLError]:
        """Validation errors as the principal's own schema words them: a suggestion never
        names a field the principal may not see."""
        errors = validate(
            self.visible_to(principal), document, RULES, hide_suggestions=not limits.suggestions
        )
        return [_with_code(e, "GRAPHQL_VALIDATION_FAILED") for e in errors]

    def _cost(self, parsed: Parsed, operation_name: str | None, variables: Any) -> int:
        cost = parsed.static_costs.get(operation_name)
        if cost is None:  # a `first` is a variable, or no operation has that name
            cost = self.cost_model.cost(parsed.document, operation_name, variables or {})
        return cost

    async def run(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
    ) -> Outcome:
        """The operation's outcome, counted in ``bma_requests_total`` and timed."""
        began = time.perf_counter()
        audience = context.principal.kind
        try:
            outcome = await self._run(query, variables, operation_name, context)
        except Exception:  # a bug: graphql_http answers 500 with a reference
            metrics.observe_request("unknown", audience, "error", time.perf_counter() - began)
            raise
        operation = outcome.operation
        label = (
            "unknown"
            if operation is None
            else metrics.operation_label(operation.name.value if operation.name else None)
        )
        metrics.observe_request(
            label, audience, _outcome_label(outcome), time.perf_counter() - began
        )
        return outcome

    async def _run(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
    ) -> Outcome:
        principal: Principal = context.principal
        limits = self.limits.of(principal.kind)
        if variables and nested_deeper_than(variables, limits.max_variable_depth):
            return _refused([variables_too_deep(limits).error()])
        parsed = self._document(query, principal.kind)
        if isinstance(parsed, Refused):
            errors = parsed.errors
            if parsed.invalid is not None:
                errors = self._invalid(parsed.invalid, principal, limits) or errors
            return _refused(errors)
        outcome = await self._execute(parsed, query, variables, operation_name, context, limits)
        outcome.document_hash = parsed.digest
        return outcome

    async def _execute(
        self,
        parsed: Parsed,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
        limits: OperationLimits,
    ) -> Outcome:
        """A parsed, valid document: its cost, plan, the response cache, execution, audit."""
        principal: Principal = context.principal
        cost = self._cost(parsed, operation_name, variables)
        if cost > limits.max_cost:
            return _refused([too_costly(limits, cost).error()])
        operation = _selected(parsed.document, operation_name)
        _apply_page_size(context, limits)
        plan = self.planner.plan(query, parsed.document, operation_name, principal)
        # Open data only: the same bytes for everyone, so the response cache may answer.
        cache_key = None
        if plan.open_only and not parsed.introspects and self.responses.enabled:
            cache_key = ResponseCache.key(parsed.digest, operation_name, variables)
            cached = await self.responses.get(cache_key)
            metrics.observe_cache("response", "miss" if cached is None else "hit")
            if cached is not None:
                return Outcome({}, cache="hit", encoded=cached, operation=operation)
        trail = AccessTrail()
        if self.mode == "reject" and plan.denials:
            errors = [denial_error(v) for v in plan.denials]
            for v in plan.denials:
                metrics.observe_denial(v.rule.coordinate, v.code)
            trail.refused(plan.denials)
            outcome = Outcome(
                {"errors": [format_error(e) for e in errors]}, status=403, operation=operation
            )
            return await self._audited(outcome, trail, parsed.digest, operation, context)
        policy_args: dict[str, Any] = {}
        if plan.audited:
            policy_args = {
                "executor_class": PolicyExecutor,
                "verdicts": plan.audited,
                "trail": trail,
            }
        # Cached values served in place of a failed upstream, noted by the caches (the
        # DataLoaders' tasks inherit this context when execution creates them).
        stale: list[StaleUse] = []
        token = stale_uses.set(stale)
        result = execute(
            self.visible_to(principal) if parsed.introspects else self.schema,
            parsed.document,
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
            hide_suggestions=not limits.suggestions,
            **policy_args,
        )
        try:
            if inspect.isawaitable(result):
                result = await result
        finally:
            stale_uses.reset(token)
        outcome = _outcome(result, getattr(context, "partial_errors", ()), stale)
        if outcome.status == 200:
            outcome.operation = operation
        if cache_key is not None and _cacheable(outcome):
            outcome.encoded = orjson.dumps(outcome.body)
            outcome.cache = "miss"
            await self.responses.put(cache_key, outcome.encoded)
        return await self._audited(outcome, trail, parsed.digest, operation, context)

    async def _audited(
        self,
        outcome: Outcome,
        trail: AccessTrail,
        document_hash: str,
        operation: OperationDefinitionNode | None,
        context: Any,
    ) -> Outcome:
        """The outcome once its audit record is committed; refused if it carries restricted
        data and the record cannot be written. A pure refusal is answered either way: it
        reveals nothing, and a store outage must not change what a denied caller sees."""
        if not trail.touched:
            return outcome
        caller = Caller(context.principal, context.request_id, context.client)
        name = operation.name.value if operation and operation.name else None
        entry = access_entry(self.policy, caller, document_hash, name, trail)
        try:
            await self.audit.record(entry)
        except AuditUnavailable as exc:
            if not trail.revealed:
                log.warning("denied request %s not audited: %s", caller.request_id, exc)
                return outcome
            message = f"restricted data is not served while it cannot be audited ({exc})"
            error = {"message": message, "extensions": {"code": AuditUnavailable.code}}
            return Outcome(
                {"errors": [error], "data": None}, status=503, operation=outcome.operation
            )
        return outcome


def _selected(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    """The operation execution runs: the one named, or the only one; None if there is none."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    for op in operations:
        if op.name and op.name.value == operation_name:
            return op
    return None


def _outcome_label(outcome: Outcome) -> str:
    """ok, partial, denied, refused or unavailable (gateway.metrics describes them)."""
    if outcome.status >= 500:
        return "unavailable"
    if outcome.status == 403:
        return "denied"
    if outcome.status >= 400:
        return "refused"
    errors = outcome.body.get("errors") if outcome.cache != "hit" else None
    if not errors:
        return "ok"
    if any(e.get("extensions", {}).get("code") in metrics.DENIAL_CODES for e in errors):
        return "denied"
    return "partial"


def _refused(errors: list[GraphQLError]) -> Outcome:
    return Outcome({"errors": [format_error(e) for e in errors]}, status=400)


def _apply_page_size(context: Any, limits: OperationLimits) -> None:
    """The audience's page size, when it is below the gateway's (``page_request`` reads
    ``context.limits``); the default page never exceeds the largest."""
    page: Limits | None = getattr(context, "limits", None)
    if page is None:
        return
    largest = limits.page_size(page.max_page_size)
    if largest < page.max_page_size:
        context.limits = replace(
            page, max_page_size=largest, default_page_size=min(page.default_page_size, largest)
        )


def _outcome(
    result: ExecutionResult, partial: Sequence[GraphQLError], stale: Sequence[StaleUse] = ()
) -> Outcome:
    if result.data is None and result.errors and all(e.path is None for e in result.errors):
        # Execution never started: bad variables or an unknown operation name.
        errors = [format_error(_request_error(e)) for e in result.errors]
        return Outcome({"errors": errors}, status=400)
    body: dict[str, Any] = {}
    errors = [*(result.errors or ()), *partial]
    if errors:
        body["errors"] = [format_error(e) for e in errors]
    body["data"] = result.data
    if stale:
        body["extensions"] = {
            "stale": [
                {"source": u.source, "cache": u.cache, "ageSeconds": u.age_seconds} for u in stale
            ]
        }
    return Outcome(body)


def _cacheable(outcome: Outcome) -> bool:
    """A complete, fresh answer: no errors (partial results), no stale data."""
    return outcome.status == 200 and outcome.body.keys() == {"data"}


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
