"""The audit store: an append-only, hash-chained table in PostgreSQL.

Each record's ``hash`` is an HMAC-SHA256, under the audit key, of the previous record's hash,
its sequence number, its time and its canonical JSON entry. A record edited, deleted, inserted
or moved breaks the chain at that record, and without the key nobody can forge a chain that
verifies. Appends from every worker and replica serialise on the one ``chain_head`` row, so
the chain stays a single line however many processes write.

The gateway writes as the role ``bma_audit_writer``, which may INSERT records and advance the
head but not read, UPDATE or DELETE a record; triggers refuse those even to the table's owner.
See docs/audit.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import orjson

WRITER_ROLE = "bma_audit_writer"
GENESIS = bytes(32)  # the "previous hash" of record 1
KEY_BYTES = 32
# Serialises concurrent first starts (several replicas creating the schema at once).
_DDL_LOCK = 0x424D_4141_5544_4954  # "BMAAUDIT"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.records (
    seq bigint PRIMARY KEY,
    at timestamptz NOT NULL,
    entry jsonb NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS audit.chain_head (
    id smallint PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO audit.chain_head VALUES (1, 0, '\\x{GENESIS.hex()}') ON CONFLICT DO NOTHING;
CREATE INDEX IF NOT EXISTS records_at ON audit.records (at);
CREATE INDEX IF NOT EXISTS records_subjects ON audit.records USING gin ((entry -> 'subjects'));
CREATE INDEX IF NOT EXISTS records_records ON audit.records USING gin ((entry -> 'records'));
CREATE INDEX IF NOT EXISTS records_subject ON audit.records ((entry ->> 'subject'));

CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER records_append_only BEFORE UPDATE ON audit.records
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE OR REPLACE TRIGGER records_no_truncate BEFORE TRUNCATE ON audit.records
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

CREATE OR REPLACE FUNCTION audit.head_moves_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'the audit chain head only moves forward'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER head_forward BEFORE UPDATE ON audit.chain_head
    FOR EACH ROW EXECUTE FUNCTION audit.head_moves_forward();
CREATE OR REPLACE TRIGGER head_kept BEFORE DELETE ON audit.chain_head
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE OR REPLACE TRIGGER head_no_truncate BEFORE TRUNCATE ON audit.chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- Closed archives (`bma-gateway audit archive`): a record leaves the table only once an
-- archive holding it is recorded here, and an archive's row is never changed or removed.
CREATE TABLE IF NOT EXISTS audit.archives (
    first_seq bigint PRIMARY KEY,
    last_seq bigint NOT NULL UNIQUE,
    last_hash bytea NOT NULL,
    until timestamptz NOT NULL,
    digest bytea NOT NULL,
    made_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER archives_append_only BEFORE UPDATE OR DELETE ON audit.archives
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE OR REPLACE TRIGGER archives_no_truncate BEFORE TRUNCATE ON audit.archives
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
CREATE OR REPLACE FUNCTION audit.delete_archived_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq > coalesce((SELECT max(last_seq) FROM audit.archives), 0) THEN
        RAISE EXCEPTION 'audit records are append-only: record % is in no archive', OLD.seq
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END $$;
CREATE OR REPLACE TRIGGER records_archived_delete BEFORE DELETE ON audit.records
    FOR EACH ROW EXECUTE FUNCTION audit.delete_archived_only();

DO $$ BEGIN
    CREATE ROLE {WRITER_ROLE} NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
-- Exactly what an append needs: insert records (never read, change or delete them), and
-- read, lock and advance the head's seq and hash (the triggers keep it moving forward).
GRANT USAGE ON SCHEMA audit TO {WRITER_ROLE};
REVOKE ALL ON audit.records, audit.chain_head FROM {WRITER_ROLE};
GRANT INSERT ON audit.records TO {WRITER_ROLE};
GRANT SELECT, UPDATE (seq, hash) ON audit.chain_head TO {WRITER_ROLE};
"""


class AuditStoreError(RuntimeError):
    """The audit store cannot be set up or read; the message says what an operator must do."""


