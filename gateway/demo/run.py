"""``bma-gateway demo``: everything on one machine with only Python.

An embedded PostgreSQL (or ``--database-url``), the three upstream databases seeded once,
the Traffy Fondue stand-in on a loopback port, and the gateway with GraphiQL.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from gateway.app import create_app
from gateway.demo.embedded import DatabaseUrls, default_data_dir, ensure_databases, start_embedded
from gateway.demo.seed import SeedScale, ensure_seeded
from gateway.demo.traffy_standin import TicketStore, create_traffy_app
from gateway.serving import BackgroundServer
from gateway.settings import Settings

EXAMPLE_QUERY = (
    "{ districts { code nameTh complaintStats { total } "
    "taxRevenue(year: 2025) { collected } businessCount } }"
)


@dataclass(frozen=True)
class DemoOptions:
    database_url: str | None = None
    data_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    traffy_port: int = 0
    expose_restricted: bool = False


def prepare_databases(server_url: str, scale: SeedScale | None = None) -> tuple[DatabaseUrls, bool]:
    """Create and seed the three upstream databases; returns their URLs and whether it seeded."""

    async def prepare() -> tuple[DatabaseUrls, bool]:
        urls = await ensure_databases(server_url)
        seeded = await ensure_seeded(urls.tax, urls.registry, urls.traffy, scale or SeedScale())
        return urls, seeded

    return asyncio.run(prepare())


def run_demo(options: DemoOptions) -> None:
    embedded = None  # keeps the embedded server alive while the demo runs
    if options.database_url:
        server_url = options.database_url
        print(f"PostgreSQL       {_redact(server_url)} (given)")
    else:
        data_dir = options.data_dir or default_data_dir()
        server_url, embedded = start_embedded(data_dir)
        print(f"PostgreSQL       embedded, data in {data_dir}")

    started = time.monotonic()
    urls, seeded = prepare_databases(server_url)
    verb = "seeded" if seeded else "reused seeded data"
    print(
        f"Upstream data    {verb} in {time.monotonic() - started:.1f} s (bma_tax, bma_registry, bma_traffy)"
    )

    store = asyncio.run(TicketStore.load(urls.traffy))
    traffy = BackgroundServer(create_traffy_app(store), port=options.traffy_port).start()
    print(
        f"Traffy stand-in  {traffy.url}/share/teamchadchart/search ({len(store.tickets)} tickets)"
    )

    settings = Settings(
        tax_database_url=urls.tax,
        registry_database_url=urls.registry,
        traffy_base_url=traffy.url,
        host=options.host,
        port=options.port,
        expose_restricted=options.expose_restricted,
    )
    _banner(settings)
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    finally:
        traffy.stop()
        del embedded
        print("Stopped.")


def _banner(settings: Settings) -> None:
    url = f"http://{settings.host}:{settings.port}/graphql"
    restricted = "exposed (synthetic data)" if settings.expose_restricted else "refused (FORBIDDEN)"
    print(f"Gateway          {url}  (GraphiQL in a browser)")
    print(f"Restricted data  {restricted}")
    print("Try:")
    print(f"  curl -s {url} -H 'content-type: application/json' \\")
    print(f'    -d \'{{"query": "{EXAMPLE_QUERY}"}}\'')
    print("Ctrl-C stops everything.")


def _redact(url: str) -> str:
    """A URL without its password, for printing."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, userinfo = head.partition("//")
    return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{tail}"
