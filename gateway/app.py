"""The Starlette application: connectors started with the app, authentication, GraphQL, the
embedded issuer's JWKS, health endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from connectors.audit_log import AuditLogConnector
from connectors.cache import CacheSettings, CacheStore
from connectors.pg import PoolSettings
from connectors.registry import RegistryConnector, RegistrySourceConfig
from connectors.resilience import ResilienceSettings
from connectors.tax import TaxConnector
from connectors.traffy import TraffyConnector
from gateway import lifecycle, tracing
from gateway.api_keys import ApiKeyStore
from gateway.audit import AuditWriter
from gateway.audit_store import load_key
from gateway.auth import Authenticator
from gateway.execution import Executor
from gateway.graphql_http import GraphQLHTTP
from gateway.issuer import EmbeddedIssuer
from gateway.logs import configure_logging
from gateway.metrics import CONTENT_TYPE_LATEST
from gateway.metrics import render as render_metrics
from gateway.rate_limit import RateLimitMiddleware, buckets_for
from gateway.settings import Settings
from policies.model import load_policy
from policies.principal import Principal
from schema import Connectors, Limits, RequestContext, graphql_schema

log = logging.getLogger("bma.gateway")


def connectors_from(settings: Settings) -> Connectors:
    pool = PoolSettings(max_size=settings.db_pool_max, timeout=settings.upstream_timeout)
    resilience = ResilienceSettings(
        retries=settings.upstream_retries,
        breaker_failures=settings.breaker_failures,
        breaker_reset=settings.breaker_reset_seconds,
        concurrency=settings.upstream_concurrency,
    )
    registry = RegistryConnector.one_database(settings.registry_database_url, pool, resilience)
    if settings.registry_district_urls:
        sources = [
            RegistrySourceConfig(
                code,
                settings.registry_district_urls.get(code, settings.registry_database_url),
                f"d{code}",
            )
            for code in registry.district_codes
        ]
        registry = RegistryConnector(sources, pool, resilience)
    audit_url = settings.audit_store_url
    return Connectors(
        tax=TaxConnector(settings.tax_database_url, pool, resilience),
        registry=registry,
        traffy=TraffyConnector(
            settings.traffy_base_url, timeout=settings.upstream_timeout, resilience=resilience
        ),
        audit_log=AuditLogConnector(audit_url, PoolSettings(max_size=2, timeout=pool.timeout))
        if audit_url
        else None,
        cache=CacheStore(
            CacheSettings(
                redis_url=settings.redis_url,
                ttls=settings.cache_ttls,
                stale_seconds=settings.cache_stale_seconds,
            )
        ),
    )


def audit_writer_from(settings: Settings) -> AuditWriter:
    key = load_key(settings.audit_key_file) if settings.audit_key_file else None
    return AuditWriter(
        settings.audit_store_url,
        key,
        batch_max=settings.audit_batch_max,
        queue_max=settings.audit_queue_max,
        timeout=settings.audit_timeout,
    )


async def wait_for_sources(connectors: Connectors, seconds: float) -> None:
    """Wait up to ``seconds`` for every source to answer, then start anyway — a source that
    is down means partial results, not no gateway — naming what is missing."""
    deadline = time.monotonic() + seconds
    while True:
        checks = await asyncio.gather(*(c.health() for c in connectors.all()))
        down = [h for group in checks for h in group if not h.ok]
        if not down or time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    if down:
        missing = ", ".join(f"{h.source} ({h.detail})" for h in down)
        log.warning("starting without %d source(s): %s", len(down), missing)
    else:
        log.info("every source answers")


def create_app(settings: Settings, connectors: Connectors | None = None) -> Starlette:
    connectors = connectors or connectors_from(settings)
    limits = Limits(
        default_page_size=settings.default_page_size, max_page_size=settings.max_page_size
    )
    schema = graphql_schema()
    policy = load_policy(Path(settings.policy_file)) if settings.policy_file else load_policy()
    policy.check(schema)  # an unclassified field stops the gateway here, listing them all
    audit = audit_writer_from(settings)
    executor = Executor(
        schema,
        policy,
        audit,
        mode=settings.policy_mode,
        limits=settings.operation_limits,
        page_limits=limits,
        responses=connectors.cache,
    )
    issuer = (
        EmbeddedIssuer.open(settings.issuer_key_file, audience=settings.jwt_audience)
        if settings.issuer_key_file
        else None
    )
    api_keys = (
        ApiKeyStore(
            settings.gateway_database_url,
            cache_seconds=settings.api_key_cache_seconds,
            timeout=settings.upstream_timeout,
        )
        if settings.gateway_database_url
        else None
    )
    authenticator = Authenticator.from_settings(settings, embedded=issuer, api_keys=api_keys)

    async def principal_of(request: Request) -> Principal:
        # Once per HTTP request: a batch's operations share the caller's credentials.
        principal = getattr(request.state, "principal", None)
        if principal is None:
            principal = await authenticator.authenticate(request.headers)
            request.state.principal = principal
        return principal

    async def context_for(request: Request) -> RequestContext:
        return RequestContext(
            connectors,
            limits,
            principal=await principal_of(request),
            request_id=request.state.request_id,
            client=request.client.host if request.client else None,
        )

    graphql = GraphQLHTTP(
        executor,
        context_for,
        max_body_bytes=settings.max_body_bytes,
        max_batch=settings.max_batch,
        graphiql=settings.graphiql,
        principal_for=principal_of,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await asyncio.gather(*(c.start() for c in connectors.all()))
        await wait_for_sources(connectors, settings.startup_wait_seconds)
        if api_keys is not None:
            await api_keys.start()
        await audit.start()
        try:
            yield
        finally:
            # In-flight requests have finished (uvicorn waits for them): commit their records.
            await audit.stop()
            if api_keys is not None:
                await api_keys.stop()
            await asyncio.gather(*(c.stop() for c in connectors.all()))
            if connectors.cache is not None:
                await connectors.cache.close()

    async def metrics(_request: Request) -> Response:
        return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        if lifecycle.draining.is_set():  # shutting down: out of rotation, still answering
            return JSONResponse({"status": "draining"}, status_code=503)
        checks = await asyncio.gather(*(c.health() for c in connectors.all()))
        sources = [h for group in checks for h in group]
        up = sum(h.ok for h in sources)
        # Partial results are still answers: only a gateway with no source left is unready.
        status = "ready" if up == len(sources) else "degraded" if up else "down"
        body = {
            "status": status,
            "sources": {
                h.source: {"state": "ok" if h.ok else f"down: {h.detail}", "breaker": h.breaker}
                for h in sources
            },
        }
        return JSONResponse(body, status_code=503 if status == "down" else 200)

    async def root(_request: Request) -> Response:
        return RedirectResponse("/graphql")

    async def jwks(_request: Request) -> Response:
        if issuer is None:
            return JSONResponse({"error": "this gateway issues no tokens"}, status_code=404)
        with contextlib.suppress(OSError, ValueError):  # unreadable now: serve what we have
            await asyncio.to_thread(issuer.reload)  # a stat, unless the CLI rotated a key
        # Short max-age: verifiers refetch soon after a rotation.
        return JSONResponse(issuer.jwks(), headers={"cache-control": "public, max-age=300"})

    app = Starlette(
        routes=[
            Route("/graphql", graphql.handle, methods=["GET", "POST"]),
            Route("/healthz", healthz),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/readyz", readyz),
            Route("/.well-known/jwks.json", jwks),
            Route("/", root),
        ],
        lifespan=lifespan,
        exception_handlers={404: http_error, 405: http_error},
    )
    if settings.rate_limits is not None:
        # Before the body is read; the principal it authenticates is reused by principal_of.
        app.add_middleware(
            RateLimitMiddleware,
            limits=settings.rate_limits,
            buckets=buckets_for(settings.redis_url),
            authenticator=authenticator,
        )
    app.state.connectors = connectors
    app.state.issuer = issuer
    app.state.authenticator = authenticator
    app.state.audit = audit
    return app


_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


async def http_error(_request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer JSON with a code, like every other error."""
    status = getattr(exc, "status_code", 404)
    body = {
        "errors": [
            {
                "message": getattr(exc, "detail", "not found"),
                "extensions": {"code": _HTTP_CODES.get(status, "BAD_REQUEST")},
            }
        ]
    }
    return JSONResponse(body, status_code=status, headers=getattr(exc, "headers", None))


def create_app_from_env() -> Starlette:
    """The factory uvicorn workers call (``bma-gateway serve --workers N``): each worker is
    a fresh process, so it sets up the JSON logs (and tracing, if on) itself."""
    configure_logging()
    settings = Settings.from_env()
    if settings.tracing:
        tracing.enable()
    return create_app(settings)
