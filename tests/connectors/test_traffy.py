"""Connector behaviour under upstream faults that need a purpose-built peer."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import PageRequest, UpstreamUnavailable
from connectors.pg import _unavailable
from connectors.traffy import ComplaintQuery, TraffyConnector
from gateway.http.serving import BackgroundServer


def _tickets_with_a_broken_one() -> list[dict]:
    tickets = [
        {"ticket_id": f"T{i}", "state": "เสร็จสิ้น", "timestamp": "2024-01-01 00:00:00+00"}
        for i in range(6)
    ]
    del tickets[1]["ticket_id"]  # upstream sends a ticket we cannot read
    return tickets


def _paging_app(tickets: list[dict]) -> Starlette:
    async def search(request: Request) -> Response:
        offset = int(request.query_params.get("offset", 0))
        limit = int(request.query_params.get("limit", 10))
        body = {"status": True, "total": len(tickets), "results": tickets[offset : offset + limit]}
        return Response(orjson.dumps(body), media_type="application/json")

    return Starlette(routes=[Route("/share/teamchadchart/search", search)])


def test_cursors_count_unreadable_tickets_so_pages_neither_repeat_nor_skip():
    async def walk(url: str) -> list[str]:
        traffy = TraffyConnector(url)
        await traffy.start()
        seen, after = [], None
        try:
            while True:
                page = await traffy.search(ComplaintQuery(), PageRequest(first=2, after=after))
                seen.extend(r["ticket_id"] for r in page.rows)
                if not page.has_next:
                    return seen
                after = page.rows[-1]["_cursor"] if page.rows else after
        finally:
            await traffy.stop()

    with BackgroundServer(_paging_app(_tickets_with_a_broken_one())) as server:
        assert asyncio.run(walk(server.url)) == ["T0", "T2", "T3", "T4", "T5"]


def test_overlong_request_urls_are_an_upstream_failure_not_a_crash():
    async def ask() -> None:
        traffy = TraffyConnector("http://127.0.0.1:9")
        await traffy.start()
        try:
            await traffy.by_ids(["x" * 70_000])
        finally:
            await traffy.stop()

    try:
        asyncio.run(ask())
    except UpstreamUnavailable as exc:
        assert exc.source == "traffy"
    else:
        raise AssertionError("expected UpstreamUnavailable")


def test_postgres_errors_that_mean_the_source_cannot_answer():
    assert _unavailable(asyncpg.TooManyConnectionsError())
    assert _unavailable(asyncpg.InvalidPasswordError())
    assert _unavailable(asyncpg.InvalidCatalogNameError())
    assert _unavailable(asyncpg.UndefinedTableError())
    assert _unavailable(asyncpg.AdminShutdownError())
    assert _unavailable(ConnectionRefusedError())
    assert not _unavailable(
        asyncpg.UndefinedColumnError()
    )  # our SQL is wrong: a bug, not an outage
    assert not _unavailable(ValueError())
