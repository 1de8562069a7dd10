"""Helpers the tests share: SQL for expected values, a running gateway and its client,
credentials, time without sleeping, and audit chains to verify or tamper with."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import httpx
import pytest
from graphql import build_client_schema, get_introspection_query, print_schema
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base import UpstreamUnavailable
from connectors.cache import DEFAULT_TTLS
from connectors.resilience import CircuitBreaker
from gateway.audit.store import Verification, append, create_key, ensure_store, verify
from gateway.auth.api_keys import create_key as create_api_key
from gateway.auth.api_keys import ensure_schema
from gateway.auth.authenticator import Authenticator
from gateway.auth.issuer import EmbeddedIssuer
from gateway.cli import main as cli_main
from gateway.demo.embedded import DatabaseUrls
from gateway.errors import Unauthenticated
from gateway.http.app import create_app
from gateway.http.media_types import CLIENT_ACCEPT
from gateway.http.serving import BackgroundServer
from gateway.settings import Settings
from policies.principal import Principal

if TYPE_CHECKING:
    from playwright.sync_api import Page
from schema import Connectors


def run(coro: Any) -> Any:
    """Run a coroutine from a synchronous test (each call gets a fresh event loop)."""
    return asyncio.run(coro)


def sql(url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of a query against a test database, for expected values."""

    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url)
        try:
            return [dict(r) for r in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    return run(fetch())


@dataclass
class Gateway:
    """A running gateway on a loopback port and the connectors behind it."""

    url: str
    connectors: Connectors
    client: httpx.Client
    headers: dict[str, str] = field(default_factory=dict)  # the credential every call sends

    def acting_as(self, headers: dict[str, str]) -> Gateway:
        """The same gateway, called with other credentials."""
        return replace(self, headers=headers)

    def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> httpx.Response:
        payload: dict[str, Any] = {"query": query, **extra}
        if variables is not None:
            payload["variables"] = variables
        return self.client.post(
            "/graphql", json=payload, headers=self.headers if headers is None else headers
        )

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON body of a query that must succeed without errors."""
        response = self.post(query, variables)
        body = response.json()
        assert response.status_code == 200, body
        assert "errors" not in body, body["errors"]
        return body["data"]

    def reset_counters(self) -> None:
        for connector in self.connectors.all():
            connector.counter.reset()


INTROSPECTION = get_introspection_query(descriptions=True, input_value_deprecation=True)


def introspected_sdl(gateway: Gateway, headers: dict[str, str]) -> str:
    """print_schema of the schema the caller's introspection answers over HTTP: what
    ``schema print`` and ``/graphql/schema.graphql`` must give it."""
    response = gateway.post(INTROSPECTION, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return print_schema(build_client_schema(body["data"]))


@cache
def issuer_key_file() -> Path:
    """The embedded issuer's key file every test gateway of this session trusts."""
    return Path(tempfile.mkdtemp(prefix="bma-test-issuer-")) / "issuer-key.pem"


@cache
def audit_key_file() -> Path:
    """The audit chain key every test gateway of this session writes with."""
    path = Path(tempfile.mkdtemp(prefix="bma-test-audit-")) / "audit.key"
    create_key(path)
    return path


def settings_for(db: DatabaseUrls, traffy_url: str, **overrides: Any) -> Settings:
    # Small pools: several gateways run at once in a session and the embedded server
    # accepts 100 connections.
    overrides.setdefault("db_pool_max", 4)
    overrides.setdefault("gateway_database_url", db.gateway)
    overrides.setdefault("issuer_key_file", issuer_key_file())
    overrides.setdefault("audit_key_file", audit_key_file())
    # Caches off unless a test turns them on: most tests count or break upstream calls.
    overrides.setdefault("cache_ttls", dict.fromkeys(DEFAULT_TTLS, 0))
    # Many tests call one gateway from one address: rate limits are tested on their own.
    overrides.setdefault("rate_limits", None)
    # Tests start gateways with sources down on purpose: report at once, don't wait.
    overrides.setdefault("startup_wait_seconds", 0)
    # Subprocess gateways stop at once; the drain is tested on its own.
    overrides.setdefault("drain_seconds", 0)
    overrides.setdefault("finance_database_url", db.finance)
    return Settings(
        tax_database_url=db.tax,
        registry_database_url=db.registry,
        traffy_base_url=traffy_url,
        **overrides,
    )


# What a GraphQL-over-HTTP client sends: the tests' client reads the status codes of
# application/graphql-response+json. tests/http/test_graphql_over_http.py covers the legacy
# application/json answers.
GRAPHQL_ACCEPT = CLIENT_ACCEPT


def start_gateway(
    settings: Settings, connectors: Connectors | None = None
) -> tuple[BackgroundServer, Gateway]:
    """A gateway for ``settings`` on a loopback port (over ``connectors`` when given), and a
    client asking for ``GRAPHQL_ACCEPT``."""
    app = create_app(settings, connectors)
    server = BackgroundServer(app).start()
    client = httpx.Client(base_url=server.url, timeout=30, headers={"accept": GRAPHQL_ACCEPT})
    return server, Gateway(server.url, app.state.connectors, client)


def fresh_database(server_url: str, name: str) -> str:
    """An empty database ``name`` on the test server (dropped first if it exists): for tests
    that must count exactly what they wrote, such as audit stores."""
    from gateway.demo.embedded import database_url

    async def create() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    run(create())
    return database_url(server_url, name)


@dataclass
class LoopbackPage:
    """A browser page that may reach the gateway's address only, with the requests it
    refused (anything else: the pages must work on a closed network) and the errors the
    pages logged (a Content-Security-Policy refusal is logged as one)."""

    page: Page
    refused: list[str]
    errors: list[str]


class GatewayProcess:
    """``bma-gateway serve`` in a subprocess, its log in a file."""

    def __init__(self, settings: Settings, log_dir: Path, **env: str) -> None:
        self.port = settings.port
        self.env = {**os.environ, **settings.to_env(), **env}
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "gateway.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql(self) -> str:
        return f"{self.url}/graphql"

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_up(self, timeout: float = 60) -> None:
        process = self.process
        assert process is not None

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log()}")
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            return False

        wait_until(up, timeout=timeout, what=f"gateway serving: {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def unavailable(reason: str) -> None:
    """Skip a test that needs a binary this machine lacks, with the reason; under CI
    (``CI`` set) fail instead: ``.ci/run`` installs what the tests need."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: .ci/run installs it, so CI must run this test")
    pytest.skip(reason)


def finance_officer_token(issuer: Any, subject: str | None = None) -> str:
    """A finance officer's token (confidential, ``tax:read tax:personal``, purpose
    tax-collection): the principal the tests use for restricted, audited reads."""
    return issuer.issue(
        "agency",
        "bma-finance",
        "tax:read tax:personal",
        "confidential",
        purpose="tax-collection",
        ttl=timedelta(hours=1),
        subject=subject,
    )


def partner_token(issuer: Any, subject: str | None = None) -> str:
    """A partner's token (internal, ``tax:read``, purpose research): the principal the tests
    rate-limit and mask for; a subject of its own gives it a rate-limit bucket of its own."""
    return issuer.issue(
        "partner",
        "utility-partner",
        "tax:read",
        "internal",
        purpose="research",
        ttl=timedelta(hours=1),
        subject=subject,
    )


def bearer(token: str) -> dict[str, str]:
    """The header that presents a token."""
    return {"Authorization": f"Bearer {token}"}


# The three settings without a default: enough for Settings.from_env in settings tests.
REQUIRED_ENV = {
    "BMA_TAX_DATABASE_URL": "postgresql://x/tax",
    "BMA_REGISTRY_DATABASE_URL": "postgresql://x/registry",
    "BMA_FINANCE_DATABASE_URL": "postgresql://x/finance",
    "BMA_TRAFFY_BASE_URL": "http://traffy.test",
}


# ---------------------------------------------------------------------------- credentials

QUERY = "{ districts { code } }"  # a public query: any accepted credential is answered
IDP = "https://idp.example.test"  # an outside identity provider's issuer name


def authenticate(authenticator: Authenticator, headers: dict[str, str]) -> Principal:
    return run(authenticator.authenticate(headers))


def reason_of(authenticator: Authenticator, headers: dict[str, str]) -> str:
    with pytest.raises(Unauthenticated) as refused:
        authenticate(authenticator, headers)
    return refused.value.reason


class JwksServer:
    """An identity provider's JWKS endpoint on a loopback port, counting fetches."""

    def __init__(self, issuer: EmbeddedIssuer) -> None:
        self.issuer = issuer
        self.fetches = 0
        app = Starlette(routes=[Route("/jwks", self.serve)])
        self.server = BackgroundServer(app)

    async def serve(self, _request: Request) -> Response:
        self.fetches += 1
        return JSONResponse(self.issuer.jwks())

    @property
    def url(self) -> str:
        return f"{self.server.url}/jwks"