def load_key(path: Path) -> bytes:
    """The chain key: 32 random bytes, hex-encoded in a file every replica shares."""
    try:
        text = path.read_text("ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError) as exc:
        raise AuditStoreError(f"cannot read the audit key from {path}: {exc}") from None
    if len(key) < KEY_BYTES:
        raise AuditStoreError(f"the audit key in {path} must be at least {KEY_BYTES} bytes (hex)")
    return key


def create_key(path: Path) -> None:
    """Write a new random chain key, readable by its owner only."""
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="ascii") as f:
        path.chmod(0o600)
        f.write(secrets.token_hex(KEY_BYTES) + "\n")


async def ensure_store(conn: asyncpg.Connection) -> None:
    """Create the audit schema, its triggers and the writer role, once, whoever starts first."""
    if await _is_set_up(conn):
        return  # the usual start: nothing to create, no privileges needed
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK)
            await conn.execute(_DDL)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise AuditStoreError(
            f"cannot set up the audit store ({exc}); have the database's owner run "
            f"`bma-gateway audit init` once, then `GRANT {WRITER_ROLE} TO <the gateway's login>;`"
        ) from None


def writer_grant(login: str, server_major: int) -> str:
    """The statement that lets ``login`` act as the writer role. From PostgreSQL 16 a grant
    says whether the member may SET the role, and a role's creator already holds one that
    may not (``WITH ADMIN, INHERIT FALSE, SET FALSE``): a plain GRANT by the same grantor
    would leave it as it is, so the option is named."""
    if server_major >= 16:
        return f"GRANT {WRITER_ROLE} TO {login} WITH SET TRUE;"
    return f"GRANT {WRITER_ROLE} TO {login};"


async def writer_problem(conn: asyncpg.Connection) -> str | None:
    """What stops this login from appending to the chain as ``bma_audit_writer``, or None
    when nothing does. Tried in a transaction that is rolled back: the role taken, the head
    updated in place and a record inserted — nothing is left behind, the head does not move.

    A login that may create roles but is no member of the writer role (CREATEROLE alone, on
    PostgreSQL 15 and on 16, where the creator of a role is not made a member that may SET
    it) would start and then refuse every restricted read; this names the GRANT instead."""
    login = await conn.fetchval("SELECT quote_ident(session_user)")
    grant = writer_grant(login, conn.get_server_version().major)
    if not await _is_set_up(conn):
        if await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = session_user"):
            return None  # it creates the store at its first start, and may act as any role
        return (
            f"the audit store is not set up in this database and the login {login} is not a "
            "superuser: have the database's owner run `bma-gateway audit init`, then "
            f"`{grant}`"
        )
    attempt = conn.transaction()
    await attempt.start()
    try:
        await conn.execute(f"SET LOCAL ROLE {WRITER_ROLE}")
        await conn.execute("UPDATE audit.chain_head SET seq = seq, hash = hash WHERE id = 1")
        await conn.execute(
            "INSERT INTO audit.records (seq, at, entry, prev_hash, hash) "
            "VALUES (0, now(), '{}', '', '')"
        )
    except asyncpg.InsufficientPrivilegeError as exc:
        return (
            f"the login {login} cannot write audit records as {WRITER_ROLE} ({exc}); as the "
            f"audit store's owner or a superuser, run `{grant}`"
        )
    finally:
        if not conn.is_closed():
            await attempt.rollback()
    return None


async def _is_set_up(conn: asyncpg.Connection) -> bool:
    return bool(
        await conn.fetchval(
            """SELECT to_regclass('audit.chain_head') IS NOT NULL
                      AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)
                      AND EXISTS (SELECT 1 FROM pg_trigger
                                  WHERE tgname = 'records_archived_delete')""",
            WRITER_ROLE,
        )
    )


def canonical(entry: dict[str, Any]) -> bytes:
    # Entries hold strings, whole numbers, lists and nulls only: floats would not survive
    # the round trip through jsonb byte for byte (1e16 comes back as an integer).
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)


def chain_hash(key: bytes, prev: bytes, seq: int, at: datetime, entry: dict[str, Any]) -> bytes:
    return _hash_stamped(key, prev, seq, _stamp(at), canonical(entry))


def _stamp(at: datetime) -> bytes:
    return at.astimezone(UTC).isoformat(timespec="microseconds").encode()


def _hash_stamped(key: bytes, prev: bytes, seq: int, stamp: bytes, body: bytes) -> bytes:
    message = b"\n".join((prev, seq.to_bytes(8, "big"), stamp, body))
    return hmac.new(key, message, hashlib.sha256).digest()


