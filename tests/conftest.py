"""Shared test fixtures: real PostgreSQL, the seeded upstream data, real HTTP servers.

PostgreSQL is embedded (pgserver, in a temporary directory) unless BMA_TEST_DATABASE_URL
names a server, in which case the test databases are created there as ``bmatest_*`` and
their seed is reused across runs.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from pgbouncer import PGBOUNCER, DatabaseRoute, PgBouncer

from gateway.auth.api_keys import create_key, ensure_schema
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.credentials import SCOPES as ALL_SCOPES
from gateway.demo.embedded import DatabaseUrls, ensure_databases
from gateway.demo.seed import SeedScale, ensure_seeded
from gateway.demo.traffy_standin import TicketStore, create_traffy_app
from gateway.http.serving import BackgroundServer
from gateway.observability.logs import JsonFormatter
from support import (
    Chain,
    Gateway,
    LoopbackPage,
    bearer,
    build_chain,
    issuer_key_file,
    run,
    settings_for,
    sql,
    start_gateway,
    unavailable,
)

# ---------------------------------------------------------------------------- the session log

SESSION_END = "session_end"


def pytest_configure(config: pytest.Config) -> None:
    # One process holds every in-process gateway, the Traffy stand-in's tickets and the seed's
    # rows: a large heap, which CPython's default thresholds (700, 10, 10) had the cyclic
    # collector walk thousands of times a run (about a tenth of the run's time, measured with
    # gc.callbacks). Collect less often; no test depends on when a cycle is collected.
    gc.set_threshold(20_000, 20, 100)
    config.addinivalue_line(
        "markers",
        f"{SESSION_END}: run after every other test of the session (the log-leak scan of "
        "tests/test_log_leaks.py reads every line the session wrote)",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``session_end`` run last, in their own order, whatever the order of the
    files: the log-leak scan must see the lines of every other test. (Last of the hooks too,
    so no other plugin reorders the items after this.)"""
    last = [item for item in items if item.get_closest_marker(SESSION_END)]
    if last:
        items[:] = [item for item in items if not item.get_closest_marker(SESSION_END)] + last


@pytest.fixture(scope="session", autouse=True)
def session_log() -> Iterator[Path]:
    """Every log line of the session, as the gateway writes them in production (JSON), in
    one file: tests/test_log_leaks.py, which runs after every other test (``session_end``),
    scans it."""
    path = Path(tempfile.mkdtemp(prefix="bma-test-logs-")) / "session.jsonl"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    yield path
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    given = os.environ.get("BMA_TEST_DATABASE_URL")
    if given:
        yield given
        return
    data_dir = tempfile.mkdtemp(prefix="bma-test-pg-")
    url, server = start_embedded_temporary(data_dir)
    yield url
    server.cleanup()


def start_embedded_temporary(data_dir: str) -> tuple[str, Any]:
    import pgserver

    server = pgserver.get_server(data_dir, cleanup_mode="delete")
    url = server.get_uri()
    run(_throwaway(url))
    return url, server


async def _throwaway(url: str) -> None:
    """A server deleted after the session need not survive a crash: nothing waits for the
    disk (commits are still commits; only their flush to disk is skipped), and stopping it
    writes out no checkpoint to disk first."""
    conn = await asyncpg.connect(url)
    try:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            await conn.execute(f"ALTER SYSTEM SET {setting} = off")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def db(server_url: str) -> DatabaseUrls:
    async def prepare() -> DatabaseUrls:
        urls = await ensure_databases(server_url, prefix="bmatest")
        await ensure_seeded(urls, SeedScale())
        await _demo_copies(server_url)
        return urls

    return run(prepare())


