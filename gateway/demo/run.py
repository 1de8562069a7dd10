"""``bma-gateway demo``: everything on one machine with only Python.

An embedded PostgreSQL (or ``--database-url``), the three upstream databases seeded once,
the gateway's own database (API keys), the Traffy Fondue stand-in on a loopback port, the
embedded token issuer, and the gateway with GraphiQL. It prints a working credential for
each audience.

Its gateway reads the ``BMA_*`` settings (and ``REDIS_URL``) from the environment as
``serve`` does — rate limits, operation limits, caches, the policy … — except the demo's own
wiring (``WIRING``: its databases, keys and stand-in), with the demo's defaults where nothing
is set.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg
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
from gateway.http import preflight
from gateway.http.app import create_app
from gateway.http.lifecycle import tune_collector
from gateway.http.serving import BackgroundServer, server_options
from gateway.observability import tracing
from gateway.settings import DISTRICT_URL, Settings, redacted_url

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
    host: str | None = None  # default: BMA_HOST, else 127.0.0.1
    port: int | None = None  # default: BMA_PORT, else 8000
    traffy_port: int = 0
    state_dir: Path | None = None  # issuer key and demo API key; default beside the data
    # The BMA_* settings read as `serve` reads them; None: the process's environment (over
    # BMA_CONFIG_FILE's lines).
    environment: Mapping[str, str] | None = None


# The demo's own wiring: where its sources, keys and stand-in are. Set by the demo whatever
# the environment says (a value there is ignored, with a note); every other setting is read
# from the environment as `serve` reads it.
WIRING = (
    "BMA_TAX_DATABASE_URL",
    "BMA_REGISTRY_DATABASE_URL",
    "BMA_FINANCE_DATABASE_URL",
    "BMA_TRAFFY_BASE_URL",
    "BMA_GATEWAY_DATABASE_URL",
    "BMA_AUDIT_DATABASE_URL",
    "BMA_ISSUER_KEY_FILE",
    "BMA_AUDIT_KEY_FILE",
    "BMA_AUDIT_CHECKPOINT_KEY_FILE",
    "BMA_AUDIT_CHECKPOINT_FILE",
    "BMA_WORKERS",  # one process: the demo serves an app object, not a factory
)
PENDING_URL = "postgresql://demo.invalid/pending"  # until the databases are ready


def prepare_databases(server_url: str, scale: SeedScale | None = None) -> tuple[DatabaseUrls, bool]:
    """Create and seed the four upstream databases; returns their URLs and whether it seeded."""

    async def prepare() -> tuple[DatabaseUrls, bool]:
        urls = await ensure_databases(server_url)
        seeded = await ensure_seeded(urls, scale or SeedScale())
        return urls, seeded

    return asyncio.run(prepare())


def demo_environment(
    given: Mapping[str, str], options: DemoOptions, state_dir: Path, wiring: Mapping[str, str]
) -> dict[str, str]:
    """The settings the demo's gateway reads: ``given`` (the environment), the demo's own
    defaults where it sets nothing, ``--host``/``--port`` over it, the wiring over all."""
    env = {
        "BMA_AUDIT_CHECKPOINT_INTERVAL": str(CHECKPOINT_SECONDS),
        # Documents by hash (documentId, Apollo's persisted queries) beside full ones.
        "BMA_TRUSTED_DOCUMENTS": "allow",
        **{k: v for k, v in given.items() if not k.startswith(DISTRICT_URL)},
    }
    if options.host is not None:
        env["BMA_HOST"] = options.host
    if options.port is not None:
        env["BMA_PORT"] = str(options.port)
    env.update(
        {
            "BMA_ISSUER_KEY_FILE": str(state_dir / ISSUER_KEY_FILE),
            "BMA_AUDIT_KEY_FILE": str(state_dir / AUDIT_KEY_FILE),
            "BMA_AUDIT_CHECKPOINT_KEY_FILE": str(state_dir / CHECKPOINT_KEY_FILE),
            "BMA_AUDIT_CHECKPOINT_FILE": str(state_dir / CHECKPOINT_FILE),
            "BMA_WORKERS": "1",
            **wiring,
        }
    )
    return env


def _pending(traffy_url: str = "http://demo.invalid") -> dict[str, str]:
    return {
        "BMA_TAX_DATABASE_URL": PENDING_URL,
        "BMA_REGISTRY_DATABASE_URL": PENDING_URL,
        "BMA_FINANCE_DATABASE_URL": PENDING_URL,
        "BMA_GATEWAY_DATABASE_URL": PENDING_URL,
        "BMA_AUDIT_DATABASE_URL": PENDING_URL,
        "BMA_TRAFFY_BASE_URL": traffy_url,
    }


def run_demo(options: DemoOptions) -> None:
    """The demo; ConfigError (every bad setting) or StartRefused (a port taken, a database
    unreachable) before anything is printed or started where it can be known then."""
    given = preflight.environment() if options.environment is None else options.environment
    state_dir = options.state_dir or default_state_dir()
    _ensure_keys(state_dir)
    # The environment checked before anything starts: a bad setting or a taken port is
    # reported at once, not after the databases are ready and the banner is printed.
    checked = preflight.checked(
        demo_environment(given, options, state_dir, _pending()), databases=False
    )
    preflight.check_port(checked.settings.host, checked.settings.port, "BMA_PORT")
    if options.traffy_port:
        preflight.check_port("127.0.0.1", options.traffy_port)
    for name in sorted(n for n in given if (n in WIRING or n.startswith(DISTRICT_URL))):
        if given[name].strip():
            print(f"Note             {name} is ignored: the demo sets it itself")

    embedded = None  # keeps the embedded server alive while the demo runs
    if options.database_url:
        server_url = options.database_url
        print(f"PostgreSQL       {redacted_url(server_url)} (given)")
    else:
        data_dir = options.data_dir or default_data_dir()
        server_url, embedded = start_embedded(data_dir)
        print(f"PostgreSQL       embedded, data in {data_dir}")

    started = time.monotonic()
    try:
        urls, seeded = prepare_databases(server_url)
    except (TimeoutError, OSError, asyncpg.PostgresError, ValueError) as exc:
        raise preflight.StartRefused(
            f"cannot prepare the demo's databases at {redacted_url(server_url)}: "
            f"{str(exc).strip() or type(exc).__name__}; check --database-url (its user must "
            "be able to create databases and roles)",
            status=1,
        ) from None
    verb = "seeded" if seeded else "reused seeded data"
    print(
        f"Upstream data    {verb} in {time.monotonic() - started:.1f} s (bma_tax, bma_registry, bma_traffy, bma_finance)"
    )

    store = asyncio.run(TicketStore.load(urls.traffy))
    traffy = BackgroundServer(create_traffy_app(store), port=options.traffy_port).start()
    print(
        f"Traffy stand-in  {traffy.url}/share/teamchadchart/search ({len(store.tickets)} tickets)"
    )

    # The owner creates the audit store and the roles; the gateway logs in as one that
    # only reads the upstream databases and only appends to the audit log.
    login = asyncio.run(ensure_gateway_roles(urls, gateway_password(state_dir)))
    print(f"Gateway role     {LOGIN_ROLE}: reads upstream data, appends audit records")
    wiring = {
        "BMA_TAX_DATABASE_URL": login.tax,
        "BMA_REGISTRY_DATABASE_URL": login.registry,
        "BMA_FINANCE_DATABASE_URL": login.finance,
        "BMA_TRAFFY_BASE_URL": traffy.url,
        "BMA_GATEWAY_DATABASE_URL": login.gateway,
        "BMA_AUDIT_DATABASE_URL": login.gateway,
    }
    settings = Settings.from_env(demo_environment(given, options, state_dir, wiring))
    if settings.tracing:
        tracing.enable()
    issuer = EmbeddedIssuer.open(state_dir / ISSUER_KEY_FILE, audience=settings.jwt_audience)
    api_key = ensure_demo_key(urls.gateway, state_dir / DEMO_KEY_FILE)
    _banner(settings)
    _print_credentials(settings, issuer, [api_key_credential(api_key), *demo_tokens(issuer)])
    print("Ctrl-C stops everything.")
    try:
        app = create_app(settings)
        tune_collector(settings.gc_threshold)
        uvicorn.run(app, **server_options(settings), log_level="info")
    finally:
        traffy.stop()
        del embedded
        print("Stopped.")


def _ensure_keys(state_dir: Path) -> None:
    """The chain key, and the key that signs the chain's head every minute and at stop. Here
    beside the data for a demo; in production the signing key lives where the database's
    owner cannot read it (docs/audit.md)."""
    audit_key = state_dir / AUDIT_KEY_FILE
    if not audit_key.exists():
        create_key(audit_key)
    checkpoint_key = state_dir / CHECKPOINT_KEY_FILE
    if not checkpoint_key.exists():
        create_signing_key(checkpoint_key)


def _banner(settings: Settings) -> None:
    url = f"http://{settings.host}:{settings.port}/graphql"
    print(f"Gateway          {url}  (GraphiQL in a browser)")
    print(f"Open data        http://{settings.host}:{settings.port}/catalog  (the catalogue)")
    print(
        f"Access policy    {settings.policy_file or 'policies/policy.toml'}, mode {settings.policy_mode}"
    )
    print("Audit log        every restricted read is recorded; check the chain with")
    print(
        f"  BMA_GATEWAY_DATABASE_URL='{redacted_url(settings.gateway_database_url or '')}' "
        f"BMA_AUDIT_KEY_FILE={settings.audit_key_file} bma-gateway audit verify"
    )
    print(
        f"  and, once the head is signed (every {settings.audit_checkpoint_interval:.0f} s and "
        "at stop), against "
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
