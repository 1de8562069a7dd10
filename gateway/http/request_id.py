"""Every request gets an id, and every response says it (``X-Request-Id``) and how long the
gateway took to begin answering (``Server-Timing: app;dur=<ms>``, unless the route measured
its own, as ``/graphql`` does) — refusals (404, 405, 429 …) too.

The caller's own ``X-Request-Id`` is kept when it is a sane token (it goes into the logs and
the audit record), else a new one is made. The id is on the request's scope for whatever
comes after (``request_id_of``). A bug anywhere after this answers 500 ``INTERNAL_ERROR``
with a reference here, with its id, before any other error handler would.
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import InternalError

log = logging.getLogger("bma.gateway")

MAX_REQUEST_ID = 64
REQUEST_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:")
_REQUEST_ID = "bma.request_id"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = scope[_REQUEST_ID] = _request_id(Headers(scope=scope).get("x-request-id"))
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                if "server-timing" not in headers:
                    elapsed_ms = (time.perf_counter() - began) * 1000
                    headers["server-timing"] = f"app;dur={elapsed_ms:.2f}"
            await send(message)

        started = False

        async def send_and_note(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_with_id(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception:
            if started:  # too late for an answer of our own
                raise
            # A bug: answered here, with the id and a reference (never a stack trace).
            bug = InternalError()
            log.exception("internal error %s", bug.reference)
            await bug.response()(scope, receive, send_with_id)


def request_id_of(scope: Scope) -> str:
    request_id: str = scope[_REQUEST_ID]
    return request_id


def _request_id(given: str | None) -> str:
    if given and len(given) <= MAX_REQUEST_ID and all(c in REQUEST_ID_CHARS for c in given):
        return given
    return uuid.uuid4().hex