Head = tuple[int, bytes]  # the last record's seq and hash
Item = tuple[datetime, dict[str, Any]]  # a record to append: its time and entry

# One round trip: advance the head from exactly the state the batch was linked to, and insert
# the batch only if that worked. A head another writer moved meanwhile matches nothing (the
# UPDATE re-checks its WHERE after waiting for that writer's lock), and nothing is written.
# The batch travels as one JSON array of [seq, time, entry, previous hash, hash] rows: one
# parameter to encode instead of five arrays element by element (measured: the encoding was
# the writer's largest cost in the gateway's process).
_APPEND_IF_HEAD = """
WITH head AS (
    UPDATE audit.chain_head SET seq = $3, hash = $4
    WHERE id = 1 AND seq = $1 AND hash = $2
    RETURNING 1
)
INSERT INTO audit.records (seq, at, entry, prev_hash, hash)
SELECT (r ->> 0)::bigint, (r ->> 1)::timestamptz, r -> 2,
       decode(r ->> 3, 'hex'), decode(r ->> 4, 'hex')
FROM jsonb_array_elements($5::text::jsonb) AS r
WHERE EXISTS (SELECT 1 FROM head)
"""


@dataclass(frozen=True)
class Linked:
    """A batch chained after a head: its rows as the append statement takes them."""

    first: int  # the first record's seq
    last: Head  # the last record's seq and hash: the head once the batch is written
    rows: str  # JSON array of [seq, time, entry, previous hash (hex), hash (hex)]

    @property
    def seqs(self) -> list[int]:
        return list(range(self.first, self.last[0] + 1))


class Appender:
    """Appends batches to the chain, remembering the head it last wrote.

    While one writer appends alone, a batch is a single statement (no separate read of the
    head, no explicit transaction). When another writer moved the head, the batch is linked
    again under the head's row lock.

    With ``role``, each batch is written in a transaction of its own as that role (``SET
    LOCAL ROLE``): for a connection that must keep no session state (behind PgBouncer in
    transaction mode, where a session's ``SET ROLE`` would stay on a server connection other
    clients then use). Without it, the connection is already the writer (``SET ROLE``).
    """

    def __init__(self, key: bytes, role: str | None = None) -> None:
        self.key = key
        self.role = role
        self.head: Head | None = None

    async def append(self, conn: asyncpg.Connection, items: Sequence[Item]) -> list[int]:
        head = self.head
        if head is not None:
            batch = link(self.key, head, items)
            # The next batch chains after this one, whether or not this one has committed.
            self.head = batch.last
            async with as_role(conn, self.role):
                if await _insert_if_head_is(conn, head, batch):
                    return batch.seqs
        self.head = None  # unknown until this batch is written
        async with as_role(conn, self.role, always=True):
            row = await conn.fetchrow(
                "SELECT seq, hash FROM audit.chain_head WHERE id = 1 FOR UPDATE"
            )
            head = (row["seq"], bytes(row["hash"]))
            batch = link(self.key, head, items)
            if not await _insert_if_head_is(conn, head, batch):
                # The head is locked by us: unreachable unless the table is tampered with.
                raise AuditStoreError("the audit chain head changed under its own lock")
        self.head = batch.last
        return batch.seqs


@contextlib.asynccontextmanager
async def as_role(
    conn: asyncpg.Connection, role: str | None, *, always: bool = False
) -> AsyncIterator[None]:
    """A transaction in which ``conn`` acts as ``role`` (``SET LOCAL ROLE``: gone at its end);
    without a role, a plain transaction when ``always``, else none (one statement is its own)."""
    if role is None:
        if always:
            async with conn.transaction():
                yield
        else:
            yield
        return
    # BEGIN and the role in one round trip (asyncpg's transaction() would take two).
    await conn.execute(f"BEGIN; SET LOCAL ROLE {role}")
    try:
        yield
    except BaseException:
        if not conn.is_closed():
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


async def _insert_if_head_is(conn: asyncpg.Connection, head: Head, batch: Linked) -> bool:
    seq, digest = batch.last
    status: str = await conn.execute(_APPEND_IF_HEAD, head[0], head[1], seq, digest, batch.rows)
    return status == f"INSERT 0 {seq - batch.first + 1}"


