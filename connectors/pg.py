"""PostgreSQL access shared by the asyncpg connectors: pools, timeouts, error mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from connectors.base import (
    CallCounter,
    Page,
    Record,
    SourceHealth,
    UpstreamError,
    UpstreamUnavailable,
    with_timeout,
)
from connectors.observer import QUIET, UpstreamObserver
from connectors.resilience import Guard, ResilienceSettings

# SQLSTATE classes and codes that mean "this source cannot answer now" rather than "our SQL
# is wrong": connection (08), authorization (28), resources such as too many connections (53),
# operator intervention such as a shutdown (57), a missing database (3D), schema (3F) or
# table (42P01), and a revoked privilege (42501).
_UNAVAILABLE_CLASSES = frozenset({"08", "28", "53", "57", "3D", "3F"})
_UNAVAILABLE_CODES = frozenset({"42P01", "42501"})


def _unavailable(exc: Exception) -> bool:
    if isinstance(exc, OSError | asyncpg.InterfaceError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_CODES
    return False


# How the gateway reaches PostgreSQL: directly ("off"), or through PgBouncer in transaction
# pooling mode, where consecutive transactions of one client may run on different server
# connections, shared with other clients (``BMA_PGBOUNCER``, docs/operations.md).
PgBouncerMode = Literal["off", "transaction"]
PGBOUNCER_MODES: tuple[PgBouncerMode, ...] = ("off", "transaction")


class _StatelessConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection that leaves no session state to reset: released to a pool, it sends no
    reset query. asyncpg's default one (``pg_advisory_unlock_all()``, ``CLOSE ALL``,
    ``UNLISTEN *``, ``RESET ALL``) would run, behind PgBouncer, on whichever server
    connection is free: another client's session, whose locks and settings it would drop."""

    def get_reset_query(self) -> str:
        return ""


def connect_options(pgbouncer: PgBouncerMode) -> dict[str, Any]:
    """The keyword arguments of ``asyncpg.connect`` and ``asyncpg.create_pool`` for a mode:
    every connection and pool the gateway opens takes them.

    In transaction mode, no prepared statement outlives its transaction (PgBouncer before
    1.21 does not carry named statements from one server connection to another: asyncpg's
    statement cache would fail with "prepared statement ... does not exist"), and a pool
    sends no reset query. The caller sets nothing on the session either (``SET`` only as
    ``SET LOCAL``, advisory locks only ``pg_advisory_xact_lock``, no ``LISTEN``, no
    temporary tables)."""
    if pgbouncer == "transaction":
        return {"statement_cache_size": 0, "connection_class": _StatelessConnection}
    return {}


@dataclass(frozen=True)
class PoolSettings:
    min_size: int = 0  # lazy: a source that is down must not stop the gateway from starting
    max_size: int = 10
    timeout: float = 5.0  # seconds for one upstream call, connection included
    pgbouncer: PgBouncerMode = "off"


class PgPool:
    """An asyncpg pool for one DSN; several sources may share it (the demo's registries)."""

    def __init__(self, dsn: str, settings: PoolSettings) -> None:
        self.dsn = dsn
        self.settings = settings
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.settings.min_size,
                max_size=self.settings.max_size,
                **connect_options(self.settings.pgbouncer),
            )

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def fetch(self, source: str, sql: str, args: tuple[object, ...]) -> list[Record]:
        if self._pool is None:
            raise UpstreamUnavailable(source, "connector is not started")
        try:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(sql, *args)
        except Exception as exc:
            if _unavailable(exc):
                raise UpstreamUnavailable(source, _reason(exc)) from exc
            raise
        return [dict(r) for r in rows]


class PgSource:
    """One PostgreSQL-backed source: a name for errors, a pool, a call counter, and its own
    guard (concurrency bound, circuit breaker, retries), even when it shares the pool."""

    def __init__(
        self,
        name: str,
        pool: PgPool,
        counter: CallCounter,
        resilience: ResilienceSettings | None = None,
    ) -> None:
        self.name = name
        self.pool = pool
        self.counter = counter
        self.guard = Guard(
            name, resilience, queue_timeout=pool.settings.timeout, observer=counter.observer
        )

    async def fetch(self, sql: str, *args: object) -> list[Record]:
        """Run one read, guarded and retried; every attempt that reaches the upstream is
        counted, bounded by the timeout, and its failure named for this source."""

        async def attempt() -> list[Record]:
            self.counter.record(self.name)
            timeout = self.pool.settings.timeout
            return await with_timeout(self.name, timeout, self.pool.fetch(self.name, sql, args))

        return await self.guard.call(attempt)

    async def health(self) -> SourceHealth:
        """A direct ``SELECT 1`` (not through the breaker, not counted) and the breaker's state."""
        breaker = self.guard.breaker.state.value
        try:
            timeout = self.pool.settings.timeout
            await with_timeout(self.name, timeout, self.pool.fetch(self.name, "SELECT 1", ()))
        except Exception as exc:  # health reports any failure; it never raises
            return SourceHealth(self.name, False, _reason(exc), breaker)
        return SourceHealth(self.name, True, breaker=breaker)


def _reason(exc: BaseException) -> str:
    """A short reason safe to show clients: the error class, never a DSN or a password."""
    if isinstance(exc, UpstreamError):
        return exc.reason
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncpg.PostgresError):
        return f"database error {exc.sqlstate}"
    return type(exc).__name__


def keyset_page_sql(
    columns: str, table: str, where: str, key: str, after: str, limit: str, count: bool = True
) -> str:
    """One round trip for a keyset page, and the filter's total when ``count``.

    The total ignores the cursor (it counts every match) and comes back even when the page
    is empty: the page is LEFT JOINed to a single row carrying the count. Without ``count``
    the page alone is read: no ``count(*)`` over every match.
    """
    filtered = f"WITH f AS (SELECT {columns} FROM {table} WHERE {where})"
    page = f"SELECT * FROM f WHERE {key} > {after} ORDER BY {key} LIMIT {limit}"
    if not count:
        return f"{filtered} {page}"
    return f"""{filtered}
        SELECT (SELECT count(*) FROM f) AS _total, p.* FROM (SELECT 1) AS one
        LEFT JOIN LATERAL ({page}) AS p ON true"""


def page_from_rows(rows: list[Record], first: int, key: str, **extra: object) -> Page:
    """Turn ``keyset_page_sql`` rows (fetched with limit first + 1) into a Page; its total
    is None when the rows carry none (not counted)."""
    counted = bool(rows) and "_total" in rows[0]
    total = rows[0]["_total"] if counted else None
    records = []
    for r in rows:
        if r[key] is None:  # the empty page's placeholder row
            continue
        if counted:
            del r["_total"]
        r.update(extra)
        records.append(r)
    return Page(rows=records[:first], total=total, has_next=len(records) > first)


class PgConnector:
    """An upstream system that is one PostgreSQL database: its pool, its guarded source, and
    the lifecycle and health every connector answers. Subclasses name it and add queries."""

    name = "pg"

    def __init__(
        self,
        dsn: str,
        settings: PoolSettings | None = None,
        resilience: ResilienceSettings | None = None,
        observer: UpstreamObserver = QUIET,
    ) -> None:
        self.counter = CallCounter(observer)
        self._pool = PgPool(dsn, settings or PoolSettings())
        self._db = PgSource(self.name, self._pool, self.counter, resilience)

    async def start(self) -> None:
        await self._pool.start()

    async def stop(self) -> None:
        await self._pool.stop()

    async def health(self) -> list[SourceHealth]:
        return [await self._db.health()]

    def guards(self) -> dict[str, Guard]:
        return {self.name: self._db.guard}
