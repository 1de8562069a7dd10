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

Answers are encoded in the media type the client's ``Accept`` asks for,
``application/graphql-response+json`` or ``application/json``, with that type's status
codes (``gateway.http.media_types``); an ``Accept`` that takes neither is answered 406.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import request_response
from starlette.types import Message, Receive, Scope, Send

from gateway import errors
from gateway.audit.trail import Caller
from gateway.auth.middleware import authenticated, principal_of
from gateway.execution.executor import Executor, Operation
from gateway.execution.outcome import Outcome
from gateway.execution.trusted import document_reference
from gateway.http.graphiql import graphiql_response
from gateway.http.media_types import GRAPHQL_RESPONSE, LEGACY, Answer, graphql_answer
from gateway.http.request_id import request_id_of
from gateway.limits.config import OperationLimits
from gateway.observability import tracing
from gateway.observability.logs import REQUEST_LOG, log_request
from gateway.observability.upstream import counting_calls

log = logging.getLogger("bma.gateway")

MEDIA_TYPES = (errors.JSON, GRAPHQL_RESPONSE)
X_CACHE_HIT = (b"x-cache", b"hit")
X_CACHE_MISS = (b"x-cache", b"miss")
VARY_ACCEPT = (b"vary", b"accept")


class GraphQLHTTP:
    """``/graphql``, an ASGI app: a POST whose answer is in the response cache goes the thin
    way (``_from_cache``), every other request through ``handle`` as a Starlette endpoint."""

    def __init__(
        self, executor: Executor, *, max_body_bytes: int, max_batch: int, graphiql: bool
    ) -> None:
        self.executor = executor
        self.max_body_bytes = max_body_bytes
        self.max_batch = max_batch
        self.graphiql = graphiql
        self._endpoint = request_response(self.handle)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST" and self.executor.responses.enabled:
            read = await self._from_cache(scope, receive, send)
            if read is None:  # answered
                return
            if read:  # the body's messages, read for nothing: given again to the endpoint
                receive = _replaying(read, receive)
        await self._endpoint(scope, receive, send)

    async def _from_cache(self, scope: Scope, receive: Receive, send: Send) -> list[Message] | None:
        """A POST of one operation answered from the response cache as a hand-written
        endpoint answers saved bytes: the body read, the operation looked up, the bytes
        sent. It keeps what ``handle`` does on such a hit — media type and body limits, the
        answer's headers, the metrics (``Executor.cached``), the span and the log line —
        and returns None; or, when anything is not so (a refused credential, no
        Content-Length, a batch, a body ``handle`` would refuse, an operation not known to
        be open or not stored), the messages it read, for ``handle`` to answer."""
        began = time.perf_counter()
        principal = principal_of(scope)
        if principal is None:
            return []
        limits = self.executor.limits.of(principal.kind)
        content_type = declared = accept = None
        for name, value in scope["headers"]:
            if name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
            elif name == b"content-length" and declared is None:
                declared = value
            elif name == b"accept" and accept is None:
                accept = value.decode("latin-1")
        try:
            answer = graphql_answer(accept)
        except errors.NotAcceptable:
            return []
        if content_type is None or _media_type(content_type) not in MEDIA_TYPES:
            return []
        if not declared or not declared.isdigit():
            return []
        if int(declared) > limits.body_bytes(self.max_body_bytes):
            return []
        messages = await _messages(receive)
        if messages[-1]["type"] != "http.request":  # disconnected: handle says what then
            return messages
        try:
            operation = _operation(orjson.loads(_body_of(messages)))
        except (orjson.JSONDecodeError, errors.GatewayError):
            return messages
        client = scope.get("client")
        caller = Caller(principal, request_id_of(scope), client[0] if client else None)
        with tracing.span("graphql request", **{"bma.request_id": caller.request_id}):
            outcome = await self.executor.cached(operation, caller)
        if outcome is None or outcome.encoded is None:
            return messages
        encoded = outcome.encoded
        elapsed_ms = (time.perf_counter() - began) * 1000
        # The headers Response and handle give the same answer, in the same order.
        headers = [
            (b"content-length", b"%d" % len(encoded)),
            (b"content-type", answer.content_type.encode()),
            X_CACHE_HIT,
            (b"server-timing", b"app;dur=%.2f" % elapsed_ms),
            VARY_ACCEPT,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": encoded})
        if REQUEST_LOG.isEnabledFor(logging.INFO):
            entry = {"name": operation.name, "document": outcome.document_hash}
            log_request(_request_line(scope, 200, "hit", elapsed_ms, [entry], {}))
        return None

    async def handle(self, request: Request) -> Response:
        began = time.perf_counter()
        operations: list[dict[str, Any]] = []  # name and document hash of each, for the log
        with counting_calls() as calls:
            with tracing.span(
                "graphql request", **{"bma.request_id": request_id_of(request.scope)}
            ):
                response = await self._answer(request, operations)
        elapsed_ms = (time.perf_counter() - began) * 1000
        # Appended, not set: nothing before this names the header (no lookup per answer).
        response.raw_headers.append((b"server-timing", b"app;dur=%.2f" % elapsed_ms))
        response.headers.add_vary_header("accept")
        if REQUEST_LOG.isEnabledFor(logging.INFO):  # the line is built only to be written
            line = _request_line(
                request.scope,
                response.status_code,
                _x_cache(response),
                elapsed_ms,
                operations,
                dict(calls),
            )
            log_request(line)
        return response

    async def _answer(self, request: Request, operations: list[dict[str, Any]]) -> Response:
        answer = LEGACY  # until Accept is read: a 406 is answered in plain JSON
        try:
            if request.method == "GET" and self.graphiql and _wants_html(request):
                return graphiql_response()
            answer = graphql_answer(request.headers.get("accept"))
            limits = self.executor.limits.of(authenticated(request.scope).kind)
            if request.method == "GET":
                payload = _from_query_params(request, limits)
                return await self._single(request, payload, operations, answer)
            return await self._post(request, limits, operations, answer)
        except errors.GatewayError as refusal:
            return answer.refusal(refusal)
        except Exception:  # a bug: answer with a reference, keep the stack in the log
            bug = errors.InternalError()
            log.exception("internal error %s", bug.reference)
            return answer.refusal(bug)

    async def _post(
        self,
        request: Request,
        limits: OperationLimits,
        operations: list[dict[str, Any]],
        answer: Answer,
    ) -> Response:
        if _media_type(request.headers.get("content-type", "")) not in MEDIA_TYPES:
            raise errors.UnsupportedMediaType()
        max_body = limits.body_bytes(self.max_body_bytes)
        payload = _json(await _body(request, max_body), limits)
        if isinstance(payload, list):
            max_batch = limits.batch(self.max_batch)
            return await self._batch(request, payload, max_batch, operations, answer)
        return await self._single(request, payload, operations, answer)

    async def _single(
        self, request: Request, payload: Any, operations: list[dict[str, Any]], answer: Answer
    ) -> Response:
        outcome = await self._run(request, payload, operations)
        status = answer.status(outcome.status)
        if outcome.encoded is None:
            return answer.response(outcome.body, status)
        response = answer.response(outcome.encoded, status)
        response.raw_headers.append(X_CACHE_HIT if outcome.cache == "hit" else X_CACHE_MISS)
        return response

    async def _batch(
        self,
        request: Request,
        payloads: list[Any],
        max_batch: int,
        operations: list[dict[str, Any]],
        answer: Answer,
    ) -> Response:
        if not payloads:
            raise errors.BadRequest("a batch needs at least one operation")
        if len(payloads) > max_batch:  # before any operation is parsed
            raise errors.BatchTooLarge(max_batch, len(payloads))
        answers = [await self._batch_item(request, p, operations) for p in payloads]
        return answer.response(answers)

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
    scope: Scope,
    status: int,
    cache: str | None,
    elapsed_ms: float,
    operations: list[dict[str, Any]],
    upstream_calls: dict[str, int],
) -> dict[str, Any]:
    """The request's log line: who, what, how it went — no credential, variable or data."""
    principal = principal_of(scope)
    return {
        "request_id": request_id_of(scope),
        "method": scope["method"],
        "status": status,
        "duration_ms": round(elapsed_ms, 2),
        "principal": principal.kind if principal else "unauthenticated",
        "subject": principal.subject if principal else None,
        "operations": operations,
        "cache": cache,
        "upstream_calls": upstream_calls,
    }


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


async def _messages(receive: Receive) -> list[Message]:
    """The request's body messages, up to the last one (or a disconnect)."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _body_of(messages: list[Message]) -> bytes:
    if len(messages) == 1:
        body: bytes = messages[0].get("body", b"")
        return body
    return b"".join(m.get("body", b"") for m in messages)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` as if nothing had been read: ``messages`` first, in order."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _x_cache(response: Response) -> str | None:
    for name, value in response.raw_headers:
        if name == b"x-cache":
            return value.decode()
    return None


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
    extensions = payload.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise errors.BadRequest("`extensions` must be a JSON object")
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
    # The ASGI messages read directly, as Request.stream() does, without its async
    # generator: one message is the whole body of almost every request.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _wants_html(request: Request) -> bool:
    """A browser opening the page: it accepts HTML and names no JSON type. A browser's link
    with a ``query`` (the catalogue's "try it in GraphiQL") opens GraphiQL with it in the
    editor; a client asking for JSON gets the query's answer, with or without text/html."""
    accept = request.headers.get("accept", "")
    if "text/html" not in accept:
        return False
    return "query" not in request.query_params or not any(t in accept for t in MEDIA_TYPES)
