"""Traffy Fondue, the citizens' complaint platform, over its public HTTP API (httpx).

The public API answers ``GET /share/teamchadchart/search?limit=&offset=`` with
``{status, total, results: [ticket, ...]}``. Ticket field names drifted over the years
(``comment``/``description``, ``photo``/``photo_url``, ``type``/``problem_type_fondue``,
``organization``/``org``) and coordinates come as strings: ``parse_ticket`` accepts every
spelling and returns one plain record. Aggregates come from ``/share/teamchadchart/stats``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson

from connectors.base import (
    CallCounter,
    Page,
    PageRequest,
    Record,
    SourceHealth,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    decode_position,
    encode_cursor,
    with_timeout,
)
from connectors.districts import code_for_name, district
from connectors.observer import QUIET, UpstreamObserver
from connectors.resilience import Guard, RefusedByUpstream, ResilienceSettings

SEARCH_PATH = "/share/teamchadchart/search"
STATS_PATH = "/share/teamchadchart/stats"

# The platform's states, and the stable keys this API gives them.
STATES: dict[str, str] = {
    "รอรับเรื่อง": "WAITING",
    "กำลังดำเนินการ": "IN_PROGRESS",
    "เสร็จสิ้น": "COMPLETED",
    "ส่งต่อ(ใหม่)": "FORWARDED",
    "ไม่เกี่ยวข้อง": "IRRELEVANT",
}
STATE_NAMES: dict[str, str] = {key: name for name, key in STATES.items()}
OTHER_STATE = "OTHER"

EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True)
class ComplaintQuery:
    district_codes: tuple[str, ...] = ()
    states: tuple[str, ...] = ()  # stable keys, e.g. "COMPLETED"
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class ComplaintCounts:
    total: int = 0
    by_state: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class BoundingBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @classmethod
    def around(cls, lat: float, lon: float, radius_m: float) -> BoundingBox:
        dlat = math.degrees(radius_m / EARTH_RADIUS_M)
        dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
        return cls(lon - dlon, lat - dlat, lon + dlon, lat + dlat)

    def param(self) -> str:
        return f"{self.min_lon:.6f},{self.min_lat:.6f},{self.max_lon:.6f},{self.max_lat:.6f}"


class TraffyConnector:
    name = "traffy"

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        max_page: int = 1000,
        transport: httpx.AsyncBaseTransport | None = None,
        resilience: ResilienceSettings | None = None,
        observer: UpstreamObserver = QUIET,
    ) -> None:
        self.counter = CallCounter(observer)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_page = max_page
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self.guard = Guard(self.name, resilience, queue_timeout=timeout, observer=observer)

    def guards(self) -> dict[str, Guard]:
        return {self.name: self.guard}

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.timeout),
            transport=self._transport,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def health(self) -> list[SourceHealth]:
        """A direct call (not through the breaker, not counted) and the breaker's state."""
        breaker = self.guard.breaker.state.value
        try:
            await self._request(SEARCH_PATH, [("limit", "1"), ("offset", "0")])
        except (UpstreamUnavailable, UpstreamTimeout) as exc:
            return [SourceHealth(self.name, False, exc.reason, breaker)]
        return [SourceHealth(self.name, True, breaker=breaker)]

    async def search(self, where: ComplaintQuery, page: PageRequest) -> Page:
        offset = decode_position("complaint", page.after)
        states = await self._state_names(where)
        if where.states and not states:  # only OTHER, and the platform has no other state
            return Page(rows=[], total=0, has_next=False)
        params = _filter_params(where, states)
        body = await self._get(
            SEARCH_PATH, [*params, ("limit", str(page.first)), ("offset", str(offset))]
        )
        served = _results(body)
        rows = []
        # Cursors count the upstream's rows, unreadable ones included, so offsets stay true.
        for i, raw in enumerate(served):
            ticket = parse_ticket(raw)
            if ticket is not None:
                ticket["_cursor"] = complaint_cursor(offset + i + 1)
                rows.append(ticket)
        total = _int(body.get("total"), default=offset + len(served))
        return Page(rows=rows, total=total, has_next=bool(served) and offset + len(served) < total)

    async def _state_names(self, where: ComplaintQuery) -> list[str]:
        """The platform's names of the states asked for. OTHER stands for every state the
        platform reports that this API has no key for: its counts name them (one more call,
        only when OTHER is asked for)."""
        names = [STATE_NAMES[s] for s in where.states if s in STATE_NAMES]
        if OTHER_STATE in where.states:
            body = await self._get(STATS_PATH, _district_params(where.district_codes))
            reported = {str(r["state"]) for r in _results(body) if r.get("state")}
            names.extend(sorted(reported - STATES.keys()))
        return names

    async def by_ids(self, ids: Sequence[str]) -> dict[str, Record]:
        found: dict[str, Record] = {}
        for chunk in _chunks(list(ids), self.max_page):
            body = await self._get(
                SEARCH_PATH, [("ticket_id", ",".join(chunk)), ("limit", str(len(chunk)))]
            )
            found.update({t["ticket_id"]: t for t in _tickets(body)})
        return found

    async def stats(self, codes: Sequence[str]) -> dict[str, ComplaintCounts]:
        """Counts per district, by state and by type, in one upstream call.

        The upstream answers rows of (district, state, count) and (district, type, count); a
        ticket of two types counts once in its state and once under each type.
        """
        params = _district_params(codes) if len(set(codes)) < 50 else []
        body = await self._get(STATS_PATH, params)
        stats: dict[str, ComplaintCounts] = {c: ComplaintCounts() for c in codes}
        for row in _results(body):
            entry = stats.get(code_for_name(row.get("district")) or "")
            if entry is None:
                continue
            count = _int(row.get("count"), default=0)
            if "state" in row:
                entry.by_state[STATES.get(str(row["state"]), OTHER_STATE)] += count
            elif row.get("type"):
                entry.by_type[str(row["type"])] += count
        for entry in stats.values():
            entry.total = sum(entry.by_state.values())
        return stats

    async def within(self, boxes: Iterable[BoundingBox], limit: int) -> list[Record]:
        """Tickets inside any of the boxes, paging through the answer, at most ``limit``."""
        params = [("bbox", b.param()) for b in boxes]
        rows: list[Record] = []
        offset = 0
        while offset < limit:
            size = min(self.max_page, limit - offset)
            page = params + [("limit", str(size)), ("offset", str(offset))]
            body = await self._get(SEARCH_PATH, page)
            served = _results(body)
            rows.extend(t for r in served if (t := parse_ticket(r)) is not None)
            offset += len(served)
            if not served or offset >= _int(body.get("total"), default=0):
                break
        return rows

    async def _get(self, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        """One read, guarded (bound, breaker, retries); each attempt made is counted."""

        async def attempt() -> dict[str, Any]:
            self.counter.record(self.name)
            return await self._request(path, params)

        return await self.guard.call(attempt)

    async def _request(self, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        """One GET within the timeout (connection, answer and body), failures named."""
        if self._client is None:
            raise UpstreamUnavailable(self.name, "connector is not started")
        try:
            call = self._client.get(path, params=tuple(params))
            response = await with_timeout(self.name, self.timeout, call)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(self.name, f"no answer within {self.timeout:g} s") from exc
        except httpx.InvalidURL as exc:
            raise RefusedByUpstream(self.name, type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(self.name, type(exc).__name__) from exc
        if response.status_code != 200:
            raise _status_error(self.name, response.status_code)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamUnavailable(self.name, "malformed JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise UpstreamUnavailable(self.name, "unexpected response shape")
        return body


def _status_error(source: str, status: int) -> UpstreamUnavailable:
    """A 4xx (but 408 and 429) refuses this request; anything else means the source is down."""
    reason = f"HTTP {status}"
    if 400 <= status < 500 and status not in (408, 429):
        return RefusedByUpstream(source, reason)
    return UpstreamUnavailable(source, reason)


def parse_ticket(raw: dict[str, Any]) -> Record | None:
    """One ticket in any historical spelling -> a plain record; None without a ticket id."""
    ticket_id = raw.get("ticket_id")
    if not ticket_id:
        return None
    lon, lat = _coords(raw.get("coords"))
    code = code_for_name(raw.get("district"))
    info = district(code) if code else None
    state_th = str(raw.get("state") or "")
    return {
        "ticket_id": str(ticket_id),
        "types": _string_list(raw.get("problem_type_fondue", raw.get("type"))),
        "organizations": _string_list(raw.get("org", raw.get("organization"))),
        "description": _first_text(raw, "comment", "description"),
        "photo_url": _first_text(raw, "photo", "photo_url"),
        "after_photo_url": _first_text(raw, "after_photo", "after_photo_url"),
        "lat": lat,
        "lon": lon,
        "address": raw.get("address"),
        "subdistrict": raw.get("subdistrict"),
        "district_code": code,
        "district_name": info.short_name_th if info else raw.get("district"),
        "province": raw.get("province"),
        "state": STATES.get(state_th, OTHER_STATE),
        "state_th": state_th,
        "star": _int(raw.get("star"), default=None),
        "count_reopen": _int(raw.get("count_reopen"), default=0),
        "reported_at": _timestamp(raw.get("timestamp")),
        "last_activity_at": _timestamp(raw.get("last_activity")),
    }


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def complaint_cursor(offset: int) -> str:
    return encode_cursor("complaint", offset)


def _filter_params(where: ComplaintQuery, state_names: Sequence[str]) -> list[tuple[str, str]]:
    params = _district_params(where.district_codes)
    if state_names:
        params.append(("state", ",".join(state_names)))
    if where.type:
        params.append(("type", where.type))
    if where.since:
        params.append(("start", where.since.isoformat()))
    if where.until:
        params.append(("end", where.until.isoformat()))
    return params


def _district_params(codes: Iterable[str]) -> list[tuple[str, str]]:
    names = [d.short_name_th for c in sorted(set(codes)) if (d := district(c))]
    return [("district", ",".join(names))] if names else []


def _results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in body["results"] if isinstance(r, dict)]


def _tickets(body: dict[str, Any]) -> list[Record]:
    return [t for r in _results(body) if (t := parse_ticket(r)) is not None]


def _coords(value: Any) -> tuple[float | None, float | None]:
    if isinstance(value, str):
        value = value.strip("[]() ").split(",")
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None, None
    try:
        lon, lat = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return None, None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        return None, None
    return lon, lat


def _string_list(value: Any) -> list[str]:
    """``"{a,b}"``, ``"a,b"``, ``["a", "b"]`` -> ``["a", "b"]``."""
    if isinstance(value, str):
        value = value.strip("{}").split(",")
    if not isinstance(value, list | tuple):
        return []
    return [s for v in value if v is not None and (s := str(v).strip().strip('"'))]


def _first_text(raw: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = raw.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _int(value: Any, default: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class NearbyKey:
    lat: float
    lon: float
    radius_m: float


NEARBY_FETCH_LIMIT = 5000  # tickets one search may fetch; a denser area answers an error


async def near(
    traffy: TraffyConnector, keys: Sequence[NearbyKey]
) -> list[list[Record] | UpstreamError]:
    """Tickets within each key's radius, nearest first: one paged upstream read for a batch.

    The upstream answers the union of the keys' bounding boxes; exact distances are checked
    here, against only the tickets in each key's own box (found through a grid of cells),
    so a ticket in a box corner but outside the circle is left out. The limit is per search:
    a key whose own box holds more than ``NEARBY_FETCH_LIMIT`` tickets answers an error
    alone, and however far apart the keys are, a batch's union is never refused for its
    size — it holds at most the limit times the keys unless one search is over the limit,
    which is all that stops the read early (the cost model bounds the area asked for).
    """
    boxes = [BoundingBox.around(k.lat, k.lon, k.radius_m) for k in keys]
    most = NEARBY_FETCH_LIMIT * len(keys)
    rows = await traffy.within(boxes, most + 1)
    if len(rows) > most:  # some search's own box is over the limit; which is unknown
        return [_too_many(traffy) for _ in keys]
    grid = _Grid(rows)
    answers: list[list[Record] | UpstreamError] = []
    for key, box in zip(keys, boxes, strict=True):
        inside = list(grid.inside(box))
        if len(inside) > NEARBY_FETCH_LIMIT:
            answers.append(_too_many(traffy))
            continue
        scored = [
            (distance_m(key.lat, key.lon, r["lat"], r["lon"]), r["ticket_id"], r) for r in inside
        ]
        answers.append([r for d, _, r in sorted(scored, key=lambda s: s[:2]) if d <= key.radius_m])
    return answers


def _too_many(traffy: TraffyConnector) -> UpstreamError:
    return UpstreamUnavailable(
        traffy.name, f"over {NEARBY_FETCH_LIMIT} complaints in the area; use a smaller radius"
    )


class _Grid:
    """Located tickets bucketed in 0.01° cells (about 1.1 km), to find those in a box fast."""

    CELL = 0.01

    def __init__(self, rows: Iterable[Record]) -> None:
        self.cells: dict[tuple[int, int], list[Record]] = {}
        for r in rows:
            if r["lat"] is not None and r["lon"] is not None:
                self.cells.setdefault(self._cell(r["lat"], r["lon"]), []).append(r)

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor(lat / self.CELL), math.floor(lon / self.CELL)

    def inside(self, box: BoundingBox) -> Iterator[Record]:
        low_lat, low_lon = self._cell(box.min_lat, box.min_lon)
        high_lat, high_lon = self._cell(box.max_lat, box.max_lon)
        for i in range(low_lat, high_lat + 1):
            for j in range(low_lon, high_lon + 1):
                for r in self.cells.get((i, j), ()):
                    if (
                        box.min_lat <= r["lat"] <= box.max_lat
                        and box.min_lon <= r["lon"] <= box.max_lon
                    ):
                        yield r
