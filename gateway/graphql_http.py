"""GraphQL over HTTP: reading requests (POST JSON, GET, batches), GraphiQL, answering JSON.

A request that cannot be an operation — a body over the size limit, malformed JSON, a
missing ``query`` — is answered here with a 4xx and a stable ``extensions.code``; it never
reaches execution. Neither does a request whose credentials the context factory refuses:
that is a 401 with a ``WWW-Authenticate`` challenge naming the reason.

The caller is authenticated before the body is read: the body size and the batch size are
limits of its audience (``gateway.limits``). A batch over the limit is refused before any
of its operations is parsed. Every answer carries ``Server-Timing: app;dur=<ms>``, the
time from the request reaching this handler to its response being ready.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.http.ides import get_graphql_ide_html

from connectors.base import request_upstream_calls
from gateway import tracing
from gateway.auth import AuthError, AuthUnavailable
from gateway.execution import Executor, Outcome
from gateway.limits import VARIABLE_DEPTH, VARIABLES_TOO_DEEP, OperationLimits
from gateway.logs import log_request
from policies.principal import Principal

log = logging.getLogger("bma.gateway")

JSON = "application/json"
MAX_REQUEST_ID = 64
REQUEST_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:")


class RequestRejected(Exception):
    def __init__(
        self, status: int, code: str, message: str, extensions: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extensions = extensions or {}


class GraphQLHTTP:
    def __init__(
        self,
        executor: Executor,
        # Called once per operation; may raise AuthError (401) or AuthUnavailable (503).
        make_context: Callable[[Request], Awaitable[Any]],
        *,
        max_body_bytes: int,
        max_batch: int,
        graphiql: bool,
        # Who is calling, before the body is read (the same principal make_context uses);
        # None: every caller gets the gateway-wide body and batch limits.
        principal_for: Callable[[Request], Awaitable[Principal]] | None = None,
    ) -> None:
        self.executor = executor
        self.make_context = make_context
        self.principal_for = principal_for
        self.max_body_bytes = max_body_bytes
        self.max_batch = max_batch
        self.graphiql = graphiql

    async def handle(self, request: Request) -> Response:
        began = time.perf_counter()
        request_id = _request_id(request)
        request.state.request_id = request_id
        request.state.operations = []
        calls: Counter[str] = Counter()  # upstream calls, by source, for the request's log line
        token = request_upstream_calls.set(calls)
        try:
            with tracing.span("graphql request", **{"bma.request_id": request_id}):
                response = await self._answer(request)
        finally:
            request_upstream_calls.reset(token)
        request.state.upstream_calls = dict(calls)
        elapsed_ms = (time.perf_counter() - began) * 1000
        response.headers["x-request-id"] = request_id
        response.headers["server-timing"] = f"app;dur={elapsed_ms:.2f}"
        log_request(_request_line(request, response, elapsed_ms))
        return response

    async def _limits(self, request: Request) -> OperationLimits | None:
        if self.principal_for is None:
            return None
        principal = await self.principal_for(request)
        return self.executor.limits.of(principal.kind)

    async def _answer(self, request: Request) -> Response:
        try:
            if request.method == "GET":
                if self.graphiql and _wants_html(request):
                    return HTMLResponse(get_graphql_ide_html(graphql_ide="graphiql"))
                limits = await self._limits(request)
                return await self._single(request, _from_query_params(request, limits))
            return await self._post(request)
        except RequestRejected as exc:
            return _reject(exc.status, exc.code, exc.message, exc.extensions)
        except AuthError as exc:
            return _unauthenticated(exc)
        except AuthUnavailable as exc:
            response = _reject(503, "AUTHENTICATION_UNAVAILABLE", str(exc))
            response.headers["retry-after"] = "5"
            return response
        except Exception:  # a bug: answer with a reference, keep the stack in the log
            reference = uuid.uuid4().hex[:12]
            log.exception("internal error %s", reference)
            return _reject(500, "INTERNAL_ERROR", f"internal error (reference {reference})")

    async def _post(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (JSON, "application/graphql-response+json"):
            raise RequestRejected(
                415, "UNSUPPORTED_MEDIA_TYPE", "send the operation as application/json"
            )
        limits = await self._limits(request)  # authenticated before the body is read
        max_body = limits.body_bytes(self.max_body_bytes) if limits else self.max_body_bytes
        payload = _json(await self._read_body(request, max_body), limits)
        if isinstance(payload, list):
            max_batch = limits.batch(self.max_batch) if limits else self.max_batch
            return await self._batch(request, payload, max_batch)
        return await self._single(request, payload)

    async def _single(self, request: Request, payload: Any) -> Response:
        outcome = await self._run(request, payload)
        if outcome.encoded is None:
            return _respond(outcome.body, outcome.status)
        response = Response(outcome.encoded, status_code=outcome.status, media_type=JSON)
        response.headers["x-cache"] = outcome.cache or "miss"
        return response

    async def _batch(self, request: Request, payloads: list[Any], max_batch: int) -> Response:
        if not payloads:
            raise RequestRejected(400, "BAD_REQUEST", "a batch needs at least one operation")
        if len(payloads) > max_batch:  # before any operation is parsed
            raise RequestRejected(
                400,
                "BATCH_TOO_LARGE",
                f"a batch holds at most {max_batch} operations",
                {"limit": max_batch, "actual": len(payloads)},
            )
        return _respond([await self._batch_item(request, p) for p in payloads], 200)

    async def _batch_item(self, request: Request, payload: Any) -> dict[str, Any]:
        """One operation's answer; a malformed item is its own error, not the batch's."""
        try:
            outcome = await self._run(request, payload)
        except RequestRejected as exc:
            return _error_body(exc.code, exc.message, exc.extensions)
        return orjson.loads(outcome.encoded) if outcome.cache == "hit" else outcome.body

    async def _run(self, request: Request, payload: Any) -> Outcome:
        query, variables, operation_name = _operation(payload)
        context = await self.make_context(request)
        outcome = await self.executor.run(query, variables, operation_name, context)
        # A document that did not parse has no hash from the executor: hash it for the log.
        digest = outcome.document_hash or hashlib.sha256(query.encode()).hexdigest()
        request.state.operations.append({"name": operation_name, "document": digest})
        return outcome

    async def _read_body(self, request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)


def _request_line(request: Request, response: Response, elapsed_ms: float) -> dict[str, Any]:
    """The request's log line: who, what, how it went — no credential, variable or data."""
    principal = getattr(request.state, "principal", None)
    return {
        "request_id": request.state.request_id,
        "method": request.method,
        "status": response.status_code,
        "duration_ms": round(elapsed_ms, 2),
        "principal": principal.kind if principal else "unauthenticated",
        "subject": principal.subject if principal else None,
        "operations": request.state.operations,
        "cache": response.headers.get("x-cache"),
        "upstream_calls": request.state.upstream_calls,
    }


