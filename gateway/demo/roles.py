"""The PostgreSQL roles the demo's gateway logs in with: the least it needs, nothing more.

- ``bma_gateway_reader`` (no login): CONNECT to the upstream databases, USAGE on their
  schemas, SELECT on their tables. It cannot write, create or lock anything there.
- ``bma_audit_writer`` (no login; created with the audit store): INSERT into
  ``audit.records``, and read and advance the one-row ``audit.chain_head``.
- ``bma_gateway_app`` (the login): a member of both, and in its own database what the
  gateway itself does: read API keys and stamp their last use, read registered documents,
  read audit records (for ``accessLog``). It owns nothing, so it cannot alter, drop or disable a trigger.

Schemas are created by the owner (here the server's superuser, in production a database
administrator: ``bma-gateway audit init``), never by the gateway. docs/operations.md holds the
same grants as SQL to run in production.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from gateway.audit import store as audit_store
from gateway.auth import api_keys
from gateway.demo.credentials import write_private
from gateway.demo.embedded import DatabaseUrls
from gateway.execution import document_registry

READER_ROLE = "bma_gateway_reader"
LOGIN_ROLE = "bma_gateway_app"
PASSWORD_FILE = "gateway-db-password"

_CREATE_ROLES = f"""
DO $$ BEGIN
    CREATE ROLE {READER_ROLE} NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$ BEGIN
    CREATE ROLE {LOGIN_ROLE} LOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
GRANT {READER_ROLE}, {audit_store.WRITER_ROLE} TO {LOGIN_ROLE};
"""

# In the gateway's own database, beyond what bma_audit_writer holds: API keys are looked up
# and their last use stamped (created and revoked by an operator, as the owner), and audit
# records are read for `accessLog` (verified by an operator).
_GATEWAY_GRANTS = f"""
GRANT USAGE ON SCHEMA gateway TO {LOGIN_ROLE};
GRANT SELECT, UPDATE (last_used_at) ON gateway.api_keys TO {LOGIN_ROLE};
GRANT SELECT ON gateway.trusted_documents TO {LOGIN_ROLE};
GRANT SELECT ON audit.records, audit.archives TO {LOGIN_ROLE};
"""


async def ensure_gateway_roles(owner_urls: DatabaseUrls, password: str) -> DatabaseUrls:
    """Create the roles and grants (again: new upstream tables are granted too); returns the
    URLs the gateway logs in with. ``owner_urls`` log in as the databases' owner."""
    conn = await asyncpg.connect(owner_urls.gateway)
    try:
        await audit_store.ensure_store(conn)  # the schema, its triggers, bma_audit_writer
        await api_keys.ensure_schema(conn)
        await document_registry.ensure_schema(conn)
        await conn.execute(_CREATE_ROLES)
        # ALTER ROLE takes no parameters: the server quotes the literal.
        literal = await conn.fetchval("SELECT quote_literal($1::text)", password)
        await conn.execute(
            f"ALTER ROLE {LOGIN_ROLE} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS "
            f"NOREPLICATION PASSWORD {literal}"
        )
        await _connect_only(conn, LOGIN_ROLE)
        await conn.execute(_GATEWAY_GRANTS)
    finally:
        await conn.close()
    for url in (owner_urls.tax, owner_urls.registry, owner_urls.finance):
        await _grant_reading(url)
    return DatabaseUrls(
        tax=login_url(owner_urls.tax, password),
        registry=login_url(owner_urls.registry, password),
        traffy=owner_urls.traffy,  # the Traffy stand-in's, not the gateway's
        gateway=login_url(owner_urls.gateway, password),
        finance=login_url(owner_urls.finance, password),
    )


async def _grant_reading(url: str) -> None:
    """SELECT on every table of every schema of an upstream database, and nothing else."""
    conn = await asyncpg.connect(url)
    try:
        await _connect_only(conn, READER_ROLE)
        schemas = await conn.fetch(
            """SELECT nspname FROM pg_namespace
               WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"""
        )
        for row in schemas:
            schema = _identifier(row["nspname"])
            await conn.execute(
                f"GRANT USAGE ON SCHEMA {schema} TO {READER_ROLE};"
                f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {READER_ROLE};"
            )
    finally:
        await conn.close()


async def _connect_only(conn: asyncpg.Connection, role: str) -> None:
    """The database takes connections from ``role`` (and the owner): PUBLIC loses its
    default CONNECT and TEMPORARY, so the gateway cannot create even temporary tables."""
    database = _identifier(await conn.fetchval("SELECT current_database()"))
    await conn.execute(
        f"REVOKE ALL ON DATABASE {database} FROM PUBLIC;"
        f"GRANT CONNECT ON DATABASE {database} TO {role};"
    )


def login_url(owner_url: str, password: str) -> str:
    """``owner_url`` logging in as the gateway's role instead."""
    parts = urlsplit(owner_url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{LOGIN_ROLE}:{quote(password, safe='')}@{host}"))


def gateway_password(state_dir: Path) -> str:
    """The gateway role's password, kept in the state directory (mode 0600)."""
    path = state_dir / PASSWORD_FILE
    saved = path.read_text("ascii").strip() if path.exists() else ""
    if saved:
        return saved
    password = secrets.token_hex(24)
    write_private(path, password + "\n")
    return password


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
