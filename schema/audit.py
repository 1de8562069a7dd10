"""The audit log in the graph: ``accessLog`` for principals with the ``audit:read`` scope.

The data-subject report (PDPA s.30) is ``accessLog(filter: {dataSubject: "<13-digit id>"})``:
every read of a record about that person — their BMA TAX owner records, the parcels and
assessments those owned when read, the businesses registered to their id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.types import Info

from connectors.audit_log import AccessLogQuery, AuditUnavailable, audit_cursor
from connectors.base import Record
from schema.context import context_of
from schema.errors import BadUserInput
from schema.pagination import Connection, connection, page_request
from schema.selection import list_selection

MAX_FILTER_TEXT = 200


# Every field is nullable: restricted fields must be, so that a denied one can answer null.
@strawberry.type(description="การอ่านฟิลด์หนึ่ง / One restricted field an operation read.")
class FieldAccess:
    field: str | None = strawberry.field(description="ฟิลด์ Type.field / The field, as Type.field.")
    access: str | None = strawberry.field(description="clear, masked or denied.")
    rule: str | None = strawberry.field(description="กฎที่ปฏิเสธ / The rule that denied it.")
    records: list[str] | None = strawberry.field(
        description="ระเบียนที่อ่าน / Keys of records read (a refused field names none)."
    )
    count: int | None = strawberry.field(
        description="จำนวนครั้งที่ปฏิเสธ / How many records a refused field was refused on."
    )


@strawberry.type(description="บันทึกการเข้าถึง / One audited operation (docs/audit.md).")
class AccessRecord:
    seq: int | None = strawberry.field(description="ลำดับในสายโซ่ / Position in the hash chain.")
    at: datetime | None = strawberry.field(description="เวลา / When the record was written (UTC).")
    request_id: str | None = strawberry.field(description="X-Request-Id of the request.")
    subject: str | None = strawberry.field(description="ผู้เรียก / The principal's subject.")
    organisation: str | None = strawberry.field(description="หน่วยงาน / Organisation.")
    audience: str | None = strawberry.field(description="anonymous, app, partner or agency.")
    credential_id: str | None = strawberry.field(description="API key id or token id (jti).")
    client_address: str | None = strawberry.field(description="ที่อยู่ผู้เรียก / Client address.")
    purpose: str | None = strawberry.field(description="วัตถุประสงค์ / Declared purpose.")
    lawful_basis: str | None = strawberry.field(description="ฐานทางกฎหมาย / Lawful basis code.")
    operation_name: str | None = strawberry.field(description="GraphQL operation name.")
    document_hash: str | None = strawberry.field(description="SHA-256 of the GraphQL document.")
    outcome: str | None = strawberry.field(description="allowed, partially_denied or denied.")
    fields: list[FieldAccess] | None = strawberry.field(description="ฟิลด์ที่อ่าน / Fields read.")
    records: list[str] | None = strawberry.field(description="ระเบียน / Keys of every record read.")
    data_subjects: list[str] | None = strawberry.field(
        description="เจ้าของข้อมูล / Whose data: id:<13 digits> or owner:<BMA TAX owner id>."
    )

    @classmethod
    def of(cls, r: Record) -> AccessRecord:
        e: dict[str, Any] = r["entry"]
        return cls(
            seq=r["seq"],
            at=r["at"],
            request_id=e["requestId"],
            subject=e["subject"],
            organisation=e.get("organisation"),
            audience=e["audience"],
            credential_id=e.get("credentialId"),
            client_address=e.get("clientAddress"),
            purpose=e.get("purpose"),
            lawful_basis=e.get("lawfulBasis"),
            operation_name=e.get("operationName"),
            document_hash=e["documentHash"],
            outcome=e["outcome"],
            fields=[
                FieldAccess(
                    field=f["field"],
                    access=f["access"],
                    rule=f.get("rule"),
                    records=f.get("records"),
                    count=f.get("count"),
                )
                for f in e["fields"]
            ],
            records=e["records"],
            data_subjects=e["subjects"],
        )


@strawberry.input(description="ตัวกรองบันทึกการเข้าถึง / Which audit records to list.")
class AccessLogFilter:
    subject: str | None = None
    organisation: str | None = None
    field: str | None = strawberry.field(default=None, description="e.g. Owner.nationalId")
    record: str | None = strawberry.field(default=None, description="e.g. parcel:17")
    data_subject: str | None = strawberry.field(
        default=None,
        description="เลขประจำตัว 13 หลัก: every read about this person (PDPA s.30 report).",
    )
    purpose: str | None = None
    outcome: str | None = None
    since: datetime | None = strawberry.field(default=None, description="From (inclusive).")
    until: datetime | None = strawberry.field(default=None, description="To (exclusive).")


async def access_log(
    info: Info, filter: AccessLogFilter | None, first: int | None, after: str | None
) -> Connection[AccessRecord]:
    ctx = context_of(info)
    reader = ctx.connectors.audit_log
    if reader is None:
        raise AuditUnavailable("this gateway has no audit store")
    f = filter or AccessLogFilter()
    for name in ("subject", "organisation", "field", "record", "data_subject", "purpose"):
        value = getattr(f, name)
        if value is not None and not 0 < len(value) <= MAX_FILTER_TEXT:
            raise BadUserInput(f"filter values have 1 to {MAX_FILTER_TEXT} characters")
    subjects = None
    if f.data_subject is not None:
        owners = await ctx.connectors.tax.owner_ids_by_national_id(f.data_subject)
        subjects = (f"id:{f.data_subject}", *(f"owner:{o}" for o in owners))
    where = AccessLogQuery(
        subject=f.subject,
        organisation=f.organisation,
        field=f.field,
        record=f.record,
        data_subjects=subjects,
        purpose=f.purpose,
        outcome=f.outcome,
        since=_aware(f.since),
        until=_aware(f.until),
    )
    page = await reader.search(
        where, page_request(ctx.limits, first, after, count=list_selection(info).total)
    )
    return connection(page, AccessRecord.of, lambda r: audit_cursor(r["seq"]), after)


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC, the zone the log is written in."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
