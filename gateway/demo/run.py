"""``bma-gateway demo``: everything on one machine with only Python.

An embedded PostgreSQL (or ``--database-url``), the three upstream databases seeded once,
the gateway's own database (API keys), the Traffy Fondue stand-in on a loopback port, the
embedded token issuer, and the gateway with GraphiQL. It prints a working credential for
each audience.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import uvicorn

from gateway.audit.checkpoints import create_signing_key
from gateway.audit.store import create_key
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.credentials import (
    Credential,
    api_key_credential,
    demo_tokens,
    ensure_demo_key,
)
from gateway.demo.embedded import DatabaseUrls, default_data_dir, ensure_databases, start_embedded
from gateway.demo.roles import LOGIN_ROLE, ensure_gateway_roles, gateway_password
from gateway.demo.seed import SeedScale, ensure_seeded
from gateway.demo.traffy_standin import TicketStore, create_traffy_app
from gateway.http.app import create_app
from gateway.http.serving import BackgroundServer, server_options
from gateway.settings import Settings

EXAMPLE_QUERY = (
    "{ districts { code nameTh complaintStats { total } "
    "taxRevenue(year: 2025) { collected } businessCount } }"
)
CREDENTIAL_QUERY = '{ district(code: \\"1039\\") { nameEn businessCount } }'
ISSUER_KEY_FILE = "issuer-key.pem"
AUDIT_KEY_FILE = "audit.key"
CHECKPOINT_KEY_FILE = "audit-checkpoint.key"
CHECKPOINT_FILE = "audit-checkpoints.jsonl"
CHECKPOINT_SECONDS = 60.0
DEMO_KEY_FILE = "demo-api-key"


def default_state_dir() -> Path:
    """Where the demo keeps its issuer key and its API key, beside the embedded data."""
    return default_data_dir().parent


@dataclass(frozen=True)
class DemoOptions:
    database_url: str | None = None
    data_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    traffy_port: int = 0
    state_dir: Path | None = None  # issuer key and demo API key; default beside the data


def prepare_databases(server_url: str, scale: SeedScale | None = None) -> tuple[DatabaseUrls, bool]:
    """Create and seed the four upstream databases; returns their URLs and whether it seeded."""

    async def prepare() -> tuple[DatabaseUrls, bool]:
        urls = await ensure_databases(server_url)
        seeded = await ensure_seeded(urls, scale or SeedScale())
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
        f"Upstream data    {verb} in {time.monotonic() - started:.1f} s (bma_tax, bma_registry, bma_traffy, bma_finance)"
    )

    store = asyncio.run(TicketStore.load(urls.traffy))
    traffy = BackgroundServer(create_traffy_app(store), port=options.traffy_port).start()
    print(
        f"Traffy stand-in  {traffy.url}/share/teamchadchart/search ({len(store.tickets)} tickets)"
    )

    state_dir = options.state_dir or default_state_dir()
    audit_key = state_dir / AUDIT_KEY_FILE
    if not audit_key.exists():
        create_key(audit_key)
    # The chain's head signed every minute and at stop. Here beside the data for a demo; in
    # production the key lives where the database's owner cannot read it (docs/audit.md).
    checkpoint_key = state_dir / CHECKPOINT_KEY_FILE
    if not checkpoint_key.exists():
        create_signing_key(checkpoint_key)
    # The owner creates the audit store and the roles; the gateway logs in as one that
    # only reads the upstream databases and only appends to the audit log.
    login = asyncio.run(ensure_gateway_roles(urls, gateway_password(state_dir)))
    print(f"Gateway role     {LOGIN_ROLE}: reads upstream data, appends audit records")
    settings = Settings(
        tax_database_url=login.tax,
        registry_database_url=login.registry,
        finance_database_url=login.finance,
        traffy_base_url=traffy.url,
        host=options.host,
        port=options.port,
        gateway_database_url=login.gateway,
        issuer_key_file=state_dir / ISSUER_KEY_FILE,
        audit_key_file=audit_key,
        audit_checkpoint_key_file=checkpoint_key,
        audit_checkpoint_file=state_dir / CHECKPOINT_FILE,
        audit_checkpoint_interval=CHECKPOINT_SECONDS,
        # Documents by hash (documentId, Apollo's persisted queries) beside full ones.
        trusted_documents="allow",
    )
    issuer = EmbeddedIssuer.open(state_dir / ISSUER_KEY_FILE, audience=settings.jwt_audience)
    api_key = ensure_demo_key(urls.gateway, state_dir / DEMO_KEY_FILE)
    _banner(settings)
    _print_credentials(settings, issuer, [api_key_credential(api_key), *demo_tokens(issuer)])
    print("Ctrl-C stops everything.")
    try:
        uvicorn.run(create_app(settings), **server_options(settings), log_level="info")
    finally:
        traffy.stop()
        del embedded
        print("Stopped.")


def _banner(settings: Settings) -> None:
    url = f"http://{settings.host}:{settings.port}/graphql"
    print(f"Gateway          {url}  (GraphiQL in a browser)")
    print(f"Open data        http://{settings.host}:{settings.port}/catalog  (the catalogue)")
    print(
        f"Access policy    {settings.policy_file or 'policies/policy.toml'}, mode {settings.policy_mode}"
    )
    print("Audit log        every restricted read is recorded; check the chain with")
    print(
        f"  BMA_GATEWAY_DATABASE_URL='{_redact(settings.gateway_database_url or '')}' "
        f"BMA_AUDIT_KEY_FILE={settings.audit_key_file} bma-gateway audit verify"
    )
    print(
        f"  and, once the head is signed (every {CHECKPOINT_SECONDS:.0f} s and at stop), against "
        "the signed checkpoints too (a truncated log is then found):"
    )
    print(
        f"  ... audit verify --checkpoints {settings.audit_checkpoint_file} "
        f"--checkpoint-key {settings.audit_checkpoint_key_file}.pub"
    )
    print("Try:")
    print(f"  curl -s {url} -H 'content-type: application/json' \\")
    print(f'    -d \'{{"query": "{EXAMPLE_QUERY}"}}\'')


def _print_credentials(
    settings: Settings, issuer: EmbeddedIssuer, credentials: list[Credential]
) -> None:
    url = f"http://{settings.host}:{settings.port}/graphql"
    print(
        f"Credentials      tokens valid 12 h, signed by {issuer.issuer} "
        f"(key {issuer.path}); the API key until revoked"
    )
    for credential in credentials:
        print(f"  {credential.label}")
        print(f"    export {credential.variable}='{credential.value}'")
        print(
            f"    curl -s {url} -H 'content-type: application/json' "
            f'-H "{credential.header}" -d \'{{"query": "{CREDENTIAL_QUERY}"}}\''
        )


def _redact(url: str) -> str:
    """A database URL for printing: no password, in the user part or in the query."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostinfo}"
    query = "&".join(
        f"{key}=***" if key.lower() in ("password", "sslpassword") else f"{key}={value}"
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
