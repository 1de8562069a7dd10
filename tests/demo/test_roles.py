"""gateway/demo/roles.py: the role the gateway logs in with reads the upstream databases and
appends to the audit log, and PostgreSQL itself refuses it everything else: writing or
creating anything upstream, changing or deleting audit records, moving the chain head other
than forward, minting API keys, becoming another role.

Every statement is tried for real against the session's PostgreSQL as the gateway's login,
on every table of the upstream databases (listed at run time, so a new table is covered).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from gateway.audit import store as audit_store
from gateway.demo.embedded import DatabaseUrls, database_url
from gateway.demo.roles import LOGIN_ROLE, ensure_gateway_roles, login_url
from support import fresh_database, run

PASSWORD = "roles-test-password"


@pytest.fixture(scope="module")
def login(db: DatabaseUrls, server_url: str) -> DatabaseUrls:
    """The gateway's URLs: the session's upstream databases, and a new gateway database whose
    audit store and key table the owner creates."""
    owner = DatabaseUrls(
        db.tax, db.registry, db.traffy, fresh_database(server_url, "bmatest_roles"), db.finance
    )
    return run(ensure_gateway_roles(owner, PASSWORD))


async def _as_gateway(url: str, operation: Any) -> Any:
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT current_user") == LOGIN_ROLE
        return await operation(conn)
    finally:
        await conn.close()


async def _refused(
    conn: asyncpg.Connection, statement: str, why: str = "permission denied"
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
        async with conn.transaction():  # LOCK TABLE needs one
            await conn.execute(statement)
    assert why in str(refused.value), (statement, str(refused.value))


def test_the_login_url_names_the_gateway_role():
    url = login_url("postgresql://postgres:secret@db.internal:5432/bma_tax?sslmode=require", "p w")
    assert url == "postgresql://bma_gateway_app:p%20w@db.internal:5432/bma_tax?sslmode=require"
    socket = login_url("postgresql://postgres:@/bma_tax?host=/tmp/x", "pw")
    assert socket == "postgresql://bma_gateway_app:pw@/bma_tax?host=/tmp/x"


@pytest.mark.parametrize("source", ["tax", "registry", "finance"])
def test_upstream_tables_are_read_only_to_the_gateway(login: DatabaseUrls, source: str):
    async def check(conn: asyncpg.Connection) -> int:
        tables = await conn.fetch(
            """SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS name,
                      (SELECT quote_ident(column_name) FROM information_schema.columns c
                       WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name
                       ORDER BY ordinal_position LIMIT 1) AS col
               FROM information_schema.tables t
               WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"""
        )
        for table in tables:
            name, col = table["name"], table["col"]
            await conn.fetchval(f"SELECT count(*) FROM {name}")  # reading is what it is for
            for statement in (
                f"INSERT INTO {name} DEFAULT VALUES",
                f"UPDATE {name} SET {col} = {col} WHERE false",
                f"DELETE FROM {name} WHERE false",
                f"TRUNCATE {name}",
                f"LOCK TABLE {name} IN EXCLUSIVE MODE",
            ):
                await _refused(conn, statement)
            await _refused(conn, f"ALTER TABLE {name} ADD COLUMN x int", "must be owner")
            await _refused(conn, f"DROP TABLE {name}", "must be owner")
        schema = tables[0]["name"].split(".")[0]
        for statement in (
            f"CREATE TABLE {schema}.planted (i int)",
            "CREATE TABLE public.planted (i int)",
            "CREATE TEMPORARY TABLE planted (i int)",
            "CREATE SCHEMA planted",
            "SET ROLE postgres",
        ):
            await _refused(conn, statement)
        return len(tables)

    url = getattr(login, source)
    assert run(_as_gateway(url, check)) >= (50 if source == "registry" else 1)


def test_the_gateway_appends_to_the_audit_log_and_can_change_nothing_in_it(login: DatabaseUrls):
    key = bytes(range(32))

    async def check(conn: asyncpg.Connection) -> None:
        # What the audit writer does: append as bma_audit_writer, the chain head advancing.
        await conn.execute(f"SET ROLE {audit_store.WRITER_ROLE}")
        at = datetime.now(UTC)
        seqs = await audit_store.append(conn, key, [(at, {"n": 1}), (at, {"n": 2})])
        assert seqs == [1, 2]
        assert await conn.fetchval("SELECT seq FROM audit.chain_head") == 2
        # Exactly that: the writer cannot even read what it wrote.
        await _refused(conn, "SELECT count(*) FROM audit.records")
        for statement in (
            "UPDATE audit.chain_head SET id = 2",
            "DELETE FROM audit.chain_head",
            "INSERT INTO audit.chain_head VALUES (2, 0, '')",
        ):
            await _refused(conn, statement)
        await _refused(conn, "UPDATE audit.chain_head SET seq = 0", "only moves forward")
        await conn.execute("RESET ROLE")
        # The login reads records (accessLog) and may change none, PostgreSQL's privileges
        # refusing before the append-only triggers would.
        assert await conn.fetchval("SELECT count(*) FROM audit.records") == 2
        for statement in (
            "UPDATE audit.records SET entry = '{}'",
            "DELETE FROM audit.records",
            "TRUNCATE audit.records",
            "TRUNCATE audit.chain_head",
            "CREATE TABLE audit.planted (i int)",
            "CREATE TABLE gateway.planted (i int)",
            "CREATE TEMPORARY TABLE planted (i int)",
            "SET ROLE postgres",
        ):
            await _refused(conn, statement)
        for statement in (
            "ALTER TABLE audit.records DISABLE TRIGGER records_append_only",
            "DROP TRIGGER records_append_only ON audit.records",
            "DROP TABLE audit.records",
        ):
            await _refused(conn, statement, "must be owner")

    run(_as_gateway(login.gateway, check))


def test_the_gateway_looks_api_keys_up_and_cannot_mint_or_change_them(login: DatabaseUrls):
    async def check(conn: asyncpg.Connection) -> None:
        await conn.fetch("SELECT id, secret_sha256, revoked_at FROM gateway.api_keys")
        await conn.execute("UPDATE gateway.api_keys SET last_used_at = now() WHERE id = 'x'")
        for statement in (
            "INSERT INTO gateway.api_keys (id, name, organisation, secret_sha256) "
            "VALUES ('k', 'n', 'o', '')",
            "UPDATE gateway.api_keys SET revoked_at = NULL",
            "UPDATE gateway.api_keys SET secret_sha256 = ''",
            "DELETE FROM gateway.api_keys",
        ):
            await _refused(conn, statement)

    run(_as_gateway(login.gateway, check))


def test_granting_again_is_harmless(login: DatabaseUrls, db: DatabaseUrls, server_url: str):
    """The demo grants at every start: twice changes nothing and keeps the login working."""
    owner = DatabaseUrls(
        db.tax, db.registry, db.traffy, database_url(server_url, "bmatest_roles"), db.finance
    )
    assert run(ensure_gateway_roles(owner, PASSWORD)) == login