async def with_conn(url: str, operation: Any) -> Any:
    """``operation(conn)`` on a connection to the gateway database, its schema ensured."""
    conn = await asyncpg.connect(url)
    try:
        await ensure_schema(conn)
        return await operation(conn)
    finally:
        await conn.close()


def new_key(url: str, name: str = "test-app", org: str = "test-org") -> tuple[Any, str]:
    """A new API key: its record and the key itself."""
    return run(with_conn(url, lambda conn: create_api_key(conn, name, org)))


def token_claims(token: str) -> dict[str, Any]:
    """A token's claims, unverified."""
    import jwt

    return jwt.decode(token, options={"verify_signature": False})


# ---------------------------------------------------------------- time without sleeping
# Code that measures time takes a clock (``clock=``: breakers, token buckets, the Redis
# fallback, cache entries' age); a test gives it a ``ManualClock`` and moves it on instead of
# waiting. Where something real must happen first (a process serving, a load running), the
# test waits for exactly that with ``wait_until``, bounded by a deadline.

T = TypeVar("T")


class ManualClock:
    """A monotonic clock that stands still until the test moves it."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def breakers_on(clock: Callable[[], float], *connectors: Any) -> None:
    """Give every source of ``connectors`` a fresh (closed) breaker with its settings, on
    ``clock``: a test then decides when a breaker's reset interval has passed."""
    for connector in connectors:
        for source, guard in connector.guards().items():
            guard.breaker = CircuitBreaker(
                source,
                guard.settings.breaker_failures,
                guard.settings.breaker_reset,
                clock,
                guard.observer,
            )


