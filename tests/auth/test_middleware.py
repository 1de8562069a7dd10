"""Authentication is one step of the request: asked once, its answer read by the rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.auth.middleware import AuthenticationMiddleware, authenticated, principal_of
from gateway.errors import AuthenticationUnavailable, Unauthenticated
from gateway.http.app import create_app
from policies.principal import ANONYMOUS, Level, Principal
from support import bearer, settings_for

OFFICER = Principal("agency", "officer-1", clearance=Level.CONFIDENTIAL)


class CountingAuthenticator:
    """Answers by the ``x-api-key`` header (whatever its value means) and counts every call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        self.calls.append(dict(headers))
        who = headers.get("x-api-key")
        if who == "officer":
            return OFFICER
        if who == "forger":
            raise Unauthenticated("invalid_signature", "the signature does not verify")
        if who == "unreachable":
            raise AuthenticationUnavailable("the key database is down")
        if who == "bug":
            raise RuntimeError("a bug in the authenticator")
        return ANONYMOUS


async def whoami(request: Request) -> Response:
    seen = principal_of(request.scope)
    try:
        principal = authenticated(request.scope)
    except (Unauthenticated, AuthenticationUnavailable) as refusal:
        return JSONResponse(
            {"principal_of": None, "refused": refusal.code}, status_code=refusal.status
        )
    assert seen is principal
    return JSONResponse({"principal_of": seen.subject, "kind": principal.kind})


async def batch(request: Request) -> Response:
    """Reads the principal once per operation of a batch, as the GraphQL handler does."""
    items = orjson.loads(await request.body())
    answers = [{"item": item, "subject": authenticated(request.scope).subject} for item in items]
    return JSONResponse(answers)


def tiny_app(authenticator: CountingAuthenticator) -> Starlette:
    return Starlette(
        routes=[Route("/whoami", whoami), Route("/batch", batch, methods=["POST"])],
        middleware=[Middleware(AuthenticationMiddleware, authenticator=authenticator)],
    )


def client_of(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


async def test_one_call_per_request_and_the_principal_is_read_by_the_route():
    authenticator = CountingAuthenticator()
    async with client_of(tiny_app(authenticator)) as client:
        response = await client.get(
            "/whoami", headers={"x-api-key": "officer", "x-purpose": "audit", "x-other": "1"}
        )
        assert response.status_code == 200
        assert response.json() == {"principal_of": "officer-1", "kind": "agency"}
        assert len(authenticator.calls) == 1
        # The request's own credential headers, and none of its other headers.
        assert authenticator.calls[0] == {"x-api-key": "officer", "x-purpose": "audit"}
        anonymous = await client.get("/whoami")
        assert anonymous.json() == {"principal_of": "anonymous", "kind": "anonymous"}
    assert len(authenticator.calls) == 2


async def test_one_call_for_a_batch():
    authenticator = CountingAuthenticator()
    async with client_of(tiny_app(authenticator)) as client:
        response = await client.post(
            "/batch", content=orjson.dumps(["a", "b", "c"]), headers={"x-api-key": "officer"}
        )
    assert response.status_code == 200
    assert [answer["subject"] for answer in response.json()] == ["officer-1"] * 3
    assert len(authenticator.calls) == 1


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [
        ("forger", 401, "UNAUTHENTICATED"),
        ("unreachable", 503, "AUTHENTICATION_UNAVAILABLE"),
    ],
)
async def test_a_refusal_is_kept_and_raised_by_authenticated(who, status, code):
    authenticator = CountingAuthenticator()
    async with client_of(tiny_app(authenticator)) as client:
        response = await client.get("/whoami", headers={"x-api-key": who})
    # The middleware does not answer the refusal itself: the route reads and raises it.
    assert response.status_code == status
    assert response.json() == {"principal_of": None, "refused": code}
    assert len(authenticator.calls) == 1