async def _demo_copies(server_url: str) -> None:
    """The demo's upstream databases (``bma_tax``, ``bma_registry``, ``bma_traffy``,
    ``bma_finance``) as
    copies of the freshly seeded test databases, where the server has none yet: `bma-gateway
    demo` (tests/test_demo.py) then finds its seed current instead of building the same rows
    a second time. Skipped while anything else is connected to a test database (a copy needs
    its template to itself); the demo then seeds its own. The demo's own database
    (``bma_gateway``: API keys, the audit chain) is dropped: on a server kept between runs it
    would hold a chain signed with an earlier run's audit key."""
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute('DROP DATABASE IF EXISTS "bma_gateway" WITH (FORCE)')
        existing = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        for name in ("tax", "registry", "traffy", "finance"):
            if f"bma_{name}" not in existing:
                with contextlib.suppress(asyncpg.ObjectInUseError):
                    await conn.execute(
                        f'CREATE DATABASE "bma_{name}" TEMPLATE "bmatest_{name}" STRATEGY FILE_COPY'
                    )
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def tickets(db: DatabaseUrls) -> list[dict[str, Any]]:
    """The raw ticket documents as seeded: the truth the Traffy stand-in serves."""
    import orjson

    return [
        orjson.loads(r["doc"])
        for r in sql(db.traffy, "SELECT doc::text AS doc FROM traffy.tickets")
    ]


@pytest.fixture(scope="session")
def traffy_url(db: DatabaseUrls) -> Iterator[str]:
    store = run(TicketStore.load(db.traffy))
    with BackgroundServer(create_traffy_app(store)) as server:
        yield server.url


@pytest.fixture(scope="session")
def issuer() -> EmbeddedIssuer:
    """The embedded issuer every test gateway trusts: tokens it signs are accepted."""
    return EmbeddedIssuer.open(issuer_key_file())


@pytest.fixture(scope="session")
def anonymous(db: DatabaseUrls, traffy_url: str) -> Iterator[Gateway]:
    """A gateway with default settings, called without credentials."""
    server, gw = start_gateway(settings_for(db, traffy_url))
    yield gw
    gw.client.close()
    server.stop()


@pytest.fixture(scope="session")
def gateway(anonymous: Gateway, issuer: EmbeddedIssuer) -> Gateway:
    """The same gateway called by an agency principal cleared for everything (a data
    protection officer on an audit): the tests of values and joins read every field."""
    token = issuer.issue(
        "agency",
        "bma-dpo",
        " ".join(ALL_SCOPES),
        "secret",
        purpose="pdpa-audit",
        ttl=timedelta(hours=6),
    )
    return anonymous.acting_as({"authorization": f"Bearer {token}"})


# ---------------------------------------------------------------------------- principals

HOUR = timedelta(hours=1)