def wait_until(condition: Callable[[], T], *, timeout: float = 10.0, what: str = "true value") -> T:
    """``condition()``'s first true value, asked again every few milliseconds (the pause
    between two looks is the only sleep); AssertionError when ``timeout`` seconds pass
    without one."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:g} s")
        time.sleep(0.01)


# ---------------------------------------------------------------------------- audit chains
# A chain of CHAIN_LENGTH records in a database of its own (the ``make_chain`` fixture in
# conftest.py builds one), read by the store, writer and `bma-gateway audit` tests.

CHAIN_KEY = bytes.fromhex("5a" * 32)  # the chain key every chain here is written with
OTHER_CHAIN_KEY = bytes.fromhex("a5" * 32)  # an attacker's: right length, wrong secret
CHAIN_T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHAIN_LENGTH = 20  # records in every test chain


def record_at(n: int) -> datetime:
    """The time of record ``n``: one an hour from the start of 2026."""
    return CHAIN_T0 + timedelta(hours=n)


def audit_entry(n: int, request: str = "r") -> dict[str, Any]:
    """An entry shaped like the gateway's (``gateway.audit.access_entry``)."""
    owner = f"owner:{n}"
    return {
        "requestId": f"{request}{n}",
        "subject": f"officer-{n % 3}",
        "organisation": "สำนักงานเขตพระนคร" if n % 2 else "bma-finance",
        "audience": "agency",
        "issuer": "bma-issuer",
        "credentialId": None,
        "clientAddress": "10.1.2.3",
        "purpose": "tax-collection",
        "lawfulBasis": "PDPA s.24(4) ภารกิจเพื่อประโยชน์สาธารณะ",
        "operationName": "ParcelForTax",
        "documentHash": hashlib.sha256(f"query {n}".encode()).hexdigest(),
        "outcome": "allowed",
        "fields": [
            {"field": "Owner.name", "access": "clear", "records": [owner]},
            {"field": "Owner.nationalId", "access": "masked", "records": [owner]},
        ],
        "records": [owner],
        "subjects": [f"id:{1234567890000 + n}"],
    }


