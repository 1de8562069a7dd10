"""The root of the graph: what a client can ask for."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from connectors.registry import district_of_registration
from schema.audit import AccessLogFilter, AccessRecord, access_log
from schema.context import context_of
from schema.errors import BadUserInput
from schema.finance import (
    BudgetLine,
    BudgetLineFilter,
    InfrastructureProject,
    ProcessFilter,
    ProcurementProcess,
    ProjectFilter,
    budget_lines_page,
    budget_query,
    process_query,
    processes_page,
    project_query,
    projects_page,
)
from schema.pagination import Connection
from schema.types import (
    Business,
    BusinessFilter,
    Complaint,
    ComplaintFilter,
    District,
    Parcel,
    ParcelFilter,
    all_district_objects,
    business_query,
    businesses_page,
    complaint_query,
    complaints_page,
    district_code_arg,
    district_of,
    parcel_query,
    parcels_page,
)


@strawberry.type(description="BMA Data Gateway: ข้อมูลกรุงเทพมหานคร / Bangkok's data in one graph.")
class Query:
    @strawberry.field(description="เขตตามรหัส / One district by code, e.g. 1039.")
    def district(self, code: str) -> District | None:
        district_code_arg(code)
        return district_of(code)

    @strawberry.field(description="ทั้ง 50 เขต / All 50 districts, by code.")
    def districts(self) -> list[District]:
        return all_district_objects()

    @strawberry.field(description="เรื่องร้องเรียนตามเลขที่ / One complaint by ticket id.")
    async def complaint(self, info: Info, ticket_id: str) -> Complaint | None:
        if not 0 < len(ticket_id) <= 64:
            raise BadUserInput("a ticket id has 1 to 64 characters", argument="ticketId")
        r = await context_of(info).loaders.complaint.load(ticket_id)
        return Complaint.of(r) if r else None

    @strawberry.field(description="เรื่องร้องเรียน / Complaints, newest first.")
    async def complaints(
        self,
        info: Info,
        filter: ComplaintFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Complaint]:
        return await complaints_page(info, complaint_query(filter), first, after)

    @strawberry.field(description="แปลงที่ดินตามรหัส / One parcel by id.")
    async def parcel(self, info: Info, id: strawberry.ID) -> Parcel | None:
        text = str(id)
        if not (text.isascii() and text.isdigit() and len(text) <= 15):
            raise BadUserInput("a parcel id is a whole number of up to 15 digits", argument="id")
        # A parcel outside the caller's row scope answers null: the gateway holds every
        # row-scoped object to the scope, wherever it is reached (policies/row_scope.py).
        r = await context_of(info).loaders.parcel.load(int(text))
        return Parcel.of(r) if r else None

    @strawberry.field(description="แปลงที่ดิน / Parcels, by id.")
    async def parcels(
        self,
        info: Info,
        filter: ParcelFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Parcel]:
        return await parcels_page(info, parcel_query(filter), first, after)

    @strawberry.field(description="ทะเบียนพาณิชย์ตามเลขที่ / One business by registration number.")
    async def business(self, info: Info, registration_no: str) -> Business | None:
        if district_of_registration(registration_no) is None:
            raise BadUserInput(
                "a registration number looks like 1039-2566-00123", argument="registrationNo"
            )
        r = await context_of(info).loaders.business.load(registration_no)
        return Business.of(r) if r else None

    @strawberry.field(
        description="ทะเบียนพาณิชย์ทุกเขต / Businesses across district registries, by number."
    )
    async def businesses(
        self,
        info: Info,
        filter: BusinessFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Business]:
        return await businesses_page(info, business_query(filter), first, after)

    @strawberry.field(
        description="โครงการจัดซื้อจัดจ้างตามเลขที่ / One procurement process by e-GP number."
    )
    async def procurement_process(self, info: Info, id: strawberry.ID) -> ProcurementProcess | None:
        text = str(id)
        if not (text.isascii() and text.isdigit() and len(text) <= 20):
            raise BadUserInput("an e-GP project number is up to 20 digits", argument="id")
        r = await context_of(info).loaders.process.load(text)
        return ProcurementProcess.of(r) if r else None

    @strawberry.field(description="โครงการจัดซื้อจัดจ้าง / Procurement processes, by e-GP number.")
    async def procurement_processes(
        self,
        info: Info,
        filter: ProcessFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[ProcurementProcess]:
        return await processes_page(info, process_query(filter), first, after)

    @strawberry.field(description="รายการงบประมาณ / Budget lines (MIS2), by id.")
    async def budget_lines(
        self,
        info: Info,
        filter: BudgetLineFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[BudgetLine]:
        return await budget_lines_page(info, budget_query(filter), first, after)

    @strawberry.field(description="โครงการโครงสร้างพื้นฐาน / Public works (CoST), by id.")
    async def infrastructure_projects(
        self,
        info: Info,
        filter: ProjectFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[InfrastructureProject]:
        return await projects_page(info, project_query(filter), first, after)

    @strawberry.field(
        description="บันทึกการเข้าถึงข้อมูลที่จำกัด / The audit log of restricted reads, oldest "
        "first (scope audit:read). The data-subject report is filter: {dataSubject: ...}."
    )
    async def access_log(
        self,
        info: Info,
        filter: AccessLogFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[AccessRecord] | None:
        return await access_log(info, filter, first, after)