async def _new_api_key(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        await ensure_schema(conn)
        _, key = await create_key(conn, "authorization-suite", "civic-app")
        return key
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def principals(issuer: EmbeddedIssuer, db: DatabaseUrls) -> dict[str, dict[str, str]]:
    """The credential headers of every audience the suites speak for (authorization, caching)."""

    def token(*args: Any, **kwargs: Any) -> dict[str, str]:
        return bearer(issuer.issue(*args, ttl=HOUR, **kwargs))

    officer_scopes = "tax:read registry:read registry:personal"
    return {
        "anonymous": {},
        "app": {"X-API-Key": run(_new_api_key(db.gateway))},
        "partner": token("partner", "utility-partner", "tax:read", "internal", purpose="research"),
        "officer": token(
            "agency",
            "bma-district-1039",
            officer_scopes,
            "confidential",
            district="1039",
            purpose="district-service",
        ),
        "officer-without-purpose": token(
            "agency", "bma-district-1039", officer_scopes, "confidential", district="1039"
        ),
        "finance": token(
            "agency",
            "bma-finance",
            "tax:read tax:personal",
            "confidential",
            purpose="tax-collection",
        ),
        "finance-marketing": token(
            "agency", "bma-finance", "tax:read tax:personal", "confidential", purpose="marketing"
        ),
        "dpo": token("agency", "bma-dpo", ALL_SCOPES, "secret", purpose="pdpa-audit"),
    }


# ---------------------------------------------------------------------------- audit chains


@pytest.fixture
def make_chain(server_url: str, tmp_path: Path) -> Callable[[str], Chain]:
    """A factory: ``make_chain(case)`` builds a verified chain in ``bmatest_chain_<case>``."""
    return lambda case: build_chain(server_url, tmp_path, case)


# ---------------------------------------------------------------------------- PgBouncer
# The gateway behind PgBouncer in transaction pooling mode (tests/pgbouncer.py): the tests
# that take ``route`` run twice, straight to PostgreSQL and through PgBouncer. Skipped, with
# the reason, where PgBouncer is not installed; in CI (``.ci/run`` installs it) that fails.


@pytest.fixture(scope="session")
def pgbouncer(server_url: str) -> Iterator[PgBouncer]:
    if PGBOUNCER is None:
        unavailable("no PgBouncer on this machine (Debian: apt-get install pgbouncer)")
    bouncer = PgBouncer(server_url).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture(params=["direct", "pgbouncer"])
def route(request: pytest.FixtureRequest) -> DatabaseRoute:
    """How the code under test reaches the test server: straight, or through PgBouncer in
    transaction mode (its URLs rewritten, ``BMA_PGBOUNCER=transaction``)."""
    if request.param == "direct":
        return DatabaseRoute()
    return DatabaseRoute(request.getfixturevalue("pgbouncer"))


# ---------------------------------------------------------------------------- row-scope paths


@pytest.fixture(scope="session")
def row_path_values(db: DatabaseUrls, tickets: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Values of the required arguments on the paths to row-scoped types (tests/schema_paths.py),
    by ``Type.field.argument``, chosen so that each path meets rows of district 1039 and of
    others: a 1039 parcel with a sign of another district's business and the other way round,
    a 1039 business with a sign in another district and the other way round, processes won
    by businesses of 1039 and of another district."""
    from connectors.districts import code_for_name

    crossing = """SELECT s.parcel_id, s.business_registration_no AS no FROM tax.signboards s
                  WHERE {where} ORDER BY s.id LIMIT 1"""
    into = sql(
        db.tax,
        crossing.format(
            where="s.district_code = '1039' AND s.business_registration_no NOT LIKE '1039-%'"
        ),
    )
    out = sql(
        db.tax,
        crossing.format(
            where="s.district_code <> '1039' AND s.business_registration_no LIKE '1039-%'"
        ),
    )
    assert into and out, "the seed has no signboards across the boundary of district 1039"
    won = """SELECT min(a.process_id) AS id FROM finance.awards a
             JOIN finance.suppliers s ON s.id = a.supplier_id WHERE s.registration_no {like}"""
    processes = [
        sql(db.finance, won.format(like=like))[0]["id"]
        for like in ("LIKE '1039-%'", "NOT LIKE '1039-%'")
    ]
    ticket_of = {}
    for doc in sorted(tickets, key=lambda d: d["ticket_id"]):
        ticket_of.setdefault(code_for_name(doc["district"]), doc["ticket_id"])
    return {
        "Query.district.code": ["1039", "1001"],
        "Query.parcel.id": [str(into[0]["parcel_id"]), str(out[0]["parcel_id"])],
        "Query.business.registrationNo": [out[0]["no"], into[0]["no"]],
        "Query.complaint.ticketId": [ticket_of["1039"], ticket_of["1001"]],
        # Won by a registered business of 1039, and by one of another district.
        "Query.procurementProcess.id": processes,
        "Parcel.nearbyComplaints.radiusMeters": [300],
    }


# ---------------------------------------------------------------------------- the browser
# The pages in a real browser: the system's headless Chromium, driven by Playwright
# (tests/publishing/test_catalog_browser.py, tests/http/test_graphiql.py). Skipped, with the
# reason, where no Chromium or no Playwright is installed; in CI (``.ci/run`` installs
# Chromium) that is a failure instead.

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

try:
    from playwright.sync_api import Browser, Request, Route, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None


# Module-scoped: Playwright's sync API runs an event loop in this thread while it is open,
# and session fixtures that run their own (``run(...)``) must be set up before it or after.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        unavailable("Playwright is not installed (pip install -e '.[test]')")
    if CHROMIUM is None:
        unavailable("no Chromium on this machine (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        # The system's browser: Playwright's own browser downloads are never used.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def loopback_page(anonymous: Gateway, browser: Browser) -> Iterator[LoopbackPage]:
    gateway_host = urlsplit(anonymous.url).hostname
    assert gateway_host == "127.0.0.1"
    opened = LoopbackPage(page=None, refused=[], errors=[])  # type: ignore[arg-type]
    context = browser.new_context(accept_downloads=True)

    def only_the_gateway(route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname == gateway_host:
            route.continue_()
        else:
            opened.refused.append(request.url)
            route.abort()

    context.route("**/*", only_the_gateway)
    opened.page = context.new_page()
    opened.page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    opened.page.on("pageerror", lambda e: opened.errors.append(str(e)))
    yield opened
    context.close()
