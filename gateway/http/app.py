"""The application, assembled from its parts in the order a request meets them.

A request passes the security headers (``security_headers``), the client address from a
trusted proxy (``BMA_TRUSTED_PROXIES``), the request id (``request_id``), authentication
(``gateway.auth``) and the rate limit (``gateway.ratelimit``), then reaches its route:
GraphQL (``graphql``), the caller's schema as SDL (``published_schema``), the probes
(``probes``) or the embedded issuer's JWKS. The connectors, the audit writer, the API key
store and the registered documents' store start and stop with the app (its lifespan).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from connectors.audit_log import AuditLogConnector
from connectors.cache import CacheSettings, CacheStore
from connectors.finance import FinanceConnector
from connectors.pg import PoolSettings
from connectors.registry import RegistryConnector, RegistrySourceConfig
from connectors.resilience import ResilienceSettings
from connectors.tax import TaxConnector
from connectors.traffy import TraffyConnector
from gateway import errors
from gateway.audit.checkpoints import Checkpointer, load_signing_key
from gateway.audit.store import load_key
from gateway.audit.writer import AuditRecorder, AuditWriter
from gateway.auth.api_keys import ApiKeyStore
from gateway.auth.authenticator import Authenticator
from gateway.auth.issuer import EmbeddedIssuer, embedded_trust
from gateway.auth.middleware import AuthenticationMiddleware
from gateway.auth.trust import trust_for
from gateway.execution.document_registry import DocumentRegistry
from gateway.execution.executor import Executor
from gateway.execution.trusted import ApqCache, TrustedDocuments
from gateway.http import probes, published_schema
from gateway.http.graphiql import ASSETS_PATH, graphiql_asset
from gateway.http.graphql import GraphQLHTTP
from gateway.http.lifecycle import tune_collector, wait_for_sources
from gateway.http.request_id import RequestIdMiddleware
from gateway.http.security_headers import SecurityHeadersMiddleware
from gateway.observability import tracing
from gateway.observability.logs import configure_logging
from gateway.observability.upstream import UPSTREAM_METRICS
from gateway.publishing.publication import Publication
from gateway.publishing.routes import routes as publishing_routes
from gateway.publishing.tables import Tables
from gateway.ratelimit.buckets import Buckets, buckets_for
from gateway.ratelimit.middleware import RateLimitMiddleware
from gateway.settings import Settings
from policies.catalog import load_catalog
from policies.model import load_policy
from schema import Connectors, Limits, check_policy, graphql_schema


def connectors_from(settings: Settings) -> Connectors:
    """The upstream sources the settings name, reporting to the gateway's metrics."""
    pool = PoolSettings(
        max_size=settings.db_pool_max,
        timeout=settings.upstream_timeout,
        pgbouncer=settings.pgbouncer,
    )
    resilience = ResilienceSettings(
        retries=settings.upstream_retries,
        breaker_failures=settings.breaker_failures,
        breaker_reset=settings.breaker_reset_seconds,
        concurrency=settings.upstream_concurrency,
    )
    observer = UPSTREAM_METRICS
    registry = RegistryConnector.one_database(
        settings.registry_database_url, pool, resilience, observer
    )
    if settings.registry_district_urls:
        sources = [
            RegistrySourceConfig(
                code,
                settings.registry_district_urls.get(code, settings.registry_database_url),
                f"d{code}",
            )
            for code in registry.district_codes
        ]
        registry = RegistryConnector(sources, pool, resilience, observer)
    audit_url = settings.audit_store_url
    return Connectors(
        tax=TaxConnector(settings.tax_database_url, pool, resilience, observer),
        registry=registry,
        traffy=TraffyConnector(
            settings.traffy_base_url,
            timeout=settings.upstream_timeout,
            resilience=resilience,
            observer=observer,
        ),
        finance=FinanceConnector(settings.finance_database_url, pool, resilience, observer),
        audit_log=AuditLogConnector(audit_url, replace(pool, max_size=2), observer)
        if audit_url
        else None,
        cache=CacheStore(
            CacheSettings(
                redis_url=settings.redis_url,
                ttls=settings.cache_ttls,
                stale_seconds=settings.cache_stale_seconds,
            ),
            observer,
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
        pgbouncer=settings.pgbouncer,
    )


def checkpointer_from(settings: Settings, audit: AuditRecorder) -> Checkpointer | None:
    """Signed checkpoints of the chain's head, when a checkpoint key is configured and the
    gateway writes its own audit store."""
    if settings.audit_checkpoint_key_file is None or not isinstance(audit, AuditWriter):
        return None
    return Checkpointer(
        audit,
        load_signing_key(settings.audit_checkpoint_key_file),
        settings.audit_checkpoint_file,
        settings.audit_checkpoint_interval,
    )


def authenticator_from(
    settings: Settings, issuer: EmbeddedIssuer | None, api_keys: ApiKeyStore | None
) -> Authenticator:
    trusts = [trust_for(t) for t in settings.trusted_issuers]
    if issuer is not None:
        trusts.append(embedded_trust(issuer))
    return Authenticator(
        trusts, audience=settings.jwt_audience, leeway=settings.jwt_leeway, api_keys=api_keys
    )


def create_app(
    settings: Settings,
    connectors: Connectors | None = None,
    *,
    buckets: Buckets | None = None,
    audit: AuditRecorder | None = None,
) -> Starlette:
    """The gateway for ``settings``; ``connectors``, the rate limit's ``buckets`` and the
    ``audit`` writer default to the ones the settings name."""
    connectors = connectors or connectors_from(settings)
    page_limits = Limits(
        default_page_size=settings.default_page_size, max_page_size=settings.max_page_size
    )
    schema = graphql_schema()
    policy = load_policy(Path(settings.policy_file)) if settings.policy_file else load_policy()
    # An unclassified field, or a personal one naming no data subject, stops the gateway
    # here, listing them all.
    check_policy(policy, schema)
    audit = audit or audit_writer_from(settings)
    checkpoints = checkpointer_from(settings, audit)
    registry = (
        DocumentRegistry(
            settings.gateway_database_url,
            cache_seconds=settings.trusted_documents_cache_seconds,
            timeout=settings.upstream_timeout,
            pgbouncer=settings.pgbouncer,
        )
        if settings.gateway_database_url
        else None
    )
    executor = Executor(
        schema,
        policy,
        audit,
        connectors,
        mode=settings.policy_mode,
        limits=settings.operation_limits,
        page_limits=page_limits,
        compiled=settings.compiled_execution,
        trusted=TrustedDocuments(settings.trusted_documents, registry, ApqCache(connectors.cache)),
    )
    catalog = load_catalog(Path(settings.catalog_file)) if settings.catalog_file else load_catalog()
    publication = Publication(catalog, policy, schema, Tables(executor), settings.public_base_url)
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
            pgbouncer=settings.pgbouncer,
        )
        if settings.gateway_database_url
        else None
    )
    authenticator = authenticator_from(settings, issuer, api_keys)
    graphql = GraphQLHTTP(
        executor,
        max_body_bytes=settings.max_body_bytes,
        max_batch=settings.max_batch,
        graphiql=settings.graphiql,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await asyncio.gather(*(c.start() for c in connectors.all()))
        await wait_for_sources(connectors, settings.startup_wait_seconds)
        if api_keys is not None:
            await api_keys.start()
        if registry is not None:
            await registry.start()
        await audit.start()
        if checkpoints is not None:
            await checkpoints.start()
        try:
            yield
        finally:
            # In-flight requests have finished (uvicorn waits for them): commit their records,
            # then sign the head they end at.
            await audit.stop()
            if checkpoints is not None:
                await checkpoints.stop()
            if api_keys is not None:
                await api_keys.stop()
            if registry is not None:
                await registry.stop()
            await asyncio.gather(*(c.stop() for c in connectors.all()))
            if connectors.cache is not None:
                await connectors.cache.close()

    middleware = [
        Middleware(SecurityHeadersMiddleware),  # outermost: on every answer, refusals too
        *_client_from_proxy(settings.trusted_proxies),
        Middleware(RequestIdMiddleware),
        Middleware(AuthenticationMiddleware, authenticator=authenticator),
    ]
    if settings.rate_limits is not None:
        # Before the body is read; it reads the principal authentication found.
        middleware.append(
            Middleware(
                RateLimitMiddleware,
                limits=settings.rate_limits,
                buckets=buckets if buckets is not None else buckets_for(settings.redis_url),
            )
        )
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"], name="graphql"),
            Route(published_schema.PATH, published_schema.endpoint(executor), methods=["GET"]),
            *_graphiql_assets(settings.graphiql),
            Route("/healthz", probes.healthz),
            Route("/metrics", probes.metrics_endpoint, methods=["GET"]),
            Route("/readyz", probes.readyz(connectors)),
            Route("/.well-known/jwks.json", _jwks(issuer)),
            Route("/", _root),
            *publishing_routes(publication),
        ],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.state.connectors = connectors
    app.state.issuer = issuer
    app.state.authenticator = authenticator
    app.state.audit = audit
    app.state.publication = publication
    return app


