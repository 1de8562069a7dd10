"""Helpers the tests share: SQL for expected values, a running gateway and its client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from connectors.cache import DEFAULT_TTLS
from gateway.audit.store import create_key
from gateway.demo.embedded import DatabaseUrls
from gateway.http.app import create_app
from gateway.http.serving import BackgroundServer
from gateway.settings import Settings
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
    return Settings(
        tax_database_url=db.tax,
        registry_database_url=db.registry,
        traffy_base_url=traffy_url,
        **overrides,
    )


def start_gateway(settings: Settings) -> tuple[BackgroundServer, Gateway]:
    app = create_app(settings)
    server = BackgroundServer(app).start()
    client = httpx.Client(base_url=server.url, timeout=30)
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
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"gateway did not start: {self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


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


def bearer(token: str) -> dict[str, str]:
    """The header that presents a token."""
    return {"Authorization": f"Bearer {token}"}


# The three settings without a default: enough for Settings.from_env in settings tests.
REQUIRED_ENV = {
    "BMA_TAX_DATABASE_URL": "postgresql://x/tax",
    "BMA_REGISTRY_DATABASE_URL": "postgresql://x/registry",
    "BMA_TRAFFY_BASE_URL": "http://traffy.test",
}
