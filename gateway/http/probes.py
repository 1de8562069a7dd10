"""The probes a load balancer and an orchestrator read: ``/healthz`` (the process answers),
``/readyz`` (send it traffic: sources up, not draining) and ``/metrics`` (Prometheus).

``/metrics`` tells who is using the gateway for what (operation names, audiences,
outcomes, policy denials): it answers only a principal holding ``METRICS_SCOPE``, e.g. the
token a Prometheus server scrapes with (docs/operations.md#metrics)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway import errors
from gateway.auth.middleware import authenticated
from gateway.http import lifecycle
from gateway.observability import metrics
from schema import Connectors


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def readyz(connectors: Connectors) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(_request: Request) -> Response:
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

    return endpoint


METRICS_SCOPE = "metrics:read"


async def metrics_endpoint(request: Request) -> Response:
    try:
        principal = authenticated(request.scope)
    except errors.GatewayError as refusal:  # a credential that proves nothing, or unchecked
        return refusal.response()
    if METRICS_SCOPE not in principal.scopes:
        missing = errors.ScopeRequired(METRICS_SCOPE)
        return missing.response(401 if principal.kind == "anonymous" else 403)
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)
