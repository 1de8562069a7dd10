"""The finance and procurement graph: budget lines, procurement processes with their bids,
awards and contracts, suppliers, infrastructure projects, a district's spending, and the
integrity indicators computed from the joined data.

The data model follows the Open Contracting Data Standard: a process (``ocid``) has a tender
(method, budget, dates, amendments), bids, an award and a contract with milestones,
payments (implementation transactions) and amendments; parties are the buyer and the
suppliers. Public works carry the CoST disclosure items of their infrastructure project.
A process comes from its source whole (connectors/finance.py), so every plain field here is
read from the record; only the joins to other records (the registry business behind a
supplier, a project's process) go through DataLoaders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from connectors.base import Record
from connectors.finance import (
    JUST_UNDER_SHARE,
    RECENT_REGISTRATION_DAYS,
    SPLIT_WINDOW_DAYS,
    THRESHOLDS,
    BudgetQuery,
    ProcessQuery,
    ProjectQuery,
    budget_line_cursor,
    ocid,
    process_cursor,
    project_cursor,
)
from schema.context import context_of
from schema.errors import BadUserInput
from schema.pagination import Connection, connection, page_request
from schema.selection import list_selection

if TYPE_CHECKING:
    from schema.types import Business, District, GeoPoint

_District = Annotated["District", strawberry.lazy("schema.types")]
_Business = Annotated["Business", strawberry.lazy("schema.types")]
_GeoPoint = Annotated["GeoPoint", strawberry.lazy("schema.types")]

FIRST_FISCAL_YEAR, LAST_FISCAL_YEAR = 2500, 2700  # Buddhist era: a sanity range, not the data's

# ---------------------------------------------------------------------------- enums


@strawberry.enum(
    description="วิธีการจัดซื้อจัดจ้าง / Procurement method (Public Procurement Act B.E. 2560)."
)
class ProcurementMethod(Enum):
    E_BIDDING = "e_bidding"  # วิธีประกวดราคาอิเล็กทรอนิกส์
    E_MARKET = "e_market"  # วิธีตลาดอิเล็กทรอนิกส์
    SELECTION = "selection"  # วิธีคัดเลือก
    SPECIFIC = "specific"  # วิธีเฉพาะเจาะจง


@strawberry.enum(description="ประเภทการจัดซื้อจัดจ้าง / Goods, services or works.")
class ProcurementCategory(Enum):
    GOODS = "goods"
    SERVICES = "services"
    WORKS = "works"


@strawberry.enum(description="สถานะโครงการจัดซื้อจัดจ้าง / State of a procurement process.")
class ProcessStatus(Enum):
    TENDER = "tender"  # announced, bids not yet opened
    AWARDED = "awarded"
    CONTRACTED = "contracted"
    CANCELLED = "cancelled"


@strawberry.enum(description="งบรายจ่าย / Economic class of a budget line.")
class EconomicClass(Enum):
    PERSONNEL = "personnel"  # งบบุคลากร
    OPERATING = "operating"  # งบดำเนินงาน
    INVESTMENT = "investment"  # งบลงทุน
    SUBSIDY = "subsidy"  # งบอุดหนุน
    OTHER = "other"  # งบรายจ่ายอื่น
    CENTRAL = "central"  # งบกลาง


@strawberry.enum(description="ประเภทหน่วยรับงบประมาณ / A BMA department or a district office.")
class UnitKind(Enum):
    DEPARTMENT = "department"
    DISTRICT_OFFICE = "district_office"


@strawberry.enum(description="ประเภทผู้ขาย / Juristic or natural person.")
class SupplierKind(Enum):
    JURISTIC = "juristic"
    PERSON = "person"


@strawberry.enum(description="สถานะการเสนอราคา / Whether a bid was admitted.")
class BidStatus(Enum):
    VALID = "valid"
    DISQUALIFIED = "disqualified"


@strawberry.enum(description="สถานะสัญญา / State of a contract.")
class ContractStatus(Enum):
    ACTIVE = "active"
    COMPLETED = "completed"
    TERMINATED = "terminated"


@strawberry.enum(description="สถานะโครงการโครงสร้างพื้นฐาน / Stage of an infrastructure project.")
class ProjectStatus(Enum):
    PLANNING = "planning"
    IMPLEMENTATION = "implementation"
    COMPLETED = "completed"


# ---------------------------------------------------------------------------- inputs


@strawberry.input(description="ตัวกรองโครงการจัดซื้อจัดจ้าง / Procurement process filter.")
class ProcessFilter:
    fiscal_year: int | None = strawberry.field(
        default=None, description="ปีงบประมาณ (พ.ศ.) / Fiscal year, Buddhist era, e.g. 2568."
    )
    buyer: str | None = strawberry.field(
        default=None, description="รหัสหน่วยงานผู้ซื้อ / Buyer unit code, e.g. S01 or K1039."
    )
    district: str | None = strawberry.field(
        default=None, description="รหัสเขตของสำนักงานเขตผู้ซื้อ / District of the buying office."
    )
    method: ProcurementMethod | None = strawberry.field(default=None, description="วิธี / Method.")
    category: ProcurementCategory | None = strawberry.field(
        default=None, description="ประเภท / Category."
    )
    status: ProcessStatus | None = strawberry.field(default=None, description="สถานะ / State.")
    announced_from: date | None = strawberry.field(
        default=None, description="ประกาศตั้งแต่วันที่ / Announced on or after this date."
    )
    announced_until: date | None = strawberry.field(
        default=None, description="ประกาศถึงวันที่ / Announced on or before this date."
    )


@strawberry.input(description="ตัวกรองรายการงบประมาณ / Budget line filter.")
class BudgetLineFilter:
    fiscal_year: int | None = strawberry.field(
        default=None, description="ปีงบประมาณ (พ.ศ.) / Fiscal year, Buddhist era."
    )
    unit: str | None = strawberry.field(
        default=None, description="รหัสหน่วยรับงบประมาณ / Receiving unit code."
    )
    district: str | None = strawberry.field(
        default=None, description="รหัสเขตของสำนักงานเขต / District of the receiving office."
    )
    economic_class: EconomicClass | None = strawberry.field(
        default=None, description="งบรายจ่าย / Economic class."
    )


@strawberry.input(description="ตัวกรองโครงการโครงสร้างพื้นฐาน / Infrastructure project filter.")
class ProjectFilter:
    id: strawberry.ID | None = strawberry.field(
        default=None, description="รหัสโครงการ / One project, by its id."
    )
    fiscal_year: int | None = strawberry.field(
        default=None, description="ปีงบประมาณ (พ.ศ.) / Fiscal year of its procurement."
    )
    district: str | None = strawberry.field(default=None, description="รหัสเขต / Where it is.")
    status: ProjectStatus | None = strawberry.field(default=None, description="สถานะ / Stage.")


def fiscal_year_arg(year: int | None, argument: str = "filter.fiscalYear") -> tuple[int, ...]:
    if year is None:
        return ()
    if not FIRST_FISCAL_YEAR <= year <= LAST_FISCAL_YEAR:
        raise BadUserInput(
            f"`{argument.rsplit('.', 1)[-1]}` is a Buddhist-era fiscal year, e.g. 2568",
            argument=argument,
        )
    return (year,)


def _unit_arg(code: str | None, argument: str) -> tuple[str, ...]:
    if code is None:
        return ()
    if not (0 < len(code) <= 10 and code.isascii() and code.isalnum()):
        raise BadUserInput("a unit code looks like S01 or K1039", argument=argument)
    return (code,)


def _district_arg(code: str | None) -> tuple[str, ...]:
    from schema.types import district_code_arg

    return district_code_arg(code)


def process_query(f: ProcessFilter | None) -> ProcessQuery:
    f = f or ProcessFilter()
    return ProcessQuery(
        fiscal_years=fiscal_year_arg(f.fiscal_year),
        buyer_codes=_unit_arg(f.buyer, "filter.buyer"),
        district_codes=_district_arg(f.district),
        methods=(f.method.value,) if f.method else (),
        categories=(f.category.value,) if f.category else (),
        statuses=(f.status.value,) if f.status else (),
        announced_from=f.announced_from,
        announced_until=f.announced_until,
    )


def budget_query(f: BudgetLineFilter | None) -> BudgetQuery:
    f = f or BudgetLineFilter()
    return BudgetQuery(
        fiscal_years=fiscal_year_arg(f.fiscal_year),
        unit_codes=_unit_arg(f.unit, "filter.unit"),
        district_codes=_district_arg(f.district),
        economic_classes=(f.economic_class.value,) if f.economic_class else (),
    )


def project_query(f: ProjectFilter | None) -> ProjectQuery:
    f = f or ProjectFilter()
    return ProjectQuery(
        ids=(str(f.id),) if f.id is not None else (),
        fiscal_years=fiscal_year_arg(f.fiscal_year),
        district_codes=_district_arg(f.district),
        statuses=(f.status.value,) if f.status else (),
    )


# ---------------------------------------------------------------------------- parties


def _district(code: str | None) -> District | None:
    from schema.types import district_of

    return district_of(code)


@strawberry.type(
    description="หน่วยงาน / A BMA department or district office (buyer, receiving unit)."
)
class BudgetUnit:
    code: str = strawberry.field(description="รหัสหน่วยงาน / Unit code.")
    name_th: str = strawberry.field(description="ชื่อภาษาไทย / Thai name.")
    name_en: str = strawberry.field(description="ชื่อภาษาอังกฤษ / English name.")
    kind: UnitKind = strawberry.field(description="ประเภท / Department or district office.")
    district_code: strawberry.Private[str | None]

    @strawberry.field(description="เขตที่สำนักงานเขตดูแล / The district a district office serves.")
    def district(self) -> _District | None:
        return _district(self.district_code)


def _unit(code: str, name_th: str, name_en: str, kind: str, district: str | None) -> BudgetUnit:
    return BudgetUnit(
        code=code, name_th=name_th, name_en=name_en, kind=UnitKind(kind), district_code=district
    )


@strawberry.type(description="ผู้ขายหรือผู้รับจ้าง / A supplier: a juristic or natural person.")
class Supplier:
    id: strawberry.ID = strawberry.field(description="รหัสผู้ขายในระบบ / Supplier record id.")
    kind: SupplierKind = strawberry.field(description="นิติบุคคลหรือบุคคลธรรมดา / Kind.")
    name: str = strawberry.field(description="ชื่อผู้ขาย / Name, as published with the award.")
    juristic_id: str | None = strawberry.field(
        description="เลขทะเบียนนิติบุคคล / 13-digit juristic id; null for a natural person."
    )
    national_id: str | None = strawberry.field(
        description="เลขประจำตัวประชาชน / A natural person's 13-digit id; null for a company."
    )
    address: str | None = strawberry.field(description="ที่อยู่ / Address.")
    registration_no: str | None = strawberry.field(
        description="เลขทะเบียนพาณิชย์ที่สำนักงานเขต / Commercial registration, if any."
    )

    @classmethod
    def of(cls, r: Record) -> Supplier:
        person = r["kind"] == "person"
        return cls(
            id=strawberry.ID(str(r["id"])),
            kind=SupplierKind(r["kind"]),
            name=r["name"],
            juristic_id=None if person else r["tax_id"],
            national_id=r["tax_id"] if person else None,
            address=r["address"],
            registration_no=r["registration_no"],
        )

    @strawberry.field(description="กิจการในทะเบียนพาณิชย์ของเขต / The business (district registry).")
    async def business(self, info: Info) -> _Business | None:
        from schema.types import Business

        if self.registration_no is None:
            return None
        r = await context_of(info).loaders.business.load(self.registration_no)
        return Business.of(r) if r else None


# ---------------------------------------------------------------------------- budget


@strawberry.type(description="รายการงบประมาณ / A budget line (MIS2): unit, plan, project, class.")
class BudgetLine:
    id: strawberry.ID = strawberry.field(description="รหัสรายการ / Line id.")
    fiscal_year: int = strawberry.field(description="ปีงบประมาณ (พ.ศ.) / Fiscal year.")
    unit: BudgetUnit = strawberry.field(description="หน่วยรับงบประมาณ / Receiving unit.")
    plan: str = strawberry.field(description="แผนงาน / Plan.")
    project: str = strawberry.field(description="ผลผลิต/โครงการ / Output or project.")
    economic_class: EconomicClass = strawberry.field(description="งบรายจ่าย / Economic class.")
    proposed: Decimal = strawberry.field(description="งบที่เสนอ / Proposed, baht.")
    approved: Decimal = strawberry.field(description="งบที่ได้รับอนุมัติ / Approved, baht.")
    adjusted: Decimal = strawberry.field(
        description="โอนเพิ่ม/ลดระหว่างปี / Transfers in (+) and out (-) in the year, baht."
    )
    disbursed: Decimal = strawberry.field(description="เบิกจ่ายแล้ว / Disbursed, baht.")

    @classmethod
    def of(cls, r: Record) -> BudgetLine:
        return cls(
            id=strawberry.ID(str(r["id"])),
            fiscal_year=r["fiscal_year"],
            unit=_unit(
                r["unit_code"],
                r["unit_name_th"],
                r["unit_name_en"],
                r["unit_kind"],
                r["unit_district"],
            ),
            plan=r["plan"],
            project=r["project"],
            economic_class=EconomicClass(r["economic_class"]),
            proposed=r["proposed"],
            approved=r["approved"],
            adjusted=r["adjusted"],
            disbursed=r["disbursed"],
        )


# ---------------------------------------------------------------------------- procurement


@strawberry.type(description="การเสนอราคา / A bid: the bidder and its offered price.")
class Bid:
    supplier: Supplier = strawberry.field(description="ผู้เสนอราคา / Bidder.")
    offered_price: Decimal = strawberry.field(description="ราคาที่เสนอ / Offered price, baht.")
    submitted_on: date = strawberry.field(description="วันที่ยื่น / Submitted on.")
    status: BidStatus = strawberry.field(description="ผ่านคุณสมบัติหรือไม่ / Admitted or not.")


@strawberry.type(description="การประกาศผู้ชนะ / The award.")
class Award:
    id: strawberry.ID = strawberry.field(description="รหัสการประกาศผล / Award id.")
    value: Decimal = strawberry.field(description="ราคาที่ตกลง / Awarded value, baht.")
    awarded_on: date = strawberry.field(description="วันประกาศผู้ชนะ / Awarded on.")
    supplier: Supplier = strawberry.field(description="ผู้ชนะ / The winning supplier.")


@strawberry.type(description="งวดงาน / A contract milestone (delivery or instalment).")
class Milestone:
    seq: int = strawberry.field(description="งวดที่ / Number.")
    title: str = strawberry.field(description="ชื่องวด / Title.")
    due_on: date = strawberry.field(description="กำหนดส่ง / Due on.")
    met_on: date | None = strawberry.field(description="วันส่งมอบ / Delivered on.")
    value: Decimal = strawberry.field(description="มูลค่างวด / Value, baht.")


@strawberry.type(description="การเบิกจ่าย / A payment to the supplier (implementation).")
class Payment:
    id: strawberry.ID = strawberry.field(description="รหัสการเบิกจ่าย / Payment id.")
    paid_on: date = strawberry.field(description="วันที่จ่าย / Paid on.")
    amount: Decimal = strawberry.field(description="จำนวนเงิน / Amount, baht.")
    milestone_seq: int = strawberry.field(description="งวดที่จ่าย / The milestone paid.")


@strawberry.type(description="การแก้ไข / An amendment of the tender or the contract.")
class Amendment:
    id: strawberry.ID = strawberry.field(description="รหัสการแก้ไข / Amendment id.")
    amended_on: date = strawberry.field(description="วันที่แก้ไข / Amended on.")
    rationale: str = strawberry.field(description="เหตุผล / Rationale.")
    value_before: Decimal | None = strawberry.field(description="มูลค่าเดิม / Value before.")
    value_after: Decimal | None = strawberry.field(description="มูลค่าใหม่ / Value after.")
    ends_before: date | None = strawberry.field(description="วันสิ้นสุดเดิม / End before.")
    ends_after: date | None = strawberry.field(description="วันสิ้นสุดใหม่ / End after.")

    @classmethod
    def of(cls, r: Record) -> Amendment:
        return cls(
            id=strawberry.ID(str(r["id"])),
            amended_on=r["amended_on"],
            rationale=r["rationale"],
            value_before=r["value_before"],
            value_after=r["value_after"],
            ends_before=r["ends_before"],
            ends_after=r["ends_after"],
        )


@dataclass(frozen=True)
class IntegrityFacts:
    """What the indicators are computed from, taken from one process record."""

    method: str
    budget: Decimal
    valid_bids: int
    award_value: Decimal | None
    contract_value: Decimal | None  # as signed
    nearby_awards: tuple[tuple[date, Decimal], ...]  # same buyer and supplier, around this one
    awarded_on: date | None
    announced_on: date
    registration_no: str | None  # of the winning supplier


def threshold_just_under(value: Decimal | None) -> Decimal | None:
    """The procurement threshold ``value`` sits just under (95-100% of it), if any."""
    if value is None:
        return None
    return next((t for t in THRESHOLDS if t * JUST_UNDER_SHARE <= value <= t), None)


def split_threshold(
    awarded_on: date | None, nearby: tuple[tuple[date, Decimal], ...]
) -> Decimal | None:
    """The threshold crossed by this award and others of its buyer to its supplier within
    any 30-day window holding it, each of them at or under the threshold; None if none."""
    if awarded_on is None:
        return None
    for threshold in THRESHOLDS:
        small = [(d, v) for d, v in nearby if v <= threshold]
        for start, _ in small:
            end = start + timedelta(days=SPLIT_WINDOW_DAYS)
            if not start <= awarded_on <= end:
                continue
            window = [v for d, v in small if start <= d <= end]
            if len(window) >= 2 and sum(window, Decimal(0)) > threshold:
                return threshold
    return None


@strawberry.type(
    description="ตัวชี้วัดความเสี่ยงการทุจริต / Integrity indicators (red flags), from the joined data."
)
class IntegrityIndicators:
    single_bidder: bool = strawberry.field(
        description="ผู้เสนอราคารายเดียว / A competitive method (e-bidding, e-market, selection) "
        "drew one admitted bid."
    )
    award_equals_budget: bool = strawberry.field(
        description="ราคาที่ชนะเท่ากับวงเงินงบประมาณ / The award is exactly the budget."
    )
    just_under_threshold: Decimal | None = strawberry.field(
        description="มูลค่าสัญญาต่ำกว่าเกณฑ์เล็กน้อย / The threshold (100,000, 500,000 or "
        "5,000,000 baht) the contract value is at or just under (within 5%); null if none."
    )
    split_threshold: Decimal | None = strawberry.field(
        description="แบ่งซื้อแบ่งจ้าง / The threshold that several awards by this buyer to this "
        "supplier within 30 days, each under it, cross together; null if none."
    )
    registration_no: strawberry.Private[str | None]
    announced_on: strawberry.Private[date]

    @classmethod
    def of(cls, facts: IntegrityFacts) -> IntegrityIndicators:
        competitive = facts.method != "specific"
        return cls(
            single_bidder=competitive and facts.valid_bids == 1,
            award_equals_budget=facts.award_value is not None and facts.award_value == facts.budget,
            just_under_threshold=threshold_just_under(facts.contract_value),
            split_threshold=split_threshold(facts.awarded_on, facts.nearby_awards),
            registration_no=facts.registration_no,
            announced_on=facts.announced_on,
        )

    @strawberry.field(
        description="ผู้ชนะจดทะเบียนพาณิชย์ไม่นานก่อนประกาศ / Days from the winner's commercial "
        "registration (district registry) to the announcement, when under 180 (negative: "
        "registered after it); null when longer, or the winner has no registration."
    )
    async def supplier_registered_days_before(self, info: Info) -> int | None:
        if self.registration_no is None:
            return None
        business = await context_of(info).loaders.business.load(self.registration_no)
        if business is None:
            return None
        days: int = (self.announced_on - business["registered_on"]).days
        return days if days < RECENT_REGISTRATION_DAYS else None


@strawberry.type(description="สัญญา / A contract: value, period, milestones, payments, amendments.")
class Contract:
    id: strawberry.ID = strawberry.field(description="รหัสสัญญา / Contract id.")
    contract_no: str = strawberry.field(description="เลขที่สัญญา / Contract number.")
    original_value: Decimal = strawberry.field(description="มูลค่าตามสัญญาเดิม / Value as signed.")
    value: Decimal = strawberry.field(description="มูลค่าปัจจุบัน / Value after amendments, baht.")
    signed_on: date = strawberry.field(description="วันลงนาม / Signed on.")
    starts_on: date = strawberry.field(description="วันเริ่มสัญญา / Starts on.")
    original_ends_on: date = strawberry.field(description="วันสิ้นสุดเดิม / End as signed.")
    ends_on: date = strawberry.field(description="วันสิ้นสุด / End after amendments.")
    status: ContractStatus = strawberry.field(description="สถานะ / State.")
    supplier: Supplier = strawberry.field(description="คู่สัญญา / The supplier.")
    milestones: list[Milestone] = strawberry.field(description="งวดงาน / Milestones.")
    payments: list[Payment] = strawberry.field(description="การเบิกจ่าย / Payments.")
    amendments: list[Amendment] = strawberry.field(description="การแก้ไขสัญญา / Amendments.")
    parent: strawberry.Private[ProcurementProcess]

    @strawberry.field(description="โครงการจัดซื้อจัดจ้าง / The procurement process.")
    def process(self) -> ProcurementProcess:
        return self.parent

    @strawberry.field(description="ตัวชี้วัดความเสี่ยง / Integrity indicators of its process.")
    def integrity(self) -> IntegrityIndicators:
        return IntegrityIndicators.of(self.parent.facts)


@strawberry.type(description="โครงการจัดซื้อจัดจ้าง / A procurement process (e-GP), as OCDS sees it.")
class ProcurementProcess:
    id: strawberry.ID = strawberry.field(description="เลขที่โครงการ e-GP / e-GP project number.")
    ocid: str = strawberry.field(description="Open Contracting id: ocds-bq4ldt- and the number.")
    fiscal_year: int = strawberry.field(description="ปีงบประมาณ (พ.ศ.) / Fiscal year.")
    title: str = strawberry.field(description="ชื่อโครงการ / Title.")
    buyer: BudgetUnit = strawberry.field(description="หน่วยงานผู้ซื้อ / Buyer.")
    budget_line_id: strawberry.ID = strawberry.field(
        description="รายการงบประมาณที่ใช้ / The budget line it spends."
    )
    economic_class: EconomicClass = strawberry.field(description="งบรายจ่าย / Economic class.")
    method: ProcurementMethod = strawberry.field(description="วิธี / Method.")
    category: ProcurementCategory = strawberry.field(description="ประเภท / Category.")
    budget: Decimal = strawberry.field(description="วงเงินงบประมาณ / Budget, baht.")
    reference_price: Decimal = strawberry.field(description="ราคากลาง / Reference price, baht.")
    announced_on: date = strawberry.field(description="วันประกาศ / Announced on.")
    bid_deadline: date | None = strawberry.field(description="วันยื่นข้อเสนอ / Bids due on.")
    status: ProcessStatus = strawberry.field(description="สถานะ / State.")
    bids: list[Bid] = strawberry.field(description="ผู้เสนอราคา / Bids, lowest first.")
    award: Award | None = strawberry.field(description="ผู้ชนะ / The award.")
    amendments: list[Amendment] = strawberry.field(
        description="การแก้ไขประกาศ / Amendments of the tender."
    )
    contract_record: strawberry.Private[Record | None]
    project_record: strawberry.Private[Record | None]
    facts: strawberry.Private[IntegrityFacts]

    @classmethod
    def of(cls, r: Record) -> ProcurementProcess:
        bids = [
            Bid(
                supplier=Supplier.of(b["supplier"]),
                offered_price=b["offered_price"],
                submitted_on=b["submitted_on"],
                status=BidStatus(b["status"]),
            )
            for b in r["bids"]
        ]
        a = r["award"]
        c = r["contract"]
        winner = (c or a or {}).get("supplier") or {}
        return cls(
            id=strawberry.ID(r["id"]),
            ocid=ocid(r["id"]),
            fiscal_year=r["fiscal_year"],
            title=r["title"],
            buyer=_unit(
                r["buyer_code"],
                r["buyer_name_th"],
                r["buyer_name_en"],
                r["buyer_kind"],
                r["buyer_district"],
            ),
            budget_line_id=strawberry.ID(str(r["budget_line_id"])),
            economic_class=EconomicClass(r["economic_class"]),
            method=ProcurementMethod(r["method"]),
            category=ProcurementCategory(r["category"]),
            budget=r["budget"],
            reference_price=r["reference_price"],
            announced_on=r["announced_on"],
            bid_deadline=r["bid_deadline"],
            status=ProcessStatus(r["status"]),
            bids=bids,
            award=Award(
                id=strawberry.ID(str(a["id"])),
                value=a["value"],
                awarded_on=a["awarded_on"],
                supplier=Supplier.of(a["supplier"]),
            )
            if a
            else None,
            amendments=[Amendment.of(x) for x in r["tender_amendments"]],
            contract_record=c,
            project_record=r["project"],
            facts=IntegrityFacts(
                method=r["method"],
                budget=r["budget"],
                valid_bids=sum(b.status is BidStatus.VALID for b in bids),
                award_value=a["value"] if a else None,
                contract_value=c["original_value"] if c else None,
                nearby_awards=tuple((n["awarded_on"], n["value"]) for n in r["nearby_awards"]),
                awarded_on=a["awarded_on"] if a else None,
                announced_on=r["announced_on"],
                registration_no=winner.get("registration_no"),
            ),
        )

    @strawberry.field(description="สัญญา / The contract, once signed.")
    def contract(self) -> Contract | None:
        c = self.contract_record
        if c is None:
            return None
        return Contract(
            id=strawberry.ID(str(c["id"])),
            contract_no=c["contract_no"],
            original_value=c["original_value"],
            value=c["value"],
            signed_on=c["signed_on"],
            starts_on=c["starts_on"],
            original_ends_on=c["original_ends_on"],
            ends_on=c["ends_on"],
            status=ContractStatus(c["status"]),
            supplier=Supplier.of(c["supplier"]),
            milestones=[
                Milestone(
                    seq=m["seq"],
                    title=m["title"],
                    due_on=m["due_on"],
                    met_on=m["met_on"],
                    value=m["value"],
                )
                for m in c["milestones"]
            ],
            payments=[
                Payment(
                    id=strawberry.ID(str(y["id"])),
                    paid_on=y["paid_on"],
                    amount=y["amount"],
                    milestone_seq=y["milestone_seq"],
                )
                for y in c["payments"]
            ],
            amendments=[Amendment.of(x) for x in c["amendments"]],
            parent=self,
        )

    @strawberry.field(
        description="โครงการโครงสร้างพื้นฐาน / The infrastructure project, for public works."
    )
    def infrastructure_project(self) -> InfrastructureProject | None:
        j = self.project_record
        return InfrastructureProject.of({**j, "fiscal_year": self.fiscal_year}) if j else None

    @strawberry.field(description="ตัวชี้วัดความเสี่ยง / Integrity indicators (red flags).")
    def integrity(self) -> IntegrityIndicators:
        return IntegrityIndicators.of(self.facts)


# ---------------------------------------------------------------------------- infrastructure


@strawberry.type(
    description="โครงการโครงสร้างพื้นฐาน / A public work, with the CoST disclosure items."
)
class InfrastructureProject:
    id: strawberry.ID = strawberry.field(description="รหัสโครงการ / Project id.")
    title: str = strawberry.field(description="ชื่อโครงการ / Title.")
    purpose: str = strawberry.field(description="วัตถุประสงค์ / Purpose.")
    sector: str = strawberry.field(description="สาขา / Sector, e.g. transport.road.")
    location: _GeoPoint = strawberry.field(description="ที่ตั้ง / Where.")
    budget: Decimal = strawberry.field(description="งบประมาณโครงการ / Budget, baht.")
    progress_pct: Decimal = strawberry.field(description="ความก้าวหน้า (%) / Progress, % paid.")
    status: ProjectStatus = strawberry.field(description="สถานะ / Stage.")
    fiscal_year: int = strawberry.field(description="ปีงบประมาณ (พ.ศ.) / Fiscal year.")
    district_code: strawberry.Private[str]
    process_id: strawberry.Private[str]

    @classmethod
    def of(cls, r: Record) -> InfrastructureProject:
        from schema.types import GeoPoint

        return cls(
            id=strawberry.ID(r["id"]),
            title=r["title"],
            purpose=r["purpose"],
            sector=r["sector"],
            location=GeoPoint(lat=r["lat"], lon=r["lon"]),
            budget=Decimal(r["budget"]),
            progress_pct=Decimal(r["progress_pct"]),
            status=ProjectStatus(r["status"]),
            fiscal_year=r["fiscal_year"],
            district_code=r["district_code"],
            process_id=r["process_id"],
        )

    @strawberry.field(description="เขต / District.")
    def district(self) -> _District | None:
        return _district(self.district_code)

    @strawberry.field(description="การจัดซื้อจัดจ้าง / Its procurement: contractor, contract, changes.")
    async def process(self, info: Info) -> ProcurementProcess | None:
        r = await context_of(info).loaders.process.load(self.process_id)
        return ProcurementProcess.of(r) if r else None


# ---------------------------------------------------------------------------- spending


@strawberry.type(description="สัญญาตามวิธีจัดซื้อจัดจ้าง / Contracts signed by one method.")
class MethodSpending:
    method: ProcurementMethod = strawberry.field(description="วิธี / Method.")
    contracts: int = strawberry.field(description="จำนวนสัญญา / Contracts.")
    value: Decimal = strawberry.field(description="มูลค่ารวม / Their value, baht.")


@strawberry.type(description="การใช้จ่ายของสำนักงานเขตในปีงบประมาณ / A district office's spending.")
class DistrictSpending:
    fiscal_year: int = strawberry.field(description="ปีงบประมาณ (พ.ศ.) / Fiscal year.")
    approved: Decimal = strawberry.field(description="งบที่ได้รับอนุมัติ / Approved, baht.")
    adjusted: Decimal = strawberry.field(description="โอนเพิ่ม/ลด / Adjusted, baht.")
    disbursed: Decimal = strawberry.field(description="เบิกจ่ายแล้ว / Disbursed, baht.")
    contracted: Decimal = strawberry.field(
        description="มูลค่าสัญญา / Value of the office's contracts of the year, baht."
    )
    contract_count: int = strawberry.field(description="จำนวนสัญญา / Contracts.")
    by_method: list[MethodSpending] = strawberry.field(description="ตามวิธี / By method.")

    @classmethod
    def of(cls, r: Record) -> DistrictSpending:
        methods = [
            MethodSpending(
                method=ProcurementMethod(m["method"]),
                contracts=m["contracts"],
                value=Decimal(m["value"]),
            )
            for m in r["by_method"]
        ]
        return cls(
            fiscal_year=r["fiscal_year"],
            approved=Decimal(r["approved"]),
            adjusted=Decimal(r["adjusted"]),
            disbursed=Decimal(r["disbursed"]),
            contracted=sum((m.value for m in methods), Decimal(0)),
            contract_count=sum(m.contracts for m in methods),
            by_method=methods,
        )


async def district_spending(info: Info, code: str, year: int) -> DistrictSpending:
    fiscal_year_arg(year, "year")
    r = await context_of(info).loaders.spending.load((code, year))
    return DistrictSpending.of(r)


async def business_contracts(info: Info, registration_no: str) -> list[Contract]:
    rows = await context_of(info).loaders.business_contracts.load(registration_no)
    contracts = [ProcurementProcess.of(r).contract() for r in rows]
    return [c for c in contracts if c is not None]


# ---------------------------------------------------------------------------- lists


async def processes_page(
    info: Info, where: ProcessQuery, first: int | None, after: str | None
) -> Connection[ProcurementProcess]:
    ctx = context_of(info)
    request = page_request(ctx.limits, first, after, count=list_selection(info).total)
    page = await ctx.connectors.finance.search_processes(where, request)
    return connection(page, ProcurementProcess.of, lambda r: process_cursor(r["id"]), after)


async def budget_lines_page(
    info: Info, where: BudgetQuery, first: int | None, after: str | None
) -> Connection[BudgetLine]:
    ctx = context_of(info)
    request = page_request(ctx.limits, first, after, count=list_selection(info).total)
    page = await ctx.connectors.finance.search_budget_lines(where, request)
    return connection(page, BudgetLine.of, lambda r: budget_line_cursor(r["id"]), after)


async def projects_page(
    info: Info, where: ProjectQuery, first: int | None, after: str | None
) -> Connection[InfrastructureProject]:
    ctx = context_of(info)
    request = page_request(ctx.limits, first, after, count=list_selection(info).total)
    page = await ctx.connectors.finance.search_projects(where, request)
    return connection(page, InfrastructureProject.of, lambda r: project_cursor(r["id"]), after)
