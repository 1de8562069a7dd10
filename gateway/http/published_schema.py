"""``GET /graphql/schema.graphql``: the caller's own schema as SDL, for code generators
(graphql-codegen, ariadne-codegen, gql's DSL) and clients that validate before they send.

The caller is whoever its credentials prove (``gateway.auth``), so each one gets the schema
its introspection would give it (``gateway.execution.sdl``): an anonymous caller never
learns the names of restricted fields, and an agency's client can check an operation
against what the agency may read. The path is rate-limited like ``/graphql``; an audience
whose introspection is off (``BMA_OPERATION_LIMITS``) is refused here too. The SDL is served
as ``text/plain`` or, when the client asks for it, ``application/graphql``; an ``Accept``
that names neither is disregarded (RFC 9110 allows it), since tools that fetch a schema
often send the ``Accept`` of their GraphQL requests, and the answer is ``text/plain``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from gateway import errors
from gateway.auth.middleware import authenticated
from gateway.execution.executor import Executor
from gateway.execution.sdl import schema_sdl
from gateway.http.media_types import negotiate

PATH = "/graphql/schema.graphql"
SDL_TYPES = ("text/plain", "application/graphql")  # text/plain for */* (a browser shows it)
# The answer depends on who asks and what it accepts.
VARY = "Accept, Authorization, X-API-Key"


def endpoint(executor: Executor) -> Callable[[Request], Awaitable[Response]]:
    async def published_schema(request: Request) -> Response:
        began = time.perf_counter()
        try:
            media_type = negotiate(request.headers.get("accept"), SDL_TYPES) or SDL_TYPES[0]
            principal = authenticated(request.scope)
            if not executor.limits.of(principal.kind).introspection:
                raise errors.IntrospectionDisabled(
                    "introspection, and so the published schema, is off for this audience"
                )
            sdl = schema_sdl(executor.visible_to(principal))
        except errors.GatewayError as refusal:
            response = refusal.response()
        else:
            response = Response(sdl, headers={"content-type": f"{media_type}; charset=utf-8"})
        response.headers["vary"] = VARY
        response.headers["server-timing"] = f"app;dur={(time.perf_counter() - began) * 1000:.2f}"
        return response

    return published_schema