def link(key: bytes, head: Head, items: Sequence[Item]) -> Linked:
    """The batch chained after ``head``."""
    seq, prev = head
    rows = []
    for at, entry in items:
        seq += 1
        body, stamp = canonical(entry), _stamp(at)
        digest = _hash_stamped(key, prev, seq, stamp, body)
        rows.append((seq, stamp.decode(), orjson.Fragment(body), prev.hex(), digest.hex()))
        prev = digest
    return Linked(head[0] + 1, (seq, prev), orjson.dumps(rows).decode())


async def append(conn: asyncpg.Connection, key: bytes, items: Sequence[Item]) -> list[int]:
    """Append records (one writer's batch); returns their sequence numbers."""
    return await Appender(key).append(conn, items)


@dataclass(frozen=True)
class Verification:
    records: int  # records checked
    head_seq: int
    head_hash: str
    broken_at: int | None = None  # the first record that fails, None when the chain is intact
    reason: str = ""
    missing: int = 0  # records an anchor proves existed that the log no longer holds
    archived: int = 0  # records in archives that were not read (no archive files given)
    wrong_key: bool = False  # no record verifies with the key: it is not the chain's

    @property
    def intact(self) -> bool:
        return self.broken_at is None


@dataclass(frozen=True)
class Anchor:
    """A record's hash as witnessed outside the database (a signed checkpoint)."""

    seq: int
    hash: bytes
    source: str  # what witnessed it, for the report: "the checkpoint of <time>"


@dataclass(frozen=True)
class ArchiveRow:
    """A closed archive as ``audit.archives`` records it (``gateway.audit.archives``)."""

    first_seq: int
    last_seq: int
    last_hash: bytes  # the hash of its last record, where the live chain continues
    until: datetime
    digest: bytes  # SHA-256 of the archive file


class ChainBroken(Exception):
    """Raised by a source of records (an archive file) that shows tampering of its own."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


class ArchivedRecords(Protocol):
    """The records of closed archives, oldest first (the archive files)."""

    def records(self, archives: Sequence[ArchiveRow]) -> Iterator[Mapping[str, Any]]: ...


async def archives_of(conn: asyncpg.Connection) -> list[ArchiveRow]:
    rows = await conn.fetch(
        "SELECT first_seq, last_seq, last_hash, until, digest FROM audit.archives "
        "ORDER BY first_seq"
    )
    return [
        ArchiveRow(r["first_seq"], r["last_seq"], bytes(r["last_hash"]), r["until"],
                   bytes(r["digest"]))
        for r in rows
    ]  # fmt: skip


async def verify(
    conn: asyncpg.Connection,
    key: bytes,
    anchors: Sequence[Anchor] = (),
    archived: ArchivedRecords | None = None,
) -> Verification:
    """Walk the chain in order and name the first record that does not hold; with
    ``anchors``, also the first record that differs from one, or the records missing after the
    log's end that one names (a truncation the chain alone cannot show). Records moved to
    archives are walked from ``archived`` (the files) when given; else the walk starts where
    the last archive ends.

    The head and the records are read in one snapshot: a gateway appending meanwhile is
    neither seen half-way nor reported as a break.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT seq, hash FROM audit.chain_head WHERE id = 1")
        if head is None:
            raise AuditStoreError("the audit store has no chain head: was it ever initialised?")
        archives = await archives_of(conn)
        start: Head = (0, GENESIS)
        if archives and archived is None:
            start = (archives[-1].last_seq, archives[-1].last_hash)
        walk = ChainWalk(key, (head["seq"], bytes(head["hash"])), anchors, start)
        if archives and archived is not None:
            try:
                for row in archived.records(archives):
                    broken = walk.step(row)
                    if broken is not None:
                        return broken
            except ChainBroken as exc:
                return walk.broken(exc.seq, exc.reason)
        rows = conn.cursor(
            "SELECT seq, at, entry::text AS entry, prev_hash, hash FROM audit.records ORDER BY seq",
            prefetch=2000,
        )
        async for row in rows:
            broken = walk.step(row)
            if broken is not None:
                return broken
        return walk.end()


