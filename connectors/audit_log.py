"""Reading the gateway's own audit log (written by ``gateway.audit``), for ``accessLog``.

Read-only: pages of records matching a filter, oldest first, keyset-paged by sequence
number. The filters use the store's JSON indexes (``gateway.audit.store``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from connectors.base import (
    CallCounter,
    Page,
    PageRequest,
    SourceHealth,
    decode_position,
    encode_cursor,
)
from connectors.observer import QUIET, UpstreamObserver
from connectors.pg import PgPool, PgSource, PoolSettings, keyset_page_sql, page_from_rows


@dataclass(frozen=True)
class AccessLogQuery:
    subject: str | None = None  # the principal's subject
    organisation: str | None = None
    field: str | None = None  # Type.field
    record: str | None = None  # a record key: parcel:17, business:1039-2566-00123, ...
    data_subjects: tuple[str, ...] | None = None  # any of these keys; None: no such filter
    purpose: str | None = None
    outcome: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


_WHERE = """($1::text IS NULL OR entry ->> 'subject' = $1)
    AND ($2::text IS NULL OR entry ->> 'organisation' = $2)
    AND ($3::text IS NULL OR entry -> 'fields' @> jsonb_build_array(jsonb_build_object('field', $3::text)))
    AND ($4::text IS NULL OR entry -> 'records' ? $4)
    AND (NOT $5::bool OR entry -> 'subjects' ?| $6::text[])
    AND ($7::text IS NULL OR entry ->> 'purpose' = $7)
    AND ($8::text IS NULL OR entry ->> 'outcome' = $8)
    AND ($9::timestamptz IS NULL OR at >= $9)
    AND ($10::timestamptz IS NULL OR at < $10)"""


class AuditUnavailable(Exception):
    """The audit store cannot take or give records now, or the gateway has none: restricted
    data is not served (the writer) and the log cannot be read (``accessLog``)."""


class AuditLogConnector:
    name = "audit"

    def __init__(
        self, dsn: str, settings: PoolSettings | None = None, observer: UpstreamObserver = QUIET
    ) -> None:
        self.counter = CallCounter(observer)
        self._pool = PgPool(dsn, settings or PoolSettings(max_size=2))
        self._db = PgSource(self.name, self._pool, self.counter)

    async def start(self) -> None:
        await self._pool.start()

    async def stop(self) -> None:
        await self._pool.stop()

    async def health(self) -> list[SourceHealth]:
        return [await self._db.health()]

    async def search(self, where: AccessLogQuery, page: PageRequest) -> Page:
        sql = keyset_page_sql(
            "seq, at, entry::text AS entry",
            "audit.records",
            _WHERE,
            key="seq",
            after="$11",
            limit="$12",
            count=page.count,
        )
        rows = await self._db.fetch(
            sql,
            where.subject,
            where.organisation,
            where.field,
            where.record,
            where.data_subjects is not None,
            list(where.data_subjects or ()),
            where.purpose,
            where.outcome,
            where.since,
            where.until,
            decode_position("audit", page.after),
            page.first + 1,
        )
        found = page_from_rows(rows, page.first, "seq")
        for r in found.rows:
            r["entry"] = orjson.loads(r["entry"])
        return found


def audit_cursor(seq: int) -> str:
    return encode_cursor("audit", seq)
