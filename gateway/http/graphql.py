"""GraphQL over HTTP: reading requests (POST JSON, GET, batches), GraphiQL, answering JSON.

A request that cannot be an operation — a body over the size limit, malformed JSON, a
missing ``query`` — is answered here with a 4xx and a stable ``extensions.code``; it never
reaches execution. Neither does a request whose credential authentication refused: that is
a 401 with a ``WWW-Authenticate`` challenge naming the reason (or a 503 when it could not be
checked).

The caller is known before the body is read (``gateway.auth.middleware``): the body size and
the batch size are limits of its audience (``gateway.limits``). A batch over the limit is
refused before any of its operations is parsed. Every answer carries
``Server-Timing: app;dur=<ms>``, the time from the request reaching this handler to its
response being ready, and the request leaves one log line.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway import errors
from gateway.audit.trail import Caller
from gateway.auth.middleware import authenticated, principal_of
from gateway.execution.executor import Executor, Operation
from gateway.execution.outcome import Outcome
from gateway.execution.trusted import document_reference
from gateway.http.graphiql import graphiql_response
from gateway.http.request_id import request_id_of
from gateway.limits.config import OperationLimits
from gateway.observability import tracing
from gateway.observability.logs import log_request
from gateway.observability.upstream import counting_calls

log = logging.getLogger("bma.gateway")

MEDIA_TYPES = (errors.JSON, "application/graphql-response+json")


class GraphQLHTTP:
    def __init__(
        self, executor: Executor, *, max_body_bytes: int, max_batch: int, graphiql: bool
    ) -> None:
        self.executor = executor
        self.max_body_bytes = max_body_bytes
        self.max_batch = max_batch
        self.graphiql = graphiql

    async def handle(self, request: Request) -> Response:
        began = time.perf_counter()
        operations: list[dict[str, Any]] = []  # name and document hash of each, for the log
        with counting_calls() as calls:
            with tracing.span(
                "graphql request", **{"bma.request_id": request_id_of(request.scope)}
            ):
                response = await self._answer(request, operations)
        elapsed_ms = (time.perf_counter() - began) * 1000
        response.headers["server-timing"] = f"app;dur={elapsed_ms:.2f}"
        log_request(_request_line(request, response, elapsed_ms, operations, dict(calls)))
        return response

    async def _answer(self, request: Request, operations: list[dict[str, Any]]) -> Response:
        try:
            if request.method == "GET" and self.graphiql and _wants_html(request):
                return graphiql_response()
            limits = self.executor.limits.of(authenticated(request.scope).kind)
            if request.method == "GET":
                return await self._single(request, _from_query_params(request, limits), operations)
            return await self._post(request, limits, operations)
        except errors.GatewayError as refusal:
            return refusal.response()
        except Exception:  # a bug: answer with a reference, keep the stack in the log
            bug = errors.InternalError()
            log.exception("internal error %s", bug.reference)
            return bug.response()

    async def _post(
        self, request: Request, limits: OperationLimits, operations: list[dict[str, Any]]
    ) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in MEDIA_TYPES:
            raise errors.UnsupportedMediaType()
        max_body = limits.body_bytes(self.max_body_bytes)
        payload = _json(await _body(request, max_body), limits)
        if isinstance(payload, list):
            return await self._batch(request, payload, limits.batch(self.max_batch), operations)
        return await self._single(request, payload, operations)

    async def _single(
        self, request: Request, payload: Any, operations: list[dict[str, Any]]
    ) -> Response:
        outcome = await self._run(request, payload, operations)
        if outcome.encoded is None:
            return errors.json_response(outcome.body, outcome.status)
        response = Response(outcome.encoded, status_code=outcome.status, media_type=errors.JSON)
        response.headers["x-cache"] = outcome.cache or "miss"
        return response

    async def _batch(
        self,
        request: Request,
        payloads: list[Any],
        max_batch: int,
        operations: list[dict[str, Any]],
    ) -> Response:
        if not payloads:
            raise errors.BadRequest("a batch needs at least one operation")
        if len(payloads) > max_batch:  # before any operation is parsed
            raise errors.BatchTooLarge(max_batch, len(payloads))
        answers = [await self._batch_item(request, p, operations) for p in payloads]
        return errors.json_response(answers)

    async def _batch_item(
        self, request: Request, payload: Any, operations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """One operation's answer; a malformed item is its own error, not the batch's."""
        try:
            outcome = await self._run(request, payload, operations)
        except errors.GatewayError as refusal:
            return {"errors": [refusal.entry()]}
        if outcome.encoded is not None and outcome.cache == "hit":
            answer: dict[str, Any] = orjson.loads(outcome.encoded)
            return answer
        return outcome.body

    async def _run(
        self, request: Request, payload: Any, operations: list[dict[str, Any]]
    ) -> Outcome:
        operation = _operation(payload)
        client = request.client.host if request.client else None
        caller = Caller(authenticated(request.scope), request_id_of(request.scope), client)
        outcome = await self.executor.run(operation, caller)
        # A document that did not parse has no hash from the executor: hash it for the log.
        digest = outcome.document_hash or hashlib.sha256(operation.query.encode()).hexdigest()
        operations.append({"name": operation.name, "document": digest})
        return outcome


def _request_line(
    request: Request,
    response: Response,
    elapsed_ms: float,
    operations: list[dict[str, Any]],
    upstream_calls: dict[str, int],
) -> dict[str, Any]:
    """The request's log line: who, what, how it went — no credential, variable or data."""
    principal = principal_of(request.scope)
    return {
        "request_id": request_id_of(request.scope),
        "method": request.method,
        "status": response.status_code,
        "duration_ms": round(elapsed_ms, 2),
        "principal": principal.kind if principal else "unauthenticated",
        "subject": principal.subject if principal else None,
        "operations": operations,
        "cache": response.headers.get("x-cache"),
        "upstream_calls": upstream_calls,
    }


