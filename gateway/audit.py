"""Auditing restricted reads: what execution saw, the record it becomes, and the writer.

Execution notes every restricted field it reads, masks or refuses (``AccessTrail``); the
executor turns the trail into one entry per operation (``access_entry``) and hands it to the
``AuditWriter``, which appends entries in batches to the hash-chained store
(``gateway.audit_store``). A response carrying restricted data leaves only after its record
is committed; when the store cannot take it, the response is refused with
``AUDIT_UNAVAILABLE`` instead (docs/audit.md states the guarantee).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from gateway import audit_store
from policies.model import Decision, Policy, Verdict
from policies.principal import Principal
from schema.audit_keys import keys_of

log = logging.getLogger("bma.audit")

ACCESS = {
    Decision.ALLOW: "clear",
    Decision.MASK: "masked",
    Decision.DENY: "denied",
    Decision.PURPOSE_REQUIRED: "denied",
}

# What a store that is down, unreachable or refusing looks like.
_STORE_DOWN = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    audit_store.AuditStoreError,
    TimeoutError,
)


class AuditUnavailable(Exception):
    code = "AUDIT_UNAVAILABLE"


@dataclass
class AccessTrail:
    """The restricted fields one operation touched, and the objects they were read from."""

    # (type, field) -> the plan's verdict on it and every object it was resolved on.
    seen: dict[tuple[str, str], tuple[Verdict, list[Any]]] = field(default_factory=dict)

    def saw(self, type_name: str, field_name: str, verdict: Verdict, source: Any) -> None:
        found = self.seen.get((type_name, field_name))
        if found is None:
            found = self.seen[(type_name, field_name)] = (verdict, [])
        found[1].append(source)

    def refused(self, verdicts: list[Verdict]) -> None:
        """Fields refused before execution (reject mode): no record was read."""
        for v in verdicts:
            self.seen.setdefault((v.rule.type_name, v.rule.field_name), (v, []))

    @property
    def touched(self) -> bool:
        return bool(self.seen)

    @property
    def revealed(self) -> bool:
        """Some restricted value (clear or masked) is in the answer."""
        return any(ACCESS[v.decision] != "denied" for v, _ in self.seen.values())


@dataclass(frozen=True)
class Caller:
    """Who asked, as the audit record names them."""

    principal: Principal
    request_id: str
    client: str | None


def access_entry(
    policy: Policy, caller: Caller, query: str, operation_name: str | None, trail: AccessTrail
) -> dict[str, Any]:
    """The audit entry of one operation (the JSON the chain hashes)."""
    fields: list[dict[str, Any]] = []
    records: set[str] = set()
    subjects: set[str] = set()
    for (type_name, _field), (verdict, sources) in trail.seen.items():
        access = ACCESS[verdict.decision]
        keys: set[str] = set()
        for source in sources:
            found, whose = keys_of(type_name, source)
            keys.update(found)
            if access != "denied":  # a refusal revealed nothing about the person
                subjects.update(whose)
        records |= keys
        read = {"field": verdict.rule.coordinate, "access": access, "records": sorted(keys)}
        if access == "denied":
            read["rule"] = _rule_text(verdict)
        fields.append(read)
    principal = caller.principal
    return {
        "requestId": caller.request_id,
        "subject": principal.subject,
        "organisation": principal.organisation,
        "audience": principal.kind,
        "issuer": principal.issuer,
        "credentialId": principal.credential_id,
        "clientAddress": caller.client,
        "purpose": principal.purpose,
        "lawfulBasis": policy.lawful_basis(principal.purpose),
        "operationName": operation_name,
        "documentHash": hashlib.sha256(query.encode()).hexdigest(),
        "outcome": _outcome(trail),
        "fields": sorted(fields, key=lambda f: (f["field"], f["access"])),
        "records": sorted(records),
        "subjects": sorted(subjects),
    }


def _outcome(trail: AccessTrail) -> str:
    accesses = {ACCESS[verdict.decision] for verdict, _ in trail.seen.values()}
    if "denied" not in accesses:
        return "allowed"
    return "partially_denied" if accesses - {"denied"} else "denied"


def _rule_text(verdict: Verdict) -> str:
    rule = verdict.rule
    tags = f" {' '.join(sorted(rule.tags))}" if rule.tags else ""
    return f"{rule.coordinate}: {rule.level.label}{tags} ({verdict.code})"


@dataclass
class _Pending:
    at: datetime
    entry: dict[str, Any]
    done: asyncio.Future[int]


class AuditWriter:
    """Appends entries in batches: whatever queued while the last batch was committing goes
    in the next transaction (group commit), so a busy gateway pays one commit per batch.

    Batches are written one at a time on one connection of the writer's own, as the
    append-only role; while this process is the only writer, a batch is one statement.
    (Two connections pipelining batches were measured slower: smaller batches, more
    commits, and the chain head's row lock orders them anyway.)
    """

    def __init__(
        self,
        dsn: str | None,
        key: bytes | None,
        *,
        batch_max: int = 256,
        queue_max: int = 10_000,
        timeout: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.key = key
        self.batch_max = batch_max
        self.timeout = timeout
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_max)
        self._conn: asyncpg.Connection | None = None
        self._appender = audit_store.Appender(key or b"")
        self._task: asyncio.Task[None] | None = None
        self._ready = False  # the store's schema is known to exist

    @property
    def configured(self) -> bool:
        return bool(self.dsn and self.key)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        if not self.configured:
            log.warning("no audit store configured: restricted data will not be served")
            return
        try:
            await self._ensure()
        except _STORE_DOWN as exc:
            # Public data is still served; restricted reads fail closed until the store is back.
            log.warning("audit store unavailable at start: %s", exc)
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def record(self, entry: dict[str, Any]) -> int:
        """Queue an entry and wait until it is committed; its sequence number."""
        if self._task is None or self._task.done():
            raise AuditUnavailable("this gateway has no audit store")
        pending = _Pending(datetime.now(UTC), entry, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise AuditUnavailable("the audit queue is full") from None
        try:
            # A timeout cancels the future; the writer then leaves it alone, and the record,
            # if it commits after all, belongs to a request that was refused.
            async with asyncio.timeout(self.timeout * 2):
                return await pending.done
        except TimeoutError:
            raise AuditUnavailable("the audit store did not confirm the record in time") from None

    async def stop(self, drain_seconds: float = 30.0) -> None:
        """Commit every queued entry (SIGTERM drain), then close the connection."""
        if self._task is not None:
            try:
                await asyncio.wait_for(self._queue.join(), drain_seconds)
            except TimeoutError:
                log.error("audit queue not drained: %d records not written", self.depth)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._disconnect()

    async def _ensure(self) -> None:
        """Create the store on first use, as the login user: the writer role may not exist yet."""
        if not self._ready:
            conn = await asyncpg.connect(self.dsn, timeout=self.timeout)
            try:
                await audit_store.ensure_store(conn)
            finally:
                await conn.close()
            self._ready = True

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Let requests that are finishing right now join this batch: one more commit
            # costs more than one turn of the event loop.
            await asyncio.sleep(0)
            while len(batch) < self.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _connection(self) -> asyncpg.Connection:
        conn = self._conn
        if conn is None or conn.is_closed():
            await self._ensure()
            conn = await asyncpg.connect(
                self.dsn, timeout=self.timeout, command_timeout=self.timeout
            )
            # Every write is made as the append-only role, whoever the login user is.
            await conn.execute(f"SET ROLE {audit_store.WRITER_ROLE}")
            self._conn = conn
        return conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*_STORE_DOWN):
                await conn.close(timeout=self.timeout)

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            conn = await self._connection()
            seqs = await self._appender.append(conn, [(p.at, p.entry) for p in batch])
        except _STORE_DOWN as exc:
            log.warning("audit store write failed (%d records refused): %s", len(batch), exc)
            _refuse(batch)
            # The batch may or may not have committed: start afresh from the stored head.
            self._appender.head = None
            await self._disconnect()
            return
        except Exception:  # a bug: refuse this batch, keep the writer alive for the next
            log.exception("audit write failed (%d records refused)", len(batch))
            _refuse(batch)
            return
        for p, seq in zip(batch, seqs, strict=True):
            if not p.done.done():
                p.done.set_result(seq)


def _refuse(batch: list[_Pending]) -> None:
    for p in batch:
        if not p.done.done():
            p.done.set_exception(AuditUnavailable("the audit store is unavailable"))
