"""Rate limiting by principal: the middleware, and whose bucket a request takes from.

A request to ``/graphql``, for the caller's schema (``/graphql/schema.graphql``) or for a
bulk download (``/download/…``) takes one token from its caller's bucket (``buckets``); a caller
whose bucket is empty is answered 429 ``RATE_LIMITED`` with ``Retry-After``. Every limited
response, allowed or not, carries ``RateLimit-Limit``, ``RateLimit-Remaining``,
``RateLimit-Reset`` and ``RateLimit-Policy`` (draft-ietf-httpapi-ratelimit-headers). Health
endpoints and everything else are never limited.

Buckets are keyed by who is asking, never by what an unverified credential claims:

* an API key: ``key:<key id>``
* a JWT: ``sub:<issuer>:<subject>``
* anonymous callers: ``ip:<client address>`` (an IPv6 client by its /64, which one host
  usually holds whole)
* a credential that proves nothing (the 401s) or cannot be checked now (the 503s): the
  client address's bucket with the anonymous limits, so guessing keys or forging tokens is
  throttled like anonymous traffic and cannot drain the bucket of the principal it names.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth.middleware import principal_of
from gateway.errors import RateLimited
from gateway.observability import metrics
from gateway.ratelimit.buckets import Buckets, Take
from gateway.ratelimit.config import RateLimits
from policies.principal import Principal

log = logging.getLogger("bma.gateway.rate_limit")


def bucket_key(principal: Principal | None, client: str | None) -> str:
    """Whose bucket a request takes from; ``principal`` None: a refused credential."""
    if principal is not None and principal.kind == "app" and principal.credential_id:
        return f"key:{principal.credential_id}"
    if principal is not None and principal.kind in ("partner", "agency"):
        return f"sub:{principal.issuer or ''}:{principal.subject}"
    return f"ip:{client_address(client)}"


@functools.lru_cache(maxsize=4096)  # parsed once per address, not on every request
def client_address(host: str | None) -> str:
    """The address a bucket is kept for: IPv6 by its /64, IPv4 (mapped too) as is."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimitMiddleware:
    """ASGI middleware limiting ``paths`` (``/graphql``, ``/graphql/schema.graphql``, and
    every path under ``/download/``: a path ending in ``/`` is a prefix); other paths pass
    untouched.

    It reads the principal authentication left on the request (``gateway.auth.middleware``);
    a refused credential is not answered here but passed on (to its 401) after a take from
    the client address's bucket. The buckets are closed at shutdown.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: RateLimits,
        buckets: Buckets,
        paths: Iterable[str] = ("/graphql", "/graphql/schema.graphql", "/download/"),
    ) -> None:
        self.app = app
        self.limits = limits
        self.buckets = buckets
        self.paths = frozenset(p for p in paths if not p.endswith("/"))
        self.prefixes = tuple(p for p in paths if p.endswith("/"))

    def _limited(self, path: str) -> bool:
        return path in self.paths or path.startswith(self.prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing_on_shutdown(send))
            return
        if scope["type"] != "http" or not self._limited(_route_path(scope)):
            await self.app(scope, receive, send)
            return
        principal = principal_of(scope)
        audience = principal.kind if principal else "anonymous"
        limit = self.limits.of(audience)
        if limit is None:  # unlimited
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        take = await self.buckets.take(bucket_key(principal, client[0] if client else None), limit)
        if not take.allowed:
            metrics.rate_limited.labels(audience).inc()
            await too_many_requests(take).response()(scope, receive, send)
            return
        extra = [(name.encode(), value.encode()) for name, value in take.headers().items()]
        names = {name for name, _ in extra}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Set (any the route gave replaced) in one pass over the encoded pairs.
                headers = [h for h in message.get("headers", ()) if h[0] not in names]
                headers.extend(extra)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _closing_on_shutdown(self, send: Send) -> Send:
        async def on_shutdown(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                try:
                    await self.buckets.aclose()
                except Exception as exc:  # closing must not turn a clean stop into a failure
                    log.warning("rate limits: closing the buckets failed: %s", exc)
            await send(message)

        return on_shutdown


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def too_many_requests(take: Take) -> RateLimited:
    seconds = take.retry_after_seconds
    limit = take.limit
    return RateLimited(
        f"rate limit exceeded ({limit.burst} requests, then {limit.rate:g} a second): "
        f"retry after {seconds} s",
        seconds,
        take.headers(),
    )
