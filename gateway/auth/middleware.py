"""Authentication as one step of the request: the principal resolved once, read by the rest.

``AuthenticationMiddleware`` asks the authenticator once per HTTP request and leaves the
answer on the request's scope: the ``Principal``, or the refusal (``Unauthenticated`` 401,
``AuthenticationUnavailable`` 503). Nothing after it authenticates again: the rate limiter
reads the principal (a refused credential is throttled by the client's address), the
GraphQL handler answers the refusal or runs the operations as the principal, and the audit
record and the request's log line name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.auth.authenticator import CREDENTIAL_HEADERS
from gateway.errors import AuthenticationUnavailable, Unauthenticated
from policies.principal import Principal

_PRINCIPAL = "bma.principal"
_REFUSAL = "bma.authentication_refused"

Refusal = Unauthenticated | AuthenticationUnavailable
_CREDENTIALS = frozenset(name.encode() for name in CREDENTIAL_HEADERS)


class Authenticating(Protocol):
    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The principal the credential headers (``CREDENTIAL_HEADERS``) prove."""
        ...


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp, *, authenticator: Authenticating) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # The credential headers only (ASGI names are lower case): the others are not
            # decoded for nothing on every request.
            presented = Headers(raw=[h for h in scope["headers"] if h[0] in _CREDENTIALS])
            try:
                scope[_PRINCIPAL] = await self.authenticator.authenticate(presented)
            except (Unauthenticated, AuthenticationUnavailable) as refusal:
                scope[_REFUSAL] = refusal
        await self.app(scope, receive, send)


def principal_of(scope: Scope) -> Principal | None:
    """The request's principal; None when its credential was refused."""
    principal: Principal | None = scope.get(_PRINCIPAL)
    return principal


def authenticated(scope: Scope) -> Principal:
    """The request's principal; raises the refusal when its credential proved nothing."""
    principal: Principal | None = scope.get(_PRINCIPAL)
    if principal is not None:
        return principal
    refusal: Refusal | None = scope.get(_REFUSAL)
    if refusal is None:
        raise RuntimeError("the request did not pass through AuthenticationMiddleware")
    raise refusal