def _request_id(request: Request) -> str:
    """The caller's X-Request-Id when it is a sane token (it goes into logs and the audit
    record), else a new one."""
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= MAX_REQUEST_ID and all(c in REQUEST_ID_CHARS for c in given):
        return given
    return uuid.uuid4().hex


def _operation(payload: Any) -> tuple[str, dict[str, Any] | None, str | None]:
    if not isinstance(payload, dict):
        raise RequestRejected(400, "BAD_REQUEST", "the body must be a JSON object with `query`")
    query = payload.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RequestRejected(400, "BAD_REQUEST", "`query` must be a non-empty string")
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise RequestRejected(400, "BAD_REQUEST", "`variables` must be a JSON object")
    operation_name = payload.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestRejected(400, "BAD_REQUEST", "`operationName` must be a string")
    return query, variables, operation_name


def _from_query_params(request: Request, limits: OperationLimits | None) -> dict[str, Any]:
    params = request.query_params
    payload: dict[str, Any] = {"query": params.get("query")}
    if "variables" in params:
        payload["variables"] = _json(params["variables"].encode(), limits)
    if "operationName" in params:
        payload["operationName"] = params["operationName"]
    return payload


def _json(raw: bytes, limits: OperationLimits | None = None) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "limit exceeded" not in str(exc):
            raise RequestRejected(400, "BAD_REQUEST", "the body is not valid JSON") from None
    # orjson refuses JSON nested over 1,024 deep. Only variables (and extensions) can nest
    # in a GraphQL request: that is the limit hit, far beyond the executor's own.
    limit = limits.max_variable_depth if limits else VARIABLE_DEPTH
    raise RequestRejected(
        400,
        VARIABLES_TOO_DEEP,
        f"the JSON nests more than 1024 levels deep; variables may nest {limit} levels",
        {"limit": limit},
    )


def _wants_html(request: Request) -> bool:
    return "query" not in request.query_params and "text/html" in request.headers.get("accept", "")


def _too_large(limit: int) -> RequestRejected:
    return RequestRejected(
        413, "PAYLOAD_TOO_LARGE", f"the body is over {limit} bytes", {"limit": limit}
    )


def _error_body(
    code: str, message: str, extensions: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code, **(extensions or {})}}]}


def _reject(
    status: int, code: str, message: str, extensions: dict[str, Any] | None = None
) -> Response:
    return _respond(_error_body(code, message, extensions), status)


def _unauthenticated(error: AuthError) -> Response:
    body = {
        "errors": [
            {
                "message": error.message,
                "extensions": {"code": "UNAUTHENTICATED", "reason": error.reason},
            }
        ]
    }
    response = _respond(body, 401)
    response.headers["www-authenticate"] = error.www_authenticate
    return response


def _respond(body: Any, status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)
