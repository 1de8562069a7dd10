"""The audit writer: entries appended in batches to the hash-chained store.

A response carrying restricted data leaves only after its record is committed; when the
store cannot take it, the writer refuses the entry (``AuditUnavailable``) and the executor
withholds the answer with ``AUDIT_UNAVAILABLE`` instead (docs/audit.md states the guarantee).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from connectors.audit_log import AuditUnavailable
from connectors.pg import PgBouncerMode, connect_options
from gateway.audit import store as audit_store
from gateway.observability import metrics

log = logging.getLogger("bma.audit")

# What a store that is down, unreachable or refusing looks like.
STORE_DOWN = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    audit_store.AuditStoreError,
    TimeoutError,
)


class AuditRecorder(Protocol):
    """What execution needs of the audit: a committed record per restricted operation."""

    async def start(self) -> None: ...

    async def record(self, entry: dict[str, Any]) -> int: ...

    async def stop(self) -> None: ...


@dataclass
class _Pending:
    at: datetime
    entry: dict[str, Any]
    done: asyncio.Future[int]


class AuditWriter:
    """Appends entries in batches, group-commit style, on one connection of its own.

    A request whose entry finds the writer idle writes it at once, itself: no hand-off to
    another task, so the only wait is the commit. Entries that arrive while a batch commits
    wait, and go together in the next transaction, written by a task the finishing writer
    starts — so a busy gateway pays one commit per batch, not per request. Batches are
    written one at a time, as the append-only role; while this process is the store's only
    writer, a batch is one statement. (Measured and rejected: a background writer task
    taking every entry — two more turns of the event loop per request; two connections
    pipelining batches; waiting to gather larger batches.)
    """

    def __init__(
        self,
        dsn: str | None,
        key: bytes | None,
        *,
        batch_max: int = 256,
        queue_max: int = 10_000,
        timeout: float = 5.0,
        pgbouncer: PgBouncerMode = "off",
    ) -> None:
        self.dsn = dsn
        self.key = key
        self.batch_max = batch_max
        self.queue_max = queue_max
        self.timeout = timeout
        self._pending: list[_Pending] = []
        self._writing = False
        self._started = False
        self._tasks: set[asyncio.Task[None]] = set()  # hand-offs in flight (kept referenced)
        self._conn: asyncpg.Connection | None = None
        # Behind PgBouncer's transaction pooling, a session's role would stay on a server
        # connection other clients then use: each batch is its own transaction, as the
        # writer role (``SET LOCAL``). Otherwise the connection takes the role once.
        self._session_role = pgbouncer == "off"
        self._options = connect_options(pgbouncer)
        self._appender = audit_store.Appender(
            key or b"", None if self._session_role else audit_store.WRITER_ROLE
        )
        self._ready = False  # the store's schema is known to exist
        self._committed: audit_store.Head | None = None  # the last record this writer committed

    @property
    def configured(self) -> bool:
        return bool(self.dsn and self.key)

    @property
    def depth(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        if not self.configured:
            log.warning("no audit store configured: restricted data will not be served")
            return
        try:
            await self._ensure()
        except STORE_DOWN as exc:
            # Public data is still served; restricted reads fail closed until the store is back.
            log.warning("audit store unavailable at start: %s", exc)
        self._started = True

    async def record(self, entry: dict[str, Any]) -> int:
        """Write an entry (with whatever else is waiting) and return once it is committed;
        its sequence number."""
        if not self._started:
            raise AuditUnavailable("this gateway has no audit store")
        if len(self._pending) >= self.queue_max:
            metrics.audit_records.labels("refused").inc()
            raise AuditUnavailable("the audit queue is full")
        pending = _Pending(datetime.now(UTC), entry, asyncio.get_running_loop().create_future())
        self._pending.append(pending)
        if not self._writing:
            await self._write_next()
        # Every batch ends within its time limit (``_write``), committed or refused, and the
        # writer that ends it starts the next: the wait needs no timer of its own.
        return await pending.done

    async def committed_head(self) -> audit_store.Head | None:
        """The last record this writer committed, for a checkpoint; before its first commit,
        the store's head as this writer found it. None without a store."""
        if self._committed is not None or not self.configured:
            return self._committed
        conn = await self._connect()
        try:
            async with audit_store.as_role(conn, audit_store.WRITER_ROLE):
                row = await conn.fetchrow("SELECT seq, hash FROM audit.chain_head WHERE id = 1")
        finally:
            await conn.close()
        return None if row is None or row["seq"] == 0 else (row["seq"], bytes(row["hash"]))

    async def stop(self, drain_seconds: float = 30.0) -> None:
        """Commit every waiting entry (SIGTERM drain), then close the connection."""
        deadline = time.monotonic() + drain_seconds
        while (self._pending or self._writing) and time.monotonic() < deadline:
            if self._writing:
                await asyncio.sleep(0.01)
            else:
                await self._write_next()
        if self._pending:
            log.error("audit queue not drained: %d records not written", self.depth)
        self._started = False
        await self._disconnect()

    async def _write_next(self) -> None:
        """Write the waiting entries (up to ``batch_max``) as one batch; if more arrived
        meanwhile, start a task to write them."""
        self._writing = True
        try:
            batch, self._pending = self._pending[: self.batch_max], self._pending[self.batch_max :]
            metrics.audit_queue_depth.set(len(self._pending))
            await self._write(batch)
        finally:
            self._writing = False
            if self._pending:  # even when this writer was cancelled: nobody else would
                task = asyncio.create_task(self._write_if_idle(), name="audit-writer")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _write_if_idle(self) -> None:
        if self._pending and not self._writing:
            await self._write_next()

    async def _ensure(self) -> None:
        """Create the store on first use, as the login user: the writer role may not exist yet."""
        if not self._ready:
            conn = await self._connect(bounded=False)
            try:
                await audit_store.ensure_store(conn)
            finally:
                await conn.close()
            self._ready = True

    async def _connection(self) -> asyncpg.Connection:
        conn = self._conn
        if conn is None or conn.is_closed():
            await self._ensure()
            conn = await self._connect()
            if self._session_role:
                # Every write is made as the append-only role, whoever the login user is.
                await conn.execute(f"SET ROLE {audit_store.WRITER_ROLE}")
            self._conn = conn
        return conn

    async def _connect(self, *, bounded: bool = True) -> asyncpg.Connection:
        """A connection to the store; ``bounded``: each statement within the time limit
        (not the store's creation, which may wait for another replica's)."""
        command_timeout = self.timeout if bounded else None
        return await asyncpg.connect(
            self.dsn, timeout=self.timeout, command_timeout=command_timeout, **self._options
        )

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*STORE_DOWN):
                await conn.close(timeout=self.timeout)

    async def _write(self, batch: list[_Pending]) -> None:
        """Write one batch within the time limit; its time in ``bma_audit_write_seconds``,
        its records counted written or refused in ``bma_audit_records_total``."""
        began = time.perf_counter()
        written = False
        try:
            async with asyncio.timeout(self.timeout * 2):
                written = await self._append(batch)
        except TimeoutError:  # _append has refused the batch and dropped the connection
            log.warning("audit store write timed out (%d records refused)", len(batch))
        finally:
            metrics.audit_records.labels("written" if written else "refused").inc(len(batch))
            metrics.audit_write_seconds.observe(time.perf_counter() - began)

    async def _append(self, batch: list[_Pending]) -> bool:
        """Whether the batch was committed (its requests are answered either way)."""
        try:
            conn = await self._connection()
            seqs = await self._appender.append(conn, [(p.at, p.entry) for p in batch])
            self._committed = self._appender.head
        except STORE_DOWN as exc:
            log.warning("audit store write failed (%d records refused): %s", len(batch), exc)
            _refuse(batch)
            # The batch may or may not have committed: start afresh from the stored head.
            self._appender.head = None
            await self._disconnect()
            return False
        except asyncio.CancelledError:
            # The writing request gave up waiting: whether the batch committed is unknown,
            # and so is the connection's state. Refuse the batch; start afresh next time.
            _refuse(batch)
            self._appender.head = None
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.terminate()
            raise
        except Exception:  # a bug: refuse this batch, keep the writer alive for the next
            log.exception("audit write failed (%d records refused)", len(batch))
            _refuse(batch)
            return False
        for p, seq in zip(batch, seqs, strict=True):
            if not p.done.done():
                p.done.set_result(seq)
        return True


def _refuse(batch: list[_Pending]) -> None:
    for p in batch:
        if not p.done.done():
            p.done.set_exception(AuditUnavailable("the audit store is unavailable"))