async def test_a_refusal_never_falls_back_to_anonymous():
    authenticator = CountingAuthenticator()
    async with client_of(tiny_app(authenticator)) as client:
        with pytest.raises(Unauthenticated) as raised:
            await client.post("/batch", content=b"[1]", headers={"x-api-key": "forger"})
    assert raised.value.reason == "invalid_signature"


async def test_an_authenticator_bug_is_not_taken_for_a_refusal():
    authenticator = CountingAuthenticator()
    async with client_of(tiny_app(authenticator)) as client:
        with pytest.raises(RuntimeError, match="a bug in the authenticator"):
            await client.get("/whoami", headers={"x-api-key": "bug"})


def test_principal_of_and_authenticated_on_a_scope():
    assert principal_of({"type": "http"}) is None
    with pytest.raises(RuntimeError, match="did not pass through AuthenticationMiddleware"):
        authenticated({"type": "http"})


async def test_scopes_written_by_the_middleware():
    authenticator = CountingAuthenticator()
    seen: list[dict[str, Any]] = []

    async def inner(scope, receive, send):
        seen.append(scope)

    middleware = AuthenticationMiddleware(inner, authenticator=authenticator)
    await middleware({"type": "http", "headers": [(b"x-api-key", b"officer")]}, None, None)
    await middleware({"type": "http", "headers": [(b"x-api-key", b"forger")]}, None, None)
    officer, forger = seen
    assert principal_of(officer) is OFFICER
    assert authenticated(officer) is OFFICER
    assert principal_of(forger) is None
    with pytest.raises(Unauthenticated) as raised:
        authenticated(forger)
    assert raised.value.reason == "invalid_signature"
    # The same refusal object, raised every time it is read.
    with pytest.raises(Unauthenticated) as again:
        authenticated(forger)
    assert again.value is raised.value


async def test_lifespan_and_websocket_scopes_are_not_authenticated():
    authenticator = CountingAuthenticator()
    seen: list[dict[str, Any]] = []

    async def inner(scope, receive, send):
        seen.append(scope)

    middleware = AuthenticationMiddleware(inner, authenticator=authenticator)
    await middleware({"type": "lifespan"}, None, None)
    await middleware({"type": "websocket", "headers": []}, None, None)
    assert authenticator.calls == []
    assert len(seen) == 2
    assert all(principal_of(scope) is None for scope in seen)


# ---------------------------------------------------------------------------- the gateway


async def test_the_assembled_gateway_authenticates_once_per_request(db, traffy_url, issuer):
    app = create_app(settings_for(db, traffy_url))
    authenticator = app.state.authenticator
    original = authenticator.authenticate
    calls: list[str | None] = []

    async def counting(headers: Mapping[str, str]) -> Principal:
        calls.append(headers.get("authorization"))
        return await original(headers)

    authenticator.authenticate = counting  # the middleware holds this very object
    token = issuer.issue("partner", "utility-partner", "tax:read", "internal")
    headers = bearer(token)
    async with app.router.lifespan_context(app), client_of(app) as client:
        single = await client.post(
            "/graphql", json={"query": '{ district(code: "1039") { code } }'}, headers=headers
        )
        assert single.status_code == 200, single.text
        assert single.json() == {"data": {"district": {"code": "1039"}}}
        assert calls == [f"Bearer {token}"]

        operations = [
            {"query": '{ district(code: "1001") { code } }'},
            {"query": "{ __typename }"},
            {"query": "query Q { districts { code } }", "operationName": "Q"},
        ]
        batched = await client.post("/graphql", json=operations, headers=headers)
        assert batched.status_code == 200, batched.text
        answers = batched.json()
        assert answers[0] == {"data": {"district": {"code": "1001"}}}
        assert answers[1] == {"data": {"__typename": "Query"}}
        assert len(answers[2]["data"]["districts"]) == 50
        assert len(calls) == 2

        health = await client.get("/healthz")
        assert health.status_code == 200
        assert calls == [f"Bearer {token}"] * 2 + [None]
