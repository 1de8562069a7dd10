"""The gateway's login and the audit writer role: a login that may create roles (CREATEROLE)
but is no member of ``bma_audit_writer`` creates the audit store and then could write no
record — every restricted read would answer 503 ``AUDIT_UNAVAILABLE``. `config check` and
`serve` (one preflight, gateway/http/preflight.py) find it before the gateway starts and
name the GRANT to run; a store that cannot be reached at start is still no reason to refuse.

Runs on the test server, whichever it is: PostgreSQL 15 (CREATEROLE may grant any role) and
16 (the creator of a role holds ADMIN on it, but may not SET it) behave alike here.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from gateway.audit.store import WRITER_ROLE, writer_grant
from gateway.audit.writer import AuditWriter
from gateway.cli import main as cli_main
from gateway.demo.embedded import database_url
from gateway.http.preflight import audit_writer_problems
from gateway.http.serving import free_port
from gateway.settings import Settings
from support import (
    CHAIN_KEY,
    REQUIRED_ENV,
    CliRun,
    audit_entry,
    audit_key_file,
    run,
    sql,
)

LOGIN = "bmatest_audit_creator"
DATABASE = "bmatest_audit_roles"


@pytest.fixture
def creator_login(server_url: str) -> str:
    """A fresh database owned by a login with CREATEROLE and nothing else: its URL."""

    async def create() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            await conn.execute(f"DROP ROLE IF EXISTS {LOGIN}")
            await conn.execute(f"CREATE ROLE {LOGIN} LOGIN CREATEROLE")
            await conn.execute(f'CREATE DATABASE "{DATABASE}" OWNER {LOGIN}')
        finally:
            await conn.close()

    run(create())
    parts = urlsplit(database_url(server_url, DATABASE))
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{LOGIN}@{host}"))


def config_check(capsys: pytest.CaptureFixture[str], *argv: str) -> CliRun:
    capsys.readouterr()
    code = cli_main(list(argv or ("config", "check")))
    out, err = capsys.readouterr()
    return CliRun(code, out, err)


def test_a_createrole_login_without_the_writer_role_is_refused_at_start_with_the_grant(
    creator_login: str,
    server_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    for name in [n for n in os.environ if n.startswith("BMA_")]:
        monkeypatch.delenv(name)
    for name, value in REQUIRED_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BMA_AUDIT_DATABASE_URL", creator_login)
    monkeypatch.setenv("BMA_AUDIT_KEY_FILE", str(audit_key_file()))
    monkeypatch.setenv("BMA_PORT", str(free_port()))
    store = database_url(server_url, DATABASE)  # as the superuser, to look
    version = sql(store, "SELECT current_setting('server_version_num')::int / 10000 AS v")
    grant = writer_grant(LOGIN, version[0]["v"])
    assert grant.startswith(f"GRANT {WRITER_ROLE} TO {LOGIN}")

    # Before the store exists: this login could create it, but would not be its writer.
    first = config_check(capsys)
    assert first.code == 2, first
    assert "not set up" in first.err and "audit init" in first.err and grant in first.err

    # The store created by the login itself, as the writer does at its first start.
    writer = AuditWriter(creator_login, CHAIN_KEY)
    run(writer.start())
    run(writer.stop())
    assert sql(store, "SELECT seq FROM audit.chain_head") == [{"seq": 0}]

    # `config check` and `serve` refuse alike, naming the GRANT; the check left nothing.
    for argv in (("config", "check"), ("serve",)):
        refused = config_check(capsys, *argv)
        assert refused.code == 2, (argv, refused)
        [line] = [ln for ln in refused.err.splitlines() if ln.strip()]
        assert "BMA_AUDIT_DATABASE_URL" in line and grant in line, line
        assert refused.out == ""
    assert sql(store, "SELECT count(*) AS n FROM audit.records") == [{"n": 0}]
    assert sql(store, "SELECT seq FROM audit.chain_head") == [{"seq": 0}]

    # The GRANT as printed, by the superuser: the check passes, and records are written.
    sql(store, grant)
    passed = config_check(capsys)
    assert passed.code == 0, passed
    assert "configuration ok" in passed.out

    async def record() -> int:
        writer = AuditWriter(creator_login, CHAIN_KEY)
        await writer.start()
        try:
            return await writer.record(audit_entry(1))
        finally:
            await writer.stop()

    assert run(record()) == 1
    assert sql(store, "SELECT count(*) AS n FROM audit.records") == [{"n": 1}]


def test_a_store_that_cannot_be_reached_at_start_does_not_refuse_the_start():
    down = f"postgresql://nobody@127.0.0.1:{free_port()}/audit"
    settings = Settings(
        tax_database_url=down,
        registry_database_url=down,
        finance_database_url=down,
        traffy_base_url="http://traffy.test",
        audit_database_url=down,
        audit_key_file=audit_key_file(),
        audit_timeout=2,
    )
    started = datetime.now(UTC)
    assert audit_writer_problems(settings) == []
    assert (datetime.now(UTC) - started).total_seconds() < 5
