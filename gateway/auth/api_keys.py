"""API keys for app developers, kept in the gateway's own PostgreSQL database.

A key reads ``bma_<id>_<secret>``: the id finds the row, the secret proves possession. Only
the SHA-256 of the secret is stored — a fast hash is enough because the secret is 192 random
bits, not a password anyone could guess — and it is compared in constant time. The full key
is shown once, when it is created.

Lookups are cached in memory for a few seconds (``BMA_API_KEY_CACHE_SECONDS``) so that a
busy app does not cost a database round trip per request; a revocation therefore takes
effect within that time on every replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from connectors.cache import RecentLookups
from connectors.pg import PgBouncerMode, connect_options

log = logging.getLogger("bma.gateway.api_keys")

_KEY = re.compile(r"bma_([0-9a-f]{16})_([0-9a-f]{48})")
ID_BYTES = 8
SECRET_BYTES = 24  # 192 bits from `secrets`

DDL = """
CREATE SCHEMA IF NOT EXISTS gateway;
CREATE TABLE IF NOT EXISTS gateway.api_keys (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    organisation  text NOT NULL,
    secret_sha256 bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
"""
# Several replicas may start at once; CREATE ... IF NOT EXISTS alone can still collide.
_DDL_LOCK = 0x626D615F6B657973  # "bma_keys"

_COLUMNS = "id, name, organisation, secret_sha256, created_at, revoked_at, last_used_at"


class Queryable(Protocol):
    """An asyncpg connection or pool."""

    async def execute(self, query: str, *args: Any) -> str: ...
    async def fetch(self, query: str, *args: Any) -> list[Any]: ...
    async def fetchrow(self, query: str, *args: Any) -> Any: ...


class ApiKeyStoreUnavailable(Exception):
    """The key database did not answer: no key can be checked now."""


@dataclass(frozen=True)
class PresentedKey:
    key_id: str
    secret: str


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    name: str
    organisation: str
    secret_sha256: bytes
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(_digest(secret), self.secret_sha256)


def parse_api_key(presented: str) -> PresentedKey | None:
    """The id and secret of a key in this gateway's format, else None."""
    match = _KEY.fullmatch(presented.strip())
    return PresentedKey(match[1], match[2]) if match else None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii", "replace")).digest()


def _record(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(**{**dict(row), "secret_sha256": bytes(row["secret_sha256"])})


async def ensure_schema(conn: asyncpg.Connection) -> None:
    """Create the key table unless it exists: a gateway logging in with no right to create
    anything (docs/operations.md) only checks."""
    if await conn.fetchval("SELECT to_regclass('gateway.api_keys') IS NOT NULL"):
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK)
        await conn.execute(DDL)


async def create_key(db: Queryable, name: str, organisation: str) -> tuple[ApiKeyRecord, str]:
    """A new key; returns its record and the full key, which is never stored."""
    if not name.strip() or not organisation.strip():
        raise ValueError("an API key needs a name and an organisation")
    key_id, secret = secrets.token_hex(ID_BYTES), secrets.token_hex(SECRET_BYTES)
    row = await db.fetchrow(
        f"INSERT INTO gateway.api_keys (id, name, organisation, secret_sha256) "
        f"VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
        key_id,
        name.strip(),
        organisation.strip(),
        _digest(secret),
    )
    return _record(row), f"bma_{key_id}_{secret}"


async def find_key(db: Queryable, key_id: str) -> ApiKeyRecord | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM gateway.api_keys WHERE id = $1", key_id)
    return _record(row) if row else None


async def list_keys(db: Queryable) -> list[ApiKeyRecord]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM gateway.api_keys ORDER BY created_at, id")
    return [_record(r) for r in rows]


async def revoke_key(db: Queryable, key_id: str) -> ApiKeyRecord | None:
    """Revoke a key (a second revocation keeps the first time); None if there is no such key."""
    row = await db.fetchrow(
        "UPDATE gateway.api_keys SET revoked_at = coalesce(revoked_at, now()) "
        f"WHERE id = $1 RETURNING {_COLUMNS}",
        key_id,
    )
    return _record(row) if row else None


# Failures that mean the key database cannot answer now (as opposed to a bug in our SQL).
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.UndefinedTableError,
)


class ApiKeyStore:
    """Key lookups for the request path: a small pool and a short-lived cache."""

    def __init__(
        self,
        database_url: str,
        *,
        cache_seconds: float = 5.0,
        timeout: float = 5.0,
        max_cached: int = 10_000,
        touch_interval: float = 60.0,
        pgbouncer: PgBouncerMode = "off",
    ) -> None:
        self.database_url = database_url
        self.pgbouncer = pgbouncer
        self.timeout = timeout
        self.touch_interval = touch_interval
        self._pool: asyncpg.Pool | None = None
        self._schema_ready = False
        # By key id: unknown ids are kept too, so a client repeating a bad key does not reach
        # the database every time.
        self._recent: RecentLookups[ApiKeyRecord | None] = RecentLookups(cache_seconds, max_cached)
        self._touched: dict[str, float] = {}

    async def start(self) -> None:
        # min_size 0: a key database that is down must not stop the gateway from starting
        # (anonymous and token requests do not need it).
        self._pool = await asyncpg.create_pool(
            self.database_url, min_size=0, max_size=2, **connect_options(self.pgbouncer)
        )
        try:
            await self._ensure_schema()
        except _UNAVAILABLE as exc:
            log.warning("API key database not reachable at start (%s); will retry", exc)

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def lookup(self, key_id: str) -> ApiKeyRecord | None:
        now = time.monotonic()
        cached = self._recent.get(key_id)
        if cached is not None and self._recent.fresh(cached, now):
            return cached[1]
        record: ApiKeyRecord | None = await self._call(self._fetch(key_id))
        self._recent.put(key_id, now, record)
        return record

    async def touch(self, key_id: str) -> None:
        """Record that a key was used, at most once per ``touch_interval`` per process."""
        now = time.monotonic()
        if now - self._touched.get(key_id, -self.touch_interval) < self.touch_interval:
            return
        self._touched[key_id] = now
        try:
            await self._call(self._touch(key_id))
        except ApiKeyStoreUnavailable as exc:  # bookkeeping only: never fail a request on it
            log.warning("could not record the use of API key %s: %s", key_id, exc)

    async def _fetch(self, key_id: str) -> ApiKeyRecord | None:
        await self._ensure_schema()
        return await find_key(self._connected(), key_id)

    async def _touch(self, key_id: str) -> None:
        await self._connected().execute(
            "UPDATE gateway.api_keys SET last_used_at = now() WHERE id = $1", key_id
        )

    async def _ensure_schema(self) -> None:
        if not self._schema_ready:
            async with self._connected().acquire() as conn:
                await ensure_schema(conn)
            self._schema_ready = True

    async def _call(self, operation: Any) -> Any:
        try:
            return await asyncio.wait_for(operation, self.timeout)
        except _UNAVAILABLE as exc:
            raise ApiKeyStoreUnavailable(type(exc).__name__) from exc

    def _connected(self) -> asyncpg.Pool:
        if self._pool is None:
            raise ApiKeyStoreUnavailable("the API key store is not started")
        return self._pool