Statement = str | tuple[Any, ...]  # SQL, or SQL and its arguments


@dataclass
class Chain:
    """A chain of ``CHAIN_LENGTH`` records in its own database, and a file holding its key."""

    url: str
    key_file: Path

    def verify(self, key: bytes = CHAIN_KEY) -> Verification:
        async def check() -> Verification:
            conn = await asyncpg.connect(self.url)
            try:
                return await verify(conn, key)
            finally:
                await conn.close()

        return run(check())

    def hash_of(self, seq: int) -> bytes:
        return bytes(sql(self.url, "SELECT hash FROM audit.records WHERE seq = $1", seq)[0]["hash"])

    def tamper(self, *statements: Statement) -> None:
        """Run statements in one transaction as a superuser with the triggers silenced."""

        async def rewrite() -> None:
            conn = await asyncpg.connect(self.url)
            try:
                await conn.execute("SET session_replication_role = replica")
                async with conn.transaction():
                    for statement in statements:
                        query, *args = (statement,) if isinstance(statement, str) else statement
                        await conn.execute(query, *args)
            finally:
                await conn.close()

        run(rewrite())

    def cli_verify(
        self, capsys: pytest.CaptureFixture[str], key_file: Path | None = None
    ) -> CliRun:
        return audit_cli(
            capsys,
            "audit",
            "verify",
            "--database-url",
            self.url,
            "--key-file",
            str(key_file or self.key_file),
        )


@dataclass
class CliRun:
    code: int
    out: str
    err: str


def audit_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliRun:
    capsys.readouterr()  # only this command's output
    code = cli_main(list(argv))
    captured = capsys.readouterr()
    return CliRun(code, captured.out, captured.err)


def write_key(path: Path, key: bytes) -> Path:
    path.write_text(key.hex() + "\n", "ascii")
    return path


def verified(url: str) -> Verification:
    """The store's chain, verified on a connection of its own."""

    async def check() -> Verification:
        conn = await asyncpg.connect(url)
        try:
            return await verify(conn, CHAIN_KEY)
        finally:
            await conn.close()

    return run(check())


def build_chain(server_url: str, key_dir: Path, case: str) -> Chain:
    """A verified chain of CHAIN_LENGTH records in ``bmatest_chain_<case>``, its key in
    ``key_dir``."""
    url = fresh_database(server_url, f"bmatest_chain_{case}")

    async def fill() -> None:
        conn = await asyncpg.connect(url)
        try:
            await ensure_store(conn)
            # Several transactions, so links between batches are covered too.
            for batch in (range(1, 6), range(6, 7), range(7, CHAIN_LENGTH + 1)):
                await append(conn, CHAIN_KEY, [(record_at(n), audit_entry(n)) for n in batch])
        finally:
            await conn.close()

    run(fill())
    chain = Chain(url, write_key(key_dir / f"{case}.key", CHAIN_KEY))
    assert chain.verify().intact  # the break each test finds is its own doing
    return chain


class BatchUpstream:
    """A connector batch method whose answers and failures the test controls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.down = False

    async def fetch(self, keys: list[str]) -> dict[str, Any]:
        self.calls.append(list(keys))
        if self.down:
            raise UpstreamUnavailable("test-source", "connection refused")
        return {k: {"key": k, "value": Decimal("1.50")} for k in keys}
