"""Every request gets an id, and every response says it (``X-Request-Id``), and how long it
took (``Server-Timing``, unless the route said so itself).

The caller's own ``X-Request-Id`` is kept when it is a sane token (it goes into the logs and
the audit record), else a new one is made. The id is on the request's scope for whatever
comes after (``request_id_of``). A bug anywhere after this answers 500 ``INTERNAL_ERROR``
with a reference here, with its id, before any other error handler would.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import InternalError

log = logging.getLogger("bma.gateway")

MAX_REQUEST_ID = 64
REQUEST_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:")
_REQUEST_ID = "bma.request_id"
_HEADER = b"x-request-id"
_TIMING = b"server-timing"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = scope[_REQUEST_ID] = _request_id(_given(scope))
        header = (_HEADER, request_id.encode())
        began = time.perf_counter()
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [h for h in message.get("headers", ()) if h[0] != _HEADER]
                headers.append(header)
                if not any(name == _TIMING for name, _ in headers):  # a 405, a 429 …
                    elapsed_ms = (time.perf_counter() - began) * 1000
                    headers.append((_TIMING, b"app;dur=%.2f" % elapsed_ms))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
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


def _given(scope: Scope) -> str | None:
    """The caller's X-Request-Id (the first, as ``Headers.get`` reads it); ASGI servers
    give header names in lower case."""
    for name, value in scope["headers"]:
        if name == _HEADER:
            return str(value.decode("latin-1"))
    return None


def _request_id(given: str | None) -> str:
    if given and len(given) <= MAX_REQUEST_ID and all(c in REQUEST_ID_CHARS for c in given):
        return given
    return _random_id()


class _RandomIds(threading.local):
    """128 random bits as 32 hex digits (as ``uuid4().hex`` gave), read from the system's
    random source 256 ids at a time: one system call per request, and a UUID object, were a
    tenth of a cached answer's time. Per thread: each event loop (test servers run several
    in one process) draws its own."""

    hex = ""
    at = 0


_IDS = _RandomIds()
_BATCH = 256


def _random_id() -> str:
    ids = _IDS
    if ids.at >= len(ids.hex):
        ids.hex = os.urandom(16 * _BATCH).hex()
        ids.at = 0
    at = ids.at
    ids.at = at + 32
    return ids.hex[at : at + 32]
