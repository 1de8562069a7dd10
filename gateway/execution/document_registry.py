"""Registered (trusted) documents, per client, in the gateway's own PostgreSQL database.

An operator registers a client's documents ahead of time (``bma-gateway documents add``,
``gateway.cli.documents``); each is stored under the SHA-256 of its exact text, which is what
a client names it by (``documentId: "sha256:<hex>"`` or Apollo's
``extensions.persistedQuery.sha256Hash``). A hash identifies its text whoever registered it,
so the gateway looks documents up by hash alone; the client is what a manifest is added and
removed by.

The gateway only reads the table (its role holds SELECT on it, docs/operations.md). What it
read is kept in memory for a few seconds (``BMA_TRUSTED_DOCUMENTS_CACHE_SECONDS``), unknown
hashes too, so that neither a busy client nor one repeating an unknown hash costs a database
round trip per request; a removal therefore takes effect within that time on every replica.
A hash's text never changes, so while the database is unreachable a hash read before is
still served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from connectors.cache import RecentLookups
from connectors.pg import PgBouncerMode, connect_options
from gateway.auth.api_keys import Queryable

log = logging.getLogger("bma.gateway.documents")

DDL = """
CREATE SCHEMA IF NOT EXISTS gateway;
CREATE TABLE IF NOT EXISTS gateway.trusted_documents (
    client     text NOT NULL CHECK (client <> ''),
    sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    body       text NOT NULL,
    operations text[] NOT NULL DEFAULT '{}',
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, sha256)
);
CREATE INDEX IF NOT EXISTS trusted_documents_by_hash ON gateway.trusted_documents (sha256);
"""
# Several replicas (or a replica and the CLI) may create it at once.
_DDL_LOCK = 0x626D615F646F6373  # "bma_docs"

_COLUMNS = "client, sha256, body, operations, added_at"


class DocumentStoreUnavailable(Exception):
    """The registered documents' database did not answer."""


@dataclass(frozen=True)
class RegisteredDocument:
    client: str
    sha256: str
    body: str
    operations: tuple[str, ...]  # the names of its operations (anonymous ones as "-")
    added_at: datetime


def _record(row: Any) -> RegisteredDocument:
    return RegisteredDocument(
        row["client"], row["sha256"], row["body"], tuple(row["operations"]), row["added_at"]
    )


async def ensure_schema(conn: asyncpg.Connection) -> None:
    """Create the table unless it exists: a gateway with no right to create anything only
    checks."""
    if await conn.fetchval("SELECT to_regclass('gateway.trusted_documents') IS NOT NULL"):
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK)
        await conn.execute(DDL)


@dataclass(frozen=True)
class NewDocument:
    sha256: str
    body: str
    operations: tuple[str, ...]


async def add_documents(
    db: Queryable, client: str, documents: Sequence[NewDocument]
) -> list[RegisteredDocument]:
    """Register ``documents`` for ``client``; returns those that were not registered for it
    already (adding a manifest twice changes nothing)."""
    if not client.strip():
        raise ValueError("a client needs a name")
    rows = await db.fetch(
        f"""INSERT INTO gateway.trusted_documents (client, sha256, body, operations)
            SELECT $1, d.sha256, d.body, d.operations
            FROM jsonb_to_recordset($2::text::jsonb)
                 AS d(sha256 text, body text, operations text[])
            ON CONFLICT (client, sha256) DO NOTHING
            RETURNING {_COLUMNS}""",
        client.strip(),
        _json(
            [{"sha256": d.sha256, "body": d.body, "operations": d.operations} for d in documents]
        ),
    )
    return sorted((_record(r) for r in rows), key=lambda d: d.sha256)


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


async def list_documents(db: Queryable, client: str | None = None) -> list[RegisteredDocument]:
    rows = await db.fetch(
        f"""SELECT {_COLUMNS} FROM gateway.trusted_documents
            WHERE $1::text IS NULL OR client = $1 ORDER BY client, added_at, sha256""",
        client,
    )
    return [_record(r) for r in rows]


async def remove_documents(db: Queryable, client: str, sha256: str | None = None) -> int:
    """Remove a client's document (by hash), or all of them; returns how many went."""
    status: str = await db.execute(
        """DELETE FROM gateway.trusted_documents
           WHERE client = $1 AND ($2::text IS NULL OR sha256 = $2)""",
        client,
        sha256,
    )
    return int(status.split()[-1])


async def find_body(db: Queryable, sha256: str) -> str | None:
    row = await db.fetchrow(
        "SELECT body FROM gateway.trusted_documents WHERE sha256 = $1 LIMIT 1", sha256
    )
    return None if row is None else str(row["body"])


# Failures that mean the database cannot answer now (as opposed to a bug in our SQL).
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.UndefinedTableError,
    asyncpg.InsufficientPrivilegeError,
)


class DocumentRegistry:
    """Lookups of registered documents for the request path: a small pool, a short cache."""

    def __init__(
        self,
        database_url: str,
        *,
        cache_seconds: float = 5.0,
        timeout: float = 5.0,
        max_cached: int = 10_000,
        pgbouncer: PgBouncerMode = "off",
    ) -> None:
        self.database_url = database_url
        self.pgbouncer = pgbouncer
        self.timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._schema_ready = False
        # By hash: the text, or None for a hash no client registered.
        self._recent: RecentLookups[str | None] = RecentLookups(cache_seconds, max_cached)

    async def start(self) -> None:
        # min_size 0: a database that is down must not stop the gateway from starting.
        self._pool = await asyncpg.create_pool(
            self.database_url, min_size=0, max_size=2, **connect_options(self.pgbouncer)
        )
        try:
            await self._ensure_schema()
        except _UNAVAILABLE as exc:
            log.warning("registered documents not readable at start (%s); will retry", exc)

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def lookup(self, sha256: str) -> str | None:
        """The registered text of ``sha256``, None if no client registered it;
        ``DocumentStoreUnavailable`` when the database cannot say and the hash is not known
        from before."""
        now = time.monotonic()
        cached = self._recent.get(sha256)
        if cached is not None and self._recent.fresh(cached, now):
            return cached[1]
        try:
            body = await asyncio.wait_for(self._fetch(sha256), self.timeout)
        except _UNAVAILABLE as exc:
            if cached is not None and cached[1] is not None:
                return cached[1]  # its text cannot have changed; only a removal waits
            raise DocumentStoreUnavailable(type(exc).__name__) from exc
        self._recent.put(sha256, now, body)
        return body

    async def _fetch(self, sha256: str) -> str | None:
        if self._pool is None:
            raise asyncpg.InterfaceError("the registered documents' store is not started")
        await self._ensure_schema()
        return await find_body(self._pool, sha256)

    async def _ensure_schema(self) -> None:
        if not self._schema_ready:
            assert self._pool is not None
            async with self._pool.acquire() as conn:
                await ensure_schema(conn)
            self._schema_ready = True