def _graphiql_assets(graphiql: bool) -> list[Route]:
    """GraphiQL's scripts and style sheets, served from the package (no CDN)."""
    if not graphiql:
        return []
    return [Route(ASSETS_PATH + "/{asset:path}", graphiql_asset, methods=["GET"])]


def _client_from_proxy(trusted_proxies: str) -> list[Middleware]:
    """The client address (rate-limit buckets, the audit log, the request line) is the TCP
    peer, unless the peer is a proxy named in ``BMA_TRUSTED_PROXIES``: then it is the
    ``X-Forwarded-For`` address that proxy saw (the right-most one no trusted proxy added)."""
    if not trusted_proxies:
        return []
    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_proxies)]


def _jwks(issuer: EmbeddedIssuer | None) -> Callable[[Request], Awaitable[Response]]:
    async def jwks(_request: Request) -> Response:
        if issuer is None:
            return JSONResponse({"error": "this gateway issues no tokens"}, status_code=404)
        with contextlib.suppress(OSError, ValueError):  # unreadable now: serve what we have
            await asyncio.to_thread(issuer.reload)  # a stat, unless the CLI rotated a key
        # Short max-age: verifiers refetch soon after a rotation.
        return JSONResponse(issuer.jwks(), headers={"cache-control": "public, max-age=300"})

    return jwks


async def _root(_request: Request) -> Response:
    """The front door is the open-data catalogue (it links to GraphiQL)."""
    return RedirectResponse("/catalog")


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer JSON with a code, like every other error."""
    assert isinstance(exc, HTTPException)
    kind = errors.MethodNotAllowed if exc.status_code == 405 else errors.NotFound
    refusal = kind(exc.detail)
    response = refusal.response()
    response.headers.update(exc.headers or {})
    return response


def create_app_from_env() -> Starlette:
    """The factory uvicorn workers call (``bma-gateway serve --workers N``): each worker is
    a fresh process, so it sets up the JSON logs (and tracing, if on) itself."""
    configure_logging()
    settings = Settings.from_env()
    if settings.tracing:
        tracing.enable()
    app = create_app(settings)
    tune_collector(settings.gc_threshold)  # what start-up built stays: out of the GC's walks
    return app
