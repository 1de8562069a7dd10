"""The compose stack's helper: ``python demo_stack.py seed`` or ``python demo_stack.py traffy``.

It uses only the installed ``bma-gateway`` distribution (``bench/`` is not in the image).

``seed`` (a one-shot; safe to run again: everything is created only if missing)
    creates ``{prefix}_tax``, ``{prefix}_registry``, ``{prefix}_traffy`` and
    ``{prefix}_gateway`` on ``BMA_DEMO_SERVER_URL`` and seeds the first three with the demo's
    synthetic data; creates the audit store (schema ``audit``) and the API key table in the
    gateway database, and the gateway's least-privileged login ``bma_gateway_app`` (password
    ``BMA_DEMO_GATEWAY_DB_PASSWORD``) with its grants (``gateway.demo.roles``); writes the audit chain key and the embedded issuer's key into
    ``BMA_DEMO_STATE_DIR`` if they are missing; keeps the demo API key there; and prints a
    credential for each audience, as ``bma-gateway demo`` does.

``traffy``
    serves the Traffy Fondue stand-in (tickets from ``BMA_TRAFFY_DATABASE_URL``) on
    ``BMA_HOST``:``BMA_PORT``, with ``GET /healthz`` for the image's health check.

Environment: ``BMA_DEMO_SERVER_URL`` (a PostgreSQL URL whose user may create databases and
roles), ``BMA_DEMO_GATEWAY_DB_PASSWORD``,
``BMA_DEMO_PREFIX`` (default ``bma``), ``BMA_DEMO_STATE_DIR`` (default
``/var/lib/bma-gateway``), ``BMA_DEMO_SCALE`` (``full``, the default, or ``small``: a few
hundred rows, for trying the stack quickly), ``BMA_TRAFFY_DATABASE_URL``, ``BMA_HOST``,
``BMA_PORT``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import asyncpg

ISSUER_KEY_FILE = "issuer-key.pem"
AUDIT_KEY_FILE = "audit.key"
DEMO_KEY_FILE = "demo-api-key"


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, "").strip() or default
    if not value:
        sys.exit(f"demo_stack: set {name}")
    return value


async def _wait_for(url: str, seconds: float = 60.0) -> None:
    """PostgreSQL may accept connections a moment after its health check first passes."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            if time.monotonic() > deadline:
                sys.exit(f"demo_stack: PostgreSQL not reachable: {exc}")
            await asyncio.sleep(1)
        else:
            await conn.close()
            return


def seed() -> int:
    from gateway.audit import store as audit_store
    from gateway.auth.issuer import EmbeddedIssuer
    from gateway.demo.credentials import api_key_credential, demo_tokens, ensure_demo_key
    from gateway.demo.embedded import ensure_databases
    from gateway.demo.roles import LOGIN_ROLE, ensure_gateway_roles
    from gateway.demo.seed import SeedScale, ensure_seeded

    server_url = _env("BMA_DEMO_SERVER_URL")
    gateway_password = _env("BMA_DEMO_GATEWAY_DB_PASSWORD")
    prefix = _env("BMA_DEMO_PREFIX", "bma")
    state_dir = Path(_env("BMA_DEMO_STATE_DIR", "/var/lib/bma-gateway"))
    scale_name = _env("BMA_DEMO_SCALE", "full")
    if scale_name not in ("full", "small"):
        sys.exit("demo_stack: BMA_DEMO_SCALE is full or small")
    scale = (
        SeedScale()
        if scale_name == "full"
        else SeedScale(parcels=500, registrations=200, tickets=500, building_permits_per_district=2)
    )

    async def databases() -> tuple[object, bool]:
        await _wait_for(server_url)
        urls = await ensure_databases(server_url, prefix)
        seeded = await ensure_seeded(urls, scale)
        # The audit store and key table too: the replicas' role may not create them.
        await ensure_gateway_roles(urls, gateway_password)
        return urls, seeded

    started = time.monotonic()
    urls, seeded = asyncio.run(databases())
    verb = "seeded" if seeded else "found seeded"
    print(
        f"upstream data {verb} in {time.monotonic() - started:.1f} s "
        f"({prefix}_tax, {prefix}_registry, {prefix}_traffy, {prefix}_finance); audit store and API keys "
        f"in {prefix}_gateway; the gateway logs in as {LOGIN_ROLE}",
        flush=True,
    )

    state_dir.mkdir(parents=True, exist_ok=True)
    audit_key = state_dir / AUDIT_KEY_FILE
    if audit_key.exists():
        audit_store.load_key(audit_key)  # refuse to go on with a damaged key
        print(f"audit chain key {audit_key} (kept)")
    else:
        audit_store.create_key(audit_key)
        print(f"audit chain key {audit_key} (new)")
    issuer_key = state_dir / ISSUER_KEY_FILE
    existed = issuer_key.exists()
    issuer = EmbeddedIssuer.open(issuer_key)
    print(f"issuer key {issuer_key} ({'kept' if existed else 'new'}), kid {issuer.current.kid}")

    api_key = ensure_demo_key(urls.gateway, state_dir / DEMO_KEY_FILE)
    print("demo credentials (tokens valid 12 h; print new ones with `bma-gateway token issue`):")
    for credential in [api_key_credential(api_key), *demo_tokens(issuer)]:
        print(f"  {credential.label}")
        print(f"    export {credential.variable}='{credential.value}'")
    return 0


def traffy() -> int:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from gateway.demo.traffy_standin import TicketStore, create_traffy_app

    url = _env("BMA_TRAFFY_DATABASE_URL")

    async def load() -> TicketStore:
        await _wait_for(url)
        return await TicketStore.load(url)

    store = asyncio.run(load())
    print(f"Traffy Fondue stand-in: {len(store.tickets)} tickets", flush=True)

    async def healthz(_request: object) -> JSONResponse:
        return JSONResponse({"status": "ok", "tickets": len(store.tickets)})

    app = Starlette(routes=[Route("/healthz", healthz), Mount("/", app=create_traffy_app(store))])
    uvicorn.run(
        app,
        host=_env("BMA_HOST", "0.0.0.0"),
        port=int(_env("BMA_PORT", "8080")),
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    commands = {"seed": seed, "traffy": traffy}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit("usage: demo_stack.py seed|traffy")
    sys.exit(commands[sys.argv[1]]())
