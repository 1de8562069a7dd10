"""The headers every answer carries, whatever route or middleware made it.

* ``X-Content-Type-Options: nosniff``: a browser takes each answer for its declared type,
  never a JSON error (which may echo a query) for HTML or script.
* ``Content-Security-Policy`` and ``X-Frame-Options``: nothing loads, runs or frames an
  answer (``default-src 'none'; frame-ancestors 'none'``), unless the route set a policy of
  its own (the GraphiQL page: ``gateway.http.graphiql``); no page is framed by another site.
* ``Cache-Control: no-store``: answers may carry restricted data (GraphQL), other callers'
  activity (``/metrics``) or the sources' state (``/readyz``), so no shared or browser cache
  keeps one — unless the route said itself what may be kept (the JWKS: public keys).
* ``Referrer-Policy: no-referrer``: a page's address (with a query) is not sent on.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"

DEFAULTS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": API_CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
}

# Encoded once: they go on every answer.
_DEFAULTS_RAW = tuple((name.encode(), value.encode()) for name, value in DEFAULTS.items())


class SecurityHeadersMiddleware:
    """Adds ``DEFAULTS`` to every HTTP answer, keeping a header the route set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message["headers"] = list(message.get("headers", ()))
                present = {name for name, _ in headers}
                headers.extend(pair for pair in _DEFAULTS_RAW if pair[0] not in present)
            await send(message)

        await self.app(scope, receive, send_with_headers)
