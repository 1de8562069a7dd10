"""The Starlette application: connectors started with the app, GraphQL, health endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from connectors.pg import PoolSettings
from connectors.registry import RegistryConnector, RegistrySourceConfig
from connectors.tax import TaxConnector
from connectors.traffy import TraffyConnector
from gateway.execution import Executor
from gateway.graphql_http import GraphQLHTTP
from gateway.settings import Settings
from schema import Connectors, Limits, RequestContext, graphql_schema


def connectors_from(settings: Settings) -> Connectors:
    pool = PoolSettings(max_size=settings.db_pool_max, timeout=settings.upstream_timeout)
    registry = RegistryConnector.one_database(settings.registry_database_url, pool)
    if settings.registry_district_urls:
        sources = [
            RegistrySourceConfig(
                code,
                settings.registry_district_urls.get(code, settings.registry_database_url),
                f"d{code}",
            )
            for code in registry.district_codes
        ]
        registry = RegistryConnector(sources, pool)
    return Connectors(
        tax=TaxConnector(settings.tax_database_url, pool),
        registry=registry,
        traffy=TraffyConnector(settings.traffy_base_url, timeout=settings.upstream_timeout),
    )


def create_app(settings: Settings, connectors: Connectors | None = None) -> Starlette:
    connectors = connectors or connectors_from(settings)
    limits = Limits(
        default_page_size=settings.default_page_size, max_page_size=settings.max_page_size
    )
    executor = Executor(graphql_schema(), expose_restricted=settings.expose_restricted)
    graphql = GraphQLHTTP(
        executor,
        lambda _request: RequestContext(connectors, limits),
        max_body_bytes=settings.max_body_bytes,
        max_batch=settings.max_batch,
        graphiql=settings.graphiql,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await asyncio.gather(*(c.start() for c in connectors.all()))
        try:
            yield
        finally:
            await asyncio.gather(*(c.stop() for c in connectors.all()))

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        checks = await asyncio.gather(*(c.health() for c in connectors.all()))
        sources = [h for group in checks for h in group]
        up = sum(h.ok for h in sources)
        # Partial results are still answers: only a gateway with no source left is unready.
        status = "ready" if up == len(sources) else "degraded" if up else "down"
        body = {
            "status": status,
            "sources": {h.source: "ok" if h.ok else f"down: {h.detail}" for h in sources},
        }
        return JSONResponse(body, status_code=503 if status == "down" else 200)

    async def root(_request: Request) -> Response:
        return RedirectResponse("/graphql")

    app = Starlette(
        routes=[
            Route("/graphql", graphql.handle, methods=["GET", "POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/", root),
        ],
        lifespan=lifespan,
    )
    app.state.connectors = connectors
    return app


def create_app_from_env() -> Starlette:
    """The factory uvicorn workers call (``bma-gateway serve --workers N``)."""
    return create_app(Settings.from_env())
