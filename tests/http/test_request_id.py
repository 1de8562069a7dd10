"""Every request gets an id, and every response says it."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.http.request_id import MAX_REQUEST_ID, RequestIdMiddleware, request_id_of

HEX_ID = re.compile(r"[0-9a-f]{32}")


async def echo(request: Request) -> Response:
    return JSONResponse({"id": request_id_of(request.scope)})


async def refuse(request: Request) -> Response:
    return JSONResponse({"error": "no"}, status_code=403)


async def boom(request: Request) -> Response:
    raise RuntimeError("a bug")


def app() -> Starlette:
    # Assembled as gateway/http/app.py assembles it: a middleware of the Starlette app.
    return Starlette(
        routes=[Route("/echo", echo), Route("/refuse", refuse), Route("/boom", boom)],
        middleware=[Middleware(RequestIdMiddleware)],
    )


def client(**transport: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app(), **transport), base_url="http://gateway"
    )


@pytest.mark.parametrize(
    "given",
    [
        "abc-123",
        "0af7651916cd43dd8448eb211c80319c",
        "trace.span:1_A",
        "x" * MAX_REQUEST_ID,
    ],
)
async def test_a_sane_caller_id_is_kept(given):
    async with client() as c:
        response = await c.get("/echo", headers={"x-request-id": given})
    assert response.headers["x-request-id"] == given
    assert response.json() == {"id": given}


@pytest.mark.parametrize(
    "given",
    [
        "x" * (MAX_REQUEST_ID + 1),  # too long
        "has space",
        "semi;colon",
        "new\\nline",
        "<script>",
        "ไทย",
        "",
    ],
)
async def test_an_unsafe_or_too_long_id_is_replaced(given):
    async with client() as c:
        response = await c.get("/echo", headers={"x-request-id": given.encode()})
    made = response.headers["x-request-id"]
    assert made != given
    assert HEX_ID.fullmatch(made)
    assert response.json() == {"id": made}  # the route sees the id the response carries


async def test_without_an_id_each_request_gets_a_new_one():
    async with client() as c:
        first = await c.get("/echo")
        second = await c.get("/echo")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(HEX_ID.fullmatch(i) for i in ids)
    assert ids[0] != ids[1]
    assert first.json() == {"id": ids[0]}


@pytest.mark.parametrize(("path", "status"), [("/refuse", 403), ("/nowhere", 404)])
async def test_error_responses_carry_the_id(path, status):
    async with client() as c:
        kept = await c.get(path, headers={"x-request-id": "caller-7"})
        made = await c.get(path)
    assert kept.status_code == made.status_code == status
    assert kept.headers["x-request-id"] == "caller-7"
    assert HEX_ID.fullmatch(made.headers["x-request-id"])


async def test_a_405_carries_the_id():
    async with client() as c:
        response = await c.delete("/echo", headers={"x-request-id": "caller-8"})
    assert response.status_code == 405
    assert response.headers["x-request-id"] == "caller-8"


async def test_a_500_carries_the_id():
    async with client(raise_app_exceptions=False) as c:
        response = await c.get("/boom", headers={"x-request-id": "caller-9"})
    assert response.status_code == 500
    assert response.headers.get("x-request-id") == "caller-9"


async def test_other_scopes_pass_through_untouched():
    seen: list[dict[str, Any]] = []

    async def inner(scope, receive, send):
        seen.append(dict(scope))

    await RequestIdMiddleware(inner)({"type": "lifespan"}, None, None)
    assert seen == [{"type": "lifespan"}]