def _operation(payload: Any) -> Operation:
    if not isinstance(payload, dict):
        raise errors.BadRequest("the body must be a JSON object with `query`")
    query = payload.get("query")
    # A document may be named by hash instead of sent (gateway.execution.trusted).
    reference = document_reference(payload.get("documentId"), payload.get("extensions"))
    if reference is not None and query is None:
        query = ""
    elif not isinstance(query, str) or not query.strip():
        raise errors.BadRequest("`query` must be a non-empty string")
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise errors.BadRequest("`variables` must be a JSON object")
    name = payload.get("operationName")
    if name is not None and not isinstance(name, str):
        raise errors.BadRequest("`operationName` must be a string")
    return Operation(query, variables, name, reference)


def _from_query_params(request: Request, limits: OperationLimits) -> dict[str, Any]:
    params = request.query_params
    payload: dict[str, Any] = {"query": params.get("query")}
    if "variables" in params:
        payload["variables"] = _json(params["variables"].encode(), limits)
    if "operationName" in params:
        payload["operationName"] = params["operationName"]
    if "documentId" in params:
        payload["documentId"] = params["documentId"]
    if "extensions" in params:
        payload["extensions"] = _json(params["extensions"].encode(), limits)
    return payload


def _json(raw: bytes, limits: OperationLimits) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        if not _nested_too_deep(raw):
            raise errors.BadRequest("the body is not valid JSON") from None
    # orjson refuses JSON nested over 1,024 deep. Only variables (and extensions) can nest
    # in a GraphQL request: that is the limit hit, far beyond the executor's own.
    limit = limits.max_variable_depth
    raise errors.VariablesTooDeep(
        f"the JSON nests more than {ORJSON_DEPTH} levels deep; variables may nest {limit} levels",
        limit,
    )


ORJSON_DEPTH = 1024  # orjson's documented limit on the nesting of arrays and objects


def _nested_too_deep(raw: bytes) -> bool:
    """Whether JSON that orjson refused nests past orjson's limit: counted here, outside
    strings, rather than read from the wording of orjson's error."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
            if deepest > ORJSON_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise errors.PayloadTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _wants_html(request: Request) -> bool:
    """A browser opening the page: it accepts HTML and names no JSON type. A browser's link
    with a ``query`` (the catalogue's "try it in GraphiQL") opens GraphiQL with it in the
    editor; a client asking for JSON gets the query's answer, with or without text/html."""
    accept = request.headers.get("accept", "")
    if "text/html" not in accept:
        return False
    return "query" not in request.query_params or not any(t in accept for t in MEDIA_TYPES)
