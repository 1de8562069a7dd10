"""Bulk downloads: rows per second of the 20,000-complaint CSV, the gateway against a
hand-written asyncpg-to-CSV endpoint, in the same run.

    python -m bench.downloads [--database-url URL] [--rounds 5]

Starts PostgreSQL (embedded unless ``--database-url``), seeds it, then the Traffy stand-in,
two gateways — caches off (every download produced through the executor, page by page, from
the stand-in over HTTP) and caches on (the defaults: within the response cache's TTL a
download is the copy the previous one left on disk) — and the hand-written endpoint, each in
its own process. The hand-written endpoint reads the stand-in's own table
(``traffy.tickets`` in ``bma_traffy``, the JSON documents) directly with an asyncpg cursor,
parses each ticket with the connector's tolerant parser and writes the same 18 columns as CSV
with a BOM: no HTTP hop to the stand-in, no GraphQL, no policy. Both files are checked to hold
the same tickets. Rounds alternate which server goes first; the figures are medians and their
ratios to the hand-written endpoint, written into docs/benchmarks.md between the DOWNLOADS
markers.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bench.common import CACHES_OFF, publish, seeded_databases, start
from connectors.traffy import parse_ticket

PATH = "/download/traffy-complaints/complaints.csv"
COLUMNS = (
    "ticket_id type state state_th description address subdistrict lat lon reported_at "
    "last_activity_at photo_url after_photo_url star reopen_count district_code district_th "
    "district_en"
).split()


def create_csv_baseline_app(traffy_database_url: str) -> Starlette:
    """``GET /complaints.csv``: every ticket, newest first, straight from PostgreSQL."""
    from connectors.districts import district

    pool: dict[str, asyncpg.Pool] = {}

    async def rows() -> AsyncIterator[bytes]:
        if "pool" not in pool:
            pool["pool"] = await asyncpg.create_pool(traffy_database_url, min_size=1, max_size=2)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        yield "\ufeff".encode() + buffer.getvalue().encode()
        async with pool["pool"].acquire() as conn, conn.transaction():
            cursor = conn.cursor(
                "SELECT doc::text FROM traffy.tickets "
                "ORDER BY doc->>'timestamp' DESC, doc->>'ticket_id' DESC",
                prefetch=1000,
            )
            count = 0
            buffer.seek(0)
            buffer.truncate()
            async for record in cursor:
                t = parse_ticket(json.loads(record[0]))
                if t is None:
                    continue
                info = district(t["district_code"]) if t["district_code"] else None
                writer.writerow(
                    [
                        t["ticket_id"],
                        t["types"][0] if t["types"] else "",
                        t["state"],
                        t["state_th"],
                        t["description"] or "",
                        t["address"] or "",
                        t["subdistrict"] or "",
                        t["lat"] if t["lat"] is not None else "",
                        t["lon"] if t["lon"] is not None else "",
                        t["reported_at"].isoformat() if t["reported_at"] else "",
                        t["last_activity_at"].isoformat() if t["last_activity_at"] else "",
                        t["photo_url"] or "",
                        t["after_photo_url"] or "",
                        t["star"] if t["star"] is not None else "",
                        t["count_reopen"],
                        t["district_code"] or "",
                        info.short_name_th if info else "",
                        info.name_en if info else "",
                    ]
                )
                count += 1
                if count % 200 == 0:
                    yield buffer.getvalue().encode()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue().encode()

    async def complaints(_request: Request) -> Response:
        return StreamingResponse(rows(), media_type="text/csv; charset=utf-8")

    async def root(_request: Request) -> Response:
        return Response("ok")

    return Starlette(routes=[Route("/complaints.csv", complaints), Route("/", root)])


def download(url: str) -> tuple[float, bytes]:
    """Seconds to read the whole file, and the file."""
    started = time.perf_counter()
    with httpx.stream("GET", url, timeout=300, headers={"accept-encoding": "identity"}) as r:
        r.raise_for_status()
        body = r.read()
    return time.perf_counter() - started, body


def tickets(body: bytes) -> list[str]:
    return [row[0] for row in csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""))][1:]


def measure(urls: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """Seconds per download of each server, rounds alternating their order."""
    bodies = {name: download(url)[1] for name, url in urls.items()}  # warm up, and check
    reference = sorted(tickets(bodies["hand-written"]))
    for name, body in bodies.items():
        assert body.startswith(b"\xef\xbb\xbf"), name
        assert sorted(tickets(body)) == reference, f"{name}: other tickets"
    times: dict[str, list[float]] = {name: [] for name in urls}
    names = list(urls)
    for n in range(rounds):
        for name in names if n % 2 == 0 else reversed(names):
            seconds, _ = download(urls[name])
            times[name].append(seconds)
    times["rows"] = [float(len(reference))]
    return times


def report(times: dict[str, list[float]]) -> str:
    rows = times.pop("rows")[0]
    base = statistics.median(times["hand-written"])
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, client, servers and "
        f"PostgreSQL on one machine; {rows:,.0f} rows, {len(times['hand-written'])} rounds.",
        "",
        "| server | median s | rows/s | rows/s vs hand-written |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in times.items():
        median = statistics.median(seconds)
        lines.append(f"| {name} | {median:.2f} | {rows / median:,.0f} | {base / median:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print, don't update the docs")
    args = parser.parse_args()

    urls, handle = seeded_databases(args.database_url)
    env = {
        **os.environ,
        "BMA_TAX_DATABASE_URL": urls.tax,
        "BMA_REGISTRY_DATABASE_URL": urls.registry,
        "BMA_TRAFFY_DATABASE_URL": urls.traffy,
        "BMA_RATE_LIMITS": "off",  # one client address: the benchmark is not the abuse it stops
    }
    processes: list[Any] = []
    try:
        traffy, traffy_url = start("traffy", env)
        processes.append(traffy)
        env["BMA_TRAFFY_BASE_URL"] = traffy_url
        servers = {}
        baseline, baseline_url = start("csv-baseline", env)
        processes.append(baseline)
        servers["hand-written"] = baseline_url + "/complaints.csv"
        for name, ttls in (("gateway, caches off", CACHES_OFF), ("gateway, caches on", "")):
            gateway, gateway_url = start("gateway", {**env, "BMA_CACHE_TTLS": ttls})
            processes.append(gateway)
            servers[name] = gateway_url + PATH
        times = measure(servers, args.rounds)
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        del handle
    publish("DOWNLOADS", "bench.downloads", sys.argv[1:], report(times), not args.no_write)


if __name__ == "__main__":
    main()
