"""connectors/traffy.py: the tolerant parsing of Traffy Fondue tickets, and the connector
under upstream faults that need a purpose-built peer (unreadable tickets while paging, a
request URL too long to send)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import PageRequest, UpstreamUnavailable
from connectors.traffy import ComplaintQuery, TraffyConnector, parse_ticket
from gateway.demo.traffy_standin import TicketStore, create_traffy_app
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


def test_ticket_in_the_current_shape():
    t = parse_ticket(
        {
            "ticket_id": "2024-ABC123",
            "type": "{ถนน,ทางเท้า}",
            "organization": "เขตบางรัก,สำนักการโยธา",
            "comment": "ทางเท้าชำรุด",
            "photo": "https://example.invalid/a.jpg",
            "coords": ["100.523186", "13.728000"],
            "district": "บางรัก",
            "state": "เสร็จสิ้น",
            "star": 4,
            "count_reopen": "1",
            "timestamp": "2024-01-05 10:22:31.123456+00",
            "last_activity": "2024-01-06 08:00:00+00",
        }
    )
    assert t["types"] == ["ถนน", "ทางเท้า"]
    assert t["organizations"] == ["เขตบางรัก", "สำนักการโยธา"]
    assert t["description"] == "ทางเท้าชำรุด"
    assert t["photo_url"] == "https://example.invalid/a.jpg"
    assert (t["lat"], t["lon"]) == (13.728, 100.523186)
    assert t["district_code"] == "1004"
    assert t["state"] == "COMPLETED"
    assert t["count_reopen"] == 1
    assert t["reported_at"] == datetime(2024, 1, 5, 10, 22, 31, 123456, tzinfo=UTC)


def test_ticket_in_older_spellings_and_with_broken_fields():
    t = parse_ticket(
        {
            "ticket_id": "2022-XYZ",
            "problem_type_fondue": ["น้ำท่วม"],
            "org": ["เขตดุสิต"],
            "description": "น้ำท่วมขัง",
            "photo_url": "https://example.invalid/b.jpg",
            "coords": "100.51,13.77",
            "district": "เขตดุสิต ",
            "state": "สถานะใหม่ที่ไม่รู้จัก",
            "star": "",
            "timestamp": "not a time",
        }
    )
    assert t["types"] == ["น้ำท่วม"]
    assert t["organizations"] == ["เขตดุสิต"]
    assert t["description"] == "น้ำท่วมขัง"
    assert t["photo_url"] == "https://example.invalid/b.jpg"
    assert (t["lon"], t["lat"]) == (100.51, 13.77)
    assert t["district_code"] == "1002"
    assert t["state"] == "OTHER"
    assert t["star"] is None
    assert t["reported_at"] is None
    assert parse_ticket({"type": "{ถนน}"}) is None
    assert parse_ticket({"ticket_id": "x", "coords": ["a", "b"]})["lat"] is None


def _ticket(ticket_id: str, state: str, district: str = "บางรัก") -> dict:
    return {
        "ticket_id": ticket_id,
        "state": state,
        "district": district,
        "timestamp": f"2024-01-0{len(ticket_id)} 00:00:00+00",
    }


def _search_other(tickets: list[dict], **where: object) -> tuple[list[str], int, dict[str, int]]:
    """The tickets the connector finds for state OTHER on the stand-in serving ``tickets``,
    the total, and the upstream calls it made."""

    async def search(url: str) -> tuple[list[str], int, dict[str, int]]:
        traffy = TraffyConnector(url)
        await traffy.start()
        try:
            query = ComplaintQuery(states=("OTHER",), **where)  # type: ignore[arg-type]
            page = await traffy.search(query, PageRequest(first=10))
        finally:
            await traffy.stop()
        return [r["ticket_id"] for r in page.rows], page.total, dict(traffy.counter.calls)

    with BackgroundServer(create_traffy_app(TicketStore(tickets))) as server:
        return asyncio.run(search(server.url))


def test_state_other_finds_the_states_the_platform_added():
    tickets = [
        _ticket("A", "เสร็จสิ้น"),
        _ticket("BB", "ยุติเรื่อง"),  # a state this API has no key for
        _ticket("CCC", "รอรับเรื่อง"),
        _ticket("DDDD", "พักเรื่อง"),  # another
        _ticket("EEEEE", "พักเรื่อง", district="พระนคร"),
    ]
    found, total, calls = _search_other(tickets)
    assert (sorted(found), total) == (["BB", "DDDD", "EEEEE"], 3)
    assert calls == {"traffy": 2}  # the counts that name the states, then the search
    found, total, _ = _search_other(tickets, district_codes=("1001",))  # Phra Nakhon
    assert (found, total) == (["EEEEE"], 1)


def test_state_other_without_such_states_is_an_empty_page_not_a_crash():
    found, total, calls = _search_other([_ticket("A", "เสร็จสิ้น"), _ticket("BB", "ส่งต่อ(ใหม่)")])
    assert (found, total) == ([], 0)
    assert calls == {"traffy": 1}  # no search: nothing can match
