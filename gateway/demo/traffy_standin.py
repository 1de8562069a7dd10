"""A stand-in for the Traffy Fondue public API, serving the seeded tickets over HTTP.

It answers ``GET /share/teamchadchart/search`` with the public API's JSON
(``{status, total, results}``, newest first, paged by ``limit``/``offset``) and the filters the
connector uses (``district``, ``state``, ``type``, ``start``, ``end``, ``ticket_id``,
repeated ``bbox``), and ``GET /share/teamchadchart/stats`` with counts per district and state and per
district and type (rows carry either ``state`` or ``type``). Tickets are served byte for byte as stored, drifted field names included.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.districts import code_for_name, district
from connectors.traffy import SEARCH_PATH, STATS_PATH, parse_ticket

MAX_LIMIT = 1000


@dataclass(frozen=True)
class _Ticket:
    """A stored ticket with what the filters need, parsed once at load."""

    raw: bytes
    ticket_id: str
    district_code: str | None
    state: str
    types: tuple[str, ...]
    reported_at: datetime
    lat: float | None
    lon: float | None
    district_name: str  # Thai name without "เขต", as /stats reports it


class TicketStore:
    """All tickets, newest first, with an index by district."""

    def __init__(self, docs: Iterable[dict[str, Any]]) -> None:
        tickets = [t for d in docs if (t := _ticket(d)) is not None]
        tickets.sort(key=lambda t: (t.reported_at, t.ticket_id), reverse=True)
        self.tickets = tickets
        self.by_id = {t.ticket_id: t for t in tickets}
        self.by_district: dict[str | None, list[_Ticket]] = {}
        for t in tickets:
            self.by_district.setdefault(t.district_code, []).append(t)

    @classmethod
    async def load(cls, dsn: str) -> TicketStore:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT doc::text AS doc FROM traffy.tickets")
        finally:
            await conn.close()
        return cls(orjson.loads(r["doc"]) for r in rows)

    def select(self, query: dict[str, list[str]]) -> list[_Ticket]:
        candidates = self._candidates(query)
        checks = _checks(query)
        if not checks:
            return candidates
        return [t for t in candidates if all(check(t) for check in checks)]

    def _candidates(self, query: dict[str, list[str]]) -> list[_Ticket]:
        if ids := _csv(query, "ticket_id"):
            return [self.by_id[i] for i in ids if i in self.by_id]
        if names := _csv(query, "district"):
            codes = {code_for_name(n) for n in names}
            selected = [t for c in codes for t in self.by_district.get(c, [])]
            selected.sort(key=lambda t: (t.reported_at, t.ticket_id), reverse=True)
            return selected
        return self.tickets


class BadQuery(ValueError):
    pass


def create_traffy_app(store: TicketStore) -> Starlette:
    async def search(request: Request) -> Response:
        query = _query(request)
        try:
            limit = min(_int_param(query, "limit", 10), MAX_LIMIT)
            offset = _int_param(query, "offset", 0)
            matches = store.select(query)
        except BadQuery as exc:
            return _json({"status": False, "error": str(exc)}, status=400)
        page = matches[offset : offset + limit]
        head = b'{"status":true,"total":%d,"results":[' % len(matches)
        return Response(head + b",".join(t.raw for t in page) + b"]}", media_type=_JSON)

    async def stats(request: Request) -> Response:
        try:
            matches = store.select(_query(request))
        except BadQuery as exc:
            return _json({"status": False, "error": str(exc)}, status=400)
        states = Counter((t.district_name, t.state) for t in matches)
        types = Counter((t.district_name, ty) for t in matches for ty in t.types)
        results = [{"district": d, "state": s, "count": n} for (d, s), n in sorted(states.items())]
        results += [{"district": d, "type": ty, "count": n} for (d, ty), n in sorted(types.items())]
        return _json({"status": True, "total": len(matches), "results": results})

    return Starlette(routes=[Route(SEARCH_PATH, search), Route(STATS_PATH, stats)])


_JSON = "application/json"


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=_JSON)


def _ticket(doc: dict[str, Any]) -> _Ticket | None:
    parsed = parse_ticket(doc)
    if parsed is None or parsed["reported_at"] is None:
        return None
    return _Ticket(
        raw=orjson.dumps(doc),
        ticket_id=parsed["ticket_id"],
        district_code=parsed["district_code"],
        state=parsed["state_th"],
        types=tuple(parsed["types"]),
        reported_at=parsed["reported_at"],
        lat=parsed["lat"],
        lon=parsed["lon"],
        district_name=_district_name(parsed["district_code"]),
    )


def _district_name(code: str | None) -> str:
    info = district(code) if code else None
    return info.short_name_th if info else ""


def _query(request: Request) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, []).append(value)
    return query


def _csv(query: dict[str, list[str]], key: str) -> list[str]:
    return [v for raw in query.get(key, []) for v in raw.split(",") if v]


def _int_param(query: dict[str, list[str]], key: str, default: int) -> int:
    values = query.get(key)
    if not values:
        return default
    try:
        value = int(values[0])
    except ValueError as exc:
        raise BadQuery(f"{key} must be an integer") from exc
    if value < 0:
        raise BadQuery(f"{key} must not be negative")
    return value


def _time_param(query: dict[str, list[str]], key: str) -> datetime | None:
    values = query.get(key)
    if not values:
        return None
    try:
        value = datetime.fromisoformat(values[0])
    except ValueError as exc:
        raise BadQuery(f"{key} must be an ISO date or time") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _boxes(query: dict[str, list[str]]) -> list[tuple[float, float, float, float]]:
    boxes = []
    for raw in query.get("bbox", []):
        try:
            min_lon, min_lat, max_lon, max_lat = (float(v) for v in raw.split(","))
        except ValueError as exc:
            raise BadQuery("bbox must be min_lon,min_lat,max_lon,max_lat") from exc
        boxes.append((min_lon, min_lat, max_lon, max_lat))
    return boxes


def _checks(query: dict[str, list[str]]) -> list[Callable[[_Ticket], bool]]:
    """The filters of a query as predicates; district and ids are applied by the index."""
    checks: list[Callable[[_Ticket], bool]] = []
    if states := set(_csv(query, "state")):
        checks.append(lambda t: t.state in states)
    if type_ := (query.get("type") or [""])[0]:
        checks.append(lambda t: type_ in t.types)
    if (start := _time_param(query, "start")) is not None:
        checks.append(lambda t: t.reported_at >= start)
    if (end := _time_param(query, "end")) is not None:
        checks.append(lambda t: t.reported_at < end)
    if boxes := _boxes(query):
        checks.append(lambda t: _inside(t, boxes))
    return checks


def _inside(t: _Ticket, boxes: list[tuple[float, float, float, float]]) -> bool:
    if t.lat is None or t.lon is None:
        return False
    return any(b[0] <= t.lon <= b[2] and b[1] <= t.lat <= b[3] for b in boxes)
