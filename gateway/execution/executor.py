"""Running one GraphQL operation: limits, the plan, the response cache, execution, the audit.

An operation is held to its audience's limits before anything runs (``documents``); picked
from its document (graphql-core's ``get_operation_ast``); its exact cost checked with the
request's variables; its policy plan made (once per document, operation and grants); then it
is answered from the response cache (open data only), refused (reject mode), or executed —
through the gate of its restricted fields when it reaches any (``enforcement``) — and, if it
touched restricted data, audited before it leaves.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    execute,
    get_operation_ast,
    validate,
)

from connectors.audit_log import AuditUnavailable
from connectors.cache import StaleUse, stale_uses
from gateway import errors
from gateway.audit.trail import AccessTrail, Caller, access_entry
from gateway.audit.writer import AuditRecorder
from gateway.execution.compiled import CompiledExecutor, CompiledOperation
from gateway.execution.compiler import Uncompiled, compile_operation
from gateway.execution.documents import CACHEABLE_LENGTH, RULES, Documents, Parsed, Refused
from gateway.execution.enforcement import (
    FieldGate,
    enforce_restricted_fields,
    enforce_row_scopes,
    gated,
    resolving,
)
from gateway.execution.input_values import variable_refusals
from gateway.execution.introspection import merged
from gateway.execution.outcome import Outcome, executed, refused, with_code
from gateway.execution.response_cache import OpenOperation, ResponseCache, answer_scope
from gateway.execution.trusted import DocumentRef, TrustedDocuments
from gateway.limits.config import AUDIENCES, AudienceLimits, OperationLimits
from gateway.limits.cost import CostModel, too_costly
from gateway.limits.scan import nested_deeper_than, variables_too_deep
from gateway.limits.shape import operation_name
from gateway.observability import metrics
from policies.model import Policy
from policies.plan import Plan, Planner
from policies.principal import Principal
from policies.visibility import visible_schema
from schema import Connectors, Limits, RequestContext

log = logging.getLogger("bma.gateway")

VISIBLE_CACHE_SIZE = 256
COMPILED_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Operation:
    """What a client asked: a document, its variables, the operation to run."""

    query: str
    variables: dict[str, Any] | None = None
    name: str | None = None
    # The document named by hash (``documentId``, Apollo's persisted query): ``query`` is
    # then empty, or the document sent with its hash.
    reference: DocumentRef | None = None


class Executor:
    """Parse, validate, plan and execute, each cached as far as its inputs allow."""

    def __init__(
        self,
        schema: GraphQLSchema,
        policy: Policy,
        audit: AuditRecorder,
        connectors: Connectors,
        *,
        mode: str = "filter",
        limits: AudienceLimits | None = None,
        page_limits: Limits | None = None,
        compiled: bool = True,
        trusted: TrustedDocuments | None = None,
    ) -> None:
        if mode not in ("filter", "reject"):
            raise ValueError(f"policy mode must be filter or reject, not {mode!r}")
        self.schema = schema
        self.policy = policy
        self.audit = audit
        self.connectors = connectors
        self.mode = mode
        self.limits = limits or AudienceLimits()
        self.responses = ResponseCache(connectors.cache)
        self.trusted = trusted or TrustedDocuments()
        page = page_limits or Limits()
        self.documents = Documents(
            schema, self.limits, CostModel(schema, page.default_page_size, page.max_page_size)
        )
        # Each audience's pages: the gateway's, lowered where its limits say.
        self.page_limits = {a: _pages(page, self.limits.of(a)) for a in AUDIENCES}
        self.planner = Planner(policy, schema)
        enforce_restricted_fields(schema, policy)
        enforce_row_scopes(schema, policy)
        # What a principal may see depends only on its grants, not on who it is.
        self._visible: dict[tuple[Any, ...], GraphQLSchema] = {}
        # Each plan's compiled operation (or why it has none), by document, operation and
        # grants: what the plan is made of. None when compiling is off.
        self._compiled: dict[tuple[Any, ...], CompiledOperation | str] | None = (
            {} if compiled else None
        )

    def visible_to(self, principal: Principal) -> GraphQLSchema:
        schema = self._visible.get(principal.grants)
        if schema is None:
            if len(self._visible) >= VISIBLE_CACHE_SIZE:
                self._visible.clear()  # grant sets are few; a flood of odd ones just resets
            schema = self._visible[principal.grants] = visible_schema(
                self.schema, self.policy, principal
            )
        return schema

    def pages_of(self, principal: Principal) -> Limits:
        """The page sizes of the principal's audience."""
        return self.page_limits[principal.kind if principal.kind in AUDIENCES else "anonymous"]

    async def run(self, operation: Operation, caller: Caller) -> Outcome:
        """The operation's outcome, counted in ``bma_requests_total`` and timed."""
        began = time.perf_counter()
        audience = caller.principal.kind
        try:
            outcome = await self._run(operation, caller)
        except Exception:  # a bug: the HTTP layer answers 500 with a reference
            metrics.observe_request("unknown", audience, "error", time.perf_counter() - began)
            raise
        ran = outcome.operation
        label = "unknown" if ran is None else metrics.operation_label(operation_name(ran), audience)
        metrics.observe_request(label, audience, outcome.label, time.perf_counter() - began)
        return outcome

    async def cached(self, operation: Operation, caller: Caller) -> Outcome | None:
        """The operation's answer from the response cache, counted as ``run`` counts it,
        when the operation is known to be open data for the caller's grants (a request with
        these grants went the whole way: ``ResponseCache.known``) and its answer is stored;
        else None, and ``run`` answers it."""
        began = time.perf_counter()
        principal = caller.principal
        if operation.reference is not None or self.trusted.modes.of(principal.kind) == "require":
            return None  # a hash to check, or a registration: ``run`` does it
        known = self.responses.known(operation.query, operation.name, principal.grants)
        if known is None:
            return None
        outcome = await self._hit(known, operation, principal, self.limits.of(principal.kind))
        if outcome is not None:
            audience = principal.kind
            label = metrics.operation_label(operation_name(known.operation), audience)
            metrics.observe_request(label, audience, outcome.label, time.perf_counter() - began)
        return outcome

    async def _run(self, operation: Operation, caller: Caller) -> Outcome:
        principal = caller.principal
        limits = self.limits.of(principal.kind)
        if operation.variables and nested_deeper_than(
            operation.variables, limits.max_variable_depth
        ):
            return refused([variables_too_deep(limits).graphql_error()])
        # Which text runs, by the audience's trusted-documents mode: refused here, before
        # it is parsed, when the mode does not let it run.
        try:
            source = await self.trusted.source(operation.query, operation.reference, principal.kind)
        except errors.GatewayError as refusal:
            outcome = refused([refusal.graphql_error()], status=refusal.status)
            outcome.document_hash = operation.reference.sha256 if operation.reference else None
            return outcome
        parsed = self.documents.prepared(source.text, principal.kind, source.kept_by)
        if isinstance(parsed, Refused):
            found = parsed.errors
            if parsed.invalid is not None:
                found = self._invalid(parsed.invalid, principal, limits) or found
            return refused(found)
        await self.trusted.persist(source)
        if source.text is not operation.query:
            operation = replace(operation, query=source.text)
        outcome = await self._execute(parsed, operation, caller, limits)
        outcome.document_hash = parsed.digest
        return outcome

    async def _hit(
        self,
        known: OpenOperation,
        operation: Operation,
        principal: Principal,
        limits: OperationLimits,
    ) -> Outcome | None:
        """The cached answer of an operation known to be open for the principal's grants,
        checking only what the request's variables change; None when there is no entry or
        a check refuses (the whole way then answers, refusal or miss, as it would anyway)."""
        variables = operation.variables
        if variables or known.takes_variables:
            if variables and nested_deeper_than(variables, limits.max_variable_depth):
                return None
            if variable_refusals(
                self.visible_to(principal),
                known.operation,
                variables,
                hide_suggestions=not limits.suggestions,
            ):
                return None
            cost = known.static_cost
            if cost is None:
                cost = self.documents.cost.cost(known.document, known.operation, variables or {})
            if cost > limits.max_cost:
                return None
        cached = await self.responses.get(known.key_for(variables))
        if cached is None:
            return None
        metrics.observe_cache("response", "hit")
        return Outcome(
            {}, cache="hit", encoded=cached, operation=known.operation, document_hash=known.digest
        )

    def _invalid(
        self, document: DocumentNode, principal: Principal, limits: OperationLimits
    ) -> list[GraphQLError]:
        """Validation errors as the principal's own schema words them: a suggestion never
        names a field the principal may not see."""
        found = validate(
            self.visible_to(principal), document, RULES, hide_suggestions=not limits.suggestions
        )
        return [with_code(e, errors.GRAPHQL_VALIDATION_FAILED) for e in found]

    async def _execute(
        self, parsed: Parsed, operation: Operation, caller: Caller, limits: OperationLimits
    ) -> Outcome:
        """A parsed, valid document: its operation, cost, plan, the response cache,
        execution, audit."""
        chosen = get_operation_ast(parsed.document, operation.name)
        if chosen is None:
            return refused([_not_found(parsed.document, operation.name).graphql_error()])
        # Before any cost, plan or upstream call: the variables are text, and fit the types
        # the caller may see (so no error names what is hidden from it).
        unfit = variable_refusals(
            self.visible_to(caller.principal),
            chosen,
            operation.variables,
            hide_suggestions=not limits.suggestions,
        )
        if unfit:
            return refused(unfit)
        cost = parsed.static_costs.get(operation_name(chosen))
        if cost is None:  # a `first` is a variable
            cost = self.documents.cost.cost(parsed.document, chosen, operation.variables or {})
        if cost > limits.max_cost:
            return refused([too_costly(limits, cost).graphql_error()])
        plan = self.planner.plan(parsed.digest, parsed.document, chosen, caller.principal)
        # Open data only: the same bytes for everyone, so the response cache may answer.
        cache_key = None
        if plan.open_only and not parsed.introspects and self.responses.enabled:
            principal = caller.principal
            scope = answer_scope(principal, self.pages_of(principal))
            static_cost = parsed.static_costs.get(operation_name(chosen))
            known = self.responses.open_operation(
                parsed.digest, parsed.document, chosen, operation.name, static_cost, scope
            )
            if len(operation.query) <= CACHEABLE_LENGTH:  # as documents are
                self.responses.remember(operation.query, operation.name, principal.grants, known)
            cache_key = known.key_for(operation.variables)
            cached = await self.responses.get(cache_key)
            metrics.observe_cache("response", "miss" if cached is None else "hit")
            if cached is not None:
                return Outcome({}, cache="hit", encoded=cached, operation=chosen)
        trail = AccessTrail()
        if self.mode == "reject" and plan.denials:
            trail.refused(plan.denials)
            denied = [errors.denial(v).graphql_error() for v in plan.denials]
            outcome = refused(denied, status=403)
            outcome.operation = chosen
            return await self._audited(outcome, trail, parsed.digest, chosen, caller)
        outcome = await self._executed(parsed, operation, caller, limits, plan, trail)
        if outcome.status == 200:
            outcome.operation = chosen
        if cache_key is not None and outcome.cacheable:
            outcome.encoded = orjson.dumps(outcome.body)
            outcome.cache = "miss"
            await self.responses.put(cache_key, outcome.encoded)
        return await self._audited(outcome, trail, parsed.digest, chosen, caller)

    async def _executed(
        self,
        parsed: Parsed,
        operation: Operation,
        caller: Caller,
        limits: OperationLimits,
        plan: Plan,
        trail: AccessTrail,
    ) -> Outcome:
        principal = caller.principal
        context = RequestContext(
            self.connectors,
            self.pages_of(principal),
            principal=principal,
            request_id=caller.request_id,
            client=caller.client,
            resolves=resolving(self.policy, plan.audited),
        )
        # Cached values served in place of a failed upstream, noted by the caches (the
        # DataLoaders' tasks inherit this context when execution creates them).
        stale: list[StaleUse] = []
        token = stale_uses.set(stale)
        try:
            with gated(FieldGate(plan.audited, trail, principal)):
                if parsed.parts is None:
                    compiled = self._compiled_for(parsed, operation, plan, principal)
                    result = await self._execution(
                        self.schema, parsed.document, operation, context, limits, compiled, trail
                    )
                else:
                    if self._compiled is not None:
                        metrics.observe_execution("reference", "introspection")
                    result = await self._with_introspection(parsed, operation, context, limits)
        finally:
            stale_uses.reset(token)
        return executed(result, context.partial_errors, stale)

    async def _with_introspection(
        self,
        parsed: Parsed,
        operation: Operation,
        context: RequestContext,
        limits: OperationLimits,
    ) -> ExecutionResult:
        """The data from the whole schema, the introspection from the principal's own."""
        assert parsed.parts is not None
        data = introspection = None
        if parsed.parts.data is not None:
            data = await self._execution(self.schema, parsed.parts.data, operation, context, limits)
        if parsed.parts.introspection is not None and (data is None or data.data is not None):
            introspection = await self._execution(
                self.visible_to(context.principal),
                parsed.parts.introspection,
                operation,
                context,
                limits,
            )
        chosen = get_operation_ast(parsed.document, operation.name)
        assert chosen is not None  # picked before planning
        return merged(parsed.document, chosen, data, introspection)

    def _compiled_for(
        self, parsed: Parsed, operation: Operation, plan: Plan, principal: Principal
    ) -> CompiledOperation | None:
        """The plan's compiled operation, compiled on first use; None (counted, with the
        reason) where it runs on the reference executor."""
        if self._compiled is None:
            return None
        key = (parsed.digest, operation.name, principal.grants)
        found = self._compiled.get(key)
        if found is None:
            chosen = get_operation_ast(parsed.document, operation.name)
            assert chosen is not None  # picked before planning
            try:
                found = compile_operation(
                    self.schema, parsed.document, chosen, plan.audited, principal.districts is None
                )
            except Uncompiled as reason:
                found = str(reason)
            except Exception:  # a compiler bug must cost speed, never an answer
                log.exception("operation %s not compiled", parsed.digest[:12])
                found = "compiler error"
            if len(self._compiled) >= COMPILED_CACHE_SIZE:
                self._compiled.clear()  # like the plans: a flood of documents just resets
            self._compiled[key] = found
        if isinstance(found, str):
            metrics.observe_execution("reference", found)
            return None
        metrics.observe_execution("compiled")
        return found

    async def _execution(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: Operation,
        context: RequestContext,
        limits: OperationLimits,
        compiled: CompiledOperation | None = None,
        trail: AccessTrail | None = None,
    ) -> ExecutionResult:
        if compiled is None:
            result = execute(
                schema,
                document,
                context_value=context,
                variable_values=operation.variables,
                operation_name=operation.name,
                hide_suggestions=not limits.suggestions,
            )
        else:
            result = execute(
                schema,
                document,
                context_value=context,
                variable_values=operation.variables,
                operation_name=operation.name,
                hide_suggestions=not limits.suggestions,
                executor_class=CompiledExecutor,
                compiled=compiled,
                trail=trail,
            )
        return await result if inspect.isawaitable(result) else result

    async def _audited(
        self,
        outcome: Outcome,
        trail: AccessTrail,
        document_hash: str,
        operation: OperationDefinitionNode,
        caller: Caller,
    ) -> Outcome:
        """The outcome once its audit record is committed; refused if it carries restricted
        data and the record cannot be written. A pure refusal is answered either way: it
        reveals nothing, and a store outage must not change what a denied caller sees."""
        if not trail.touched:
            return outcome
        entry = access_entry(self.policy, caller, document_hash, operation_name(operation), trail)
        try:
            await self.audit.record(entry)
        except AuditUnavailable as exc:
            if not trail.revealed:
                log.warning("denied request %s not audited: %s", caller.request_id, exc)
                return outcome
            withheld = errors.AuditRefused(
                f"restricted data is not served while it cannot be audited ({exc})"
            )
            return Outcome(
                {"errors": [withheld.entry()], "data": None},
                status=withheld.status,
                operation=outcome.operation,
            )
        return outcome


def _pages(gateway: Limits, limits: OperationLimits) -> Limits:
    """The audience's page sizes: its own largest page, when below the gateway's; the
    default page never exceeds the largest."""
    largest = limits.page_size(gateway.max_page_size)
    if largest >= gateway.max_page_size:
        return gateway
    return replace(
        gateway, max_page_size=largest, default_page_size=min(gateway.default_page_size, largest)
    )


def _not_found(document: DocumentNode, name: str | None) -> errors.GatewayError:
    """Why no operation of the document runs: the name matches none, or none was given to
    choose among several, or the document holds none."""
    if name is not None:
        return errors.OperationNotFound(f"Unknown operation named '{name}'.")
    if any(isinstance(d, OperationDefinitionNode) for d in document.definitions):
        return errors.OperationNotFound(
            "Must provide operation name if query contains multiple operations."
        )
    return errors.OperationNotFound("Must provide an operation.")