class ChainWalk:
    """Checks records one by one, in order, against the chain, its head and the anchors,
    from ``start`` (the record before the first one walked: none, or an archive's last)."""

    def __init__(
        self,
        key: bytes,
        head: Head,
        anchors: Sequence[Anchor] = (),
        start: Head = (0, GENESIS),
    ) -> None:
        self.key = key
        self.head_seq, self.head_hash = head
        self.anchors = {a.seq: a for a in sorted(anchors, key=lambda a: a.seq)}
        self.archived = start[0]
        self.expected, self.prev, self.checked = start[0] + 1, start[1], 0
        # The first record walked does not match its hash: an altered record, or a key that
        # is not the chain's. Set while the rest is searched for one the key does verify.
        self.first_altered: Verification | None = None

    def broken(self, seq: int, reason: str, missing: int = 0) -> Verification:
        return Verification(
            self.checked, self.head_seq, self.head_hash.hex(), seq, reason, missing, self.archived
        )

    def step(self, row: Mapping[str, Any]) -> Verification | None:
        if self.first_altered is not None:
            # A record whose own hash holds under the key proves it the chain's key.
            own = chain_hash(
                self.key, bytes(row["prev_hash"]), row["seq"], row["at"], orjson.loads(row["entry"])
            )
            return self.first_altered if hmac.compare_digest(own, bytes(row["hash"])) else None
        seq, expected = row["seq"], self.expected
        if seq < expected:
            return self.broken(
                seq, f"record {seq} is out of place: the chain continues at {expected}"
            )
        if seq > expected:
            return self.broken(expected, f"record {expected} is missing (record {seq} follows)")
        if bytes(row["prev_hash"]) != self.prev:
            return self.broken(
                seq, f"record {seq} does not follow record {seq - 1} (chain link differs)"
            )
        digest = chain_hash(self.key, self.prev, seq, row["at"], orjson.loads(row["entry"]))
        if not hmac.compare_digest(digest, bytes(row["hash"])):
            altered = self.broken(
                seq, f"record {seq} was altered: its contents do not match its hash"
            )
            if self.checked > 0:
                return altered
            self.first_altered = altered
            return None
        anchor = self.anchors.get(seq)
        if anchor is not None and not hmac.compare_digest(digest, anchor.hash):
            return self.broken(
                seq,
                f"record {seq} differs from {anchor.source}: the log was rewritten from "
                f"record {seq} or before",
            )
        self.prev, self.expected, self.checked = digest, expected + 1, self.checked + 1
        return None

    def end(self) -> Verification:
        if self.first_altered is not None:  # no record holds under this key
            return replace(
                self.first_altered,
                wrong_key=True,
                reason="the key does not match the chain: no record's hash verifies with it (it "
                "is not the key the chain was written with, or every record was rewritten)",
            )
        last, head = self.expected - 1, self.head_seq
        beyond = [a for a in self.anchors.values() if a.seq > last]
        if beyond:  # the newest records are gone, the head perhaps moved back to match
            latest = beyond[-1]
            missing = latest.seq - last
            return self.broken(
                last + 1,
                f"records {last + 1} to {latest.seq} are missing ({missing} records): "
                f"{latest.source} names record {latest.seq}, the log ends at record {last}",
                missing,
            )
        if head > last:
            return self.broken(
                last + 1, f"record {last + 1} is missing: the chain head names record {head}"
            )
        if head < last or self.head_hash != self.prev:
            return self.broken(head, f"the chain head (record {head}) does not match the log's end")
        return Verification(self.checked, head, self.head_hash.hex(), archived=self.archived)


async def rows_between(
    conn: asyncpg.Connection, since: datetime | None, until: datetime | None
) -> AsyncIterator[dict[str, Any]]:
    """Records in a time range, oldest first, as flat dictionaries (for export)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(
            """SELECT seq, at, entry::text AS entry, hash FROM audit.records
               WHERE ($1::timestamptz IS NULL OR at >= $1)
                 AND ($2::timestamptz IS NULL OR at < $2)
               ORDER BY seq""",
            since,
            until,
            prefetch=2000,
        ):
            yield {
                "seq": row["seq"],
                "at": row["at"].astimezone(UTC).isoformat(timespec="microseconds"),
                **orjson.loads(row["entry"]),
                "hash": bytes(row["hash"]).hex(),
            }
