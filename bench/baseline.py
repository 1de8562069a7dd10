"""The practical limit: hand-written Starlette endpoints that answer the benchmark queries
with the same bytes as the gateway, from the same connectors, with no GraphQL at all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import PageRequest, UpstreamError
from connectors.districts import all_districts
from connectors.tax import ParcelQuery
from connectors.traffy import ComplaintQuery
from gateway.errors import code_of
from schema import Connectors


def _key_counts(counter: dict[str, int]) -> list[dict[str, Any]]:
    return [{"key": k, "count": n} for k, n in sorted(counter.items(), key=lambda i: (-i[1], i[0]))]


# What the plain-SQL endpoint asks: the public columns only, no count(*).
PLAIN_PARCELS_SQL = """SELECT id, title_deed_type, land_use, area_sqm, lat, lon, district_code
    FROM tax.parcels ORDER BY id LIMIT 1000"""


def _parcel_edges(rows: list[Any]) -> list[dict[str, Any]]:
    """The gateway's public parcel fields (bench.run's parcel query), from table rows."""
    return [
        {
            "node": {
                "id": str(r["id"]),
                "titleDeedType": r["title_deed_type"].upper(),
                "landUse": r["land_use"].upper(),
                "areaSqm": str(r["area_sqm"]),
                "location": {"lat": r["lat"], "lon": r["lon"]},
                "district": {"code": r["district_code"]},
            }
        }
        for r in rows
    ]


async def upstream_error(_request: Request, exc: Exception) -> Response:
    """An upstream that did not answer (e.g. the connector's concurrency bound timing out
    under load) as a GraphQL-style error with the gateway's code, so the load client counts
    it by code, not as a crash."""
    error = code_of(exc)
    body = {
        "errors": [{"message": str(exc), "extensions": {"code": error.code if error else None}}]
    }
    return Response(orjson.dumps(body), status_code=503, media_type="application/json")


def create_baseline_app(c: Connectors, tax_url: str | None = None) -> Starlette:
    """The endpoints; ``tax_url`` is the tax database the plain-SQL endpoint reads with its
    own pool (the others go through the connectors, with the connectors' SQL)."""
    codes = [d.code for d in all_districts()]
    plain: dict[str, asyncpg.Pool] = {}

    async def districts(_request: Request) -> Response:
        stats, revenue, summaries = await asyncio.gather(
            c.traffy.stats(codes),
            c.tax.revenue([(code, 2025) for code in codes]),
            c.registry.summaries(codes),
        )
        rows = [
            {
                "code": d.code,
                "nameTh": d.name_th,
                "complaintStats": {"total": stats[d.code].total},
                "taxRevenue": {"collected": str(revenue[(d.code, 2025)]["collected"])},
                "businessCount": summaries[d.code]["business_count"],
            }
            for d in all_districts()
        ]
        return Response(orjson.dumps({"data": {"districts": rows}}), media_type="application/json")

    async def complaints(_request: Request) -> Response:
        page = await c.traffy.search(ComplaintQuery(), PageRequest(first=1000))
        edges = [
            {
                "node": {
                    "ticketId": r["ticket_id"],
                    "type": r["types"][0] if r["types"] else None,
                    "state": r["state"],
                    "description": r["description"],
                    "address": r["address"],
                    "location": {"lat": r["lat"], "lon": r["lon"]}
                    if r["lat"] is not None
                    else None,
                    "reportedAt": r["reported_at"].isoformat() if r["reported_at"] else None,
                    "lastActivityAt": r["last_activity_at"].isoformat()
                    if r["last_activity_at"]
                    else None,
                    "photoUrl": r["photo_url"],
                    "district": {"code": r["district_code"]} if r["district_code"] else None,
                }
            }
            for r in page.rows
        ]
        body = {"data": {"complaints": {"totalCount": page.total, "edges": edges}}}
        return Response(orjson.dumps(body), media_type="application/json")

    async def parcels(_request: Request) -> Response:
        """The connector's SQL (a keyset page with its count(*)), the gateway's JSON."""
        page = await c.tax.search_parcels(ParcelQuery(), PageRequest(first=1000))
        body = {"data": {"parcels": {"totalCount": page.total, "edges": _parcel_edges(page.rows)}}}
        return Response(orjson.dumps(body), media_type="application/json")

    async def parcels_plain(_request: Request) -> Response:
        """The same edges from one plain SELECT of the columns asked for: no count(*), no
        keyset CTE, no connector (so no totalCount in the answer)."""
        rows = await plain["pool"].fetch(PLAIN_PARCELS_SQL)
        body = {"data": {"parcels": {"edges": _parcel_edges(rows)}}}
        return Response(orjson.dumps(body), media_type="application/json")

    saved: dict[str, bytes] = {}

    async def districts_saved(request: Request) -> Response:
        """The same bytes, computed once: the fastest a Starlette endpoint can answer them,
        to compare the gateway's response cache with."""
        if "body" not in saved:
            saved["body"] = (await districts(request)).body
        return Response(saved["body"], media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await asyncio.gather(*(x.start() for x in c.all()))
        if tax_url:
            plain["pool"] = await asyncpg.create_pool(tax_url, min_size=0, max_size=10)
        try:
            yield
        finally:
            await asyncio.gather(*(x.stop() for x in c.all()))
            if plain:
                await plain["pool"].close()

    return Starlette(
        routes=[
            Route("/districts", districts),
            Route("/districts/saved", districts_saved),
            Route("/complaints", complaints),
            Route("/parcels", parcels),
            Route("/parcels/plain", parcels_plain),
        ],
        lifespan=lifespan,
        exception_handlers={UpstreamError: upstream_error},
    )
