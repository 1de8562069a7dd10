"""The unified graph's object types: districts, complaints, parcels, businesses.

Plain fields are attributes filled from the connector record when the object is built, so
they resolve synchronously; only fields that reach another system are async resolvers, and
they go through the request's DataLoaders. Those fields are nullable: when their source
fails, only they become null (with an error naming the source), not the object around them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import strawberry
from strawberry.types import Info

from connectors.base import Page, Record
from connectors.cache import cached_call
from connectors.districts import DistrictInfo, all_districts
from connectors.districts import district as district_info
from connectors.registry import BusinessQuery, business_cursor, permit_cursor
from connectors.tax import ParcelQuery, parcel_cursor
from connectors.traffy import ComplaintQuery, NearbyKey
from policies import row_scope
from schema.context import context_of
from schema.errors import BadUserInput, UnknownDistrict
from schema.pagination import Connection, connection, page_request
from schema.revenue import RevenueStatistics, TaxType, revenue_statistics
from schema.selection import (
    NOTHING_RELATED,
    Related,
    list_selection,
    prefetched,
    related_records,
    rows_of,
)
from schema.upstream import loads_upstream

if TYPE_CHECKING:
    from schema.finance import Contract, DistrictSpending

BANGKOK = timezone(timedelta(hours=7), "Asia/Bangkok")
E = TypeVar("E", bound=Enum)

# ---------------------------------------------------------------------------- enums


@strawberry.enum(description="สถานะเรื่องร้องเรียน / State of a complaint in Traffy Fondue.")
class ComplaintState(Enum):
    WAITING = "WAITING"  # รอรับเรื่อง
    IN_PROGRESS = "IN_PROGRESS"  # กำลังดำเนินการ
    COMPLETED = "COMPLETED"  # เสร็จสิ้น
    FORWARDED = "FORWARDED"  # ส่งต่อ(ใหม่)
    IRRELEVANT = "IRRELEVANT"  # ไม่เกี่ยวข้อง
    OTHER = "OTHER"  # a state the platform added after this API was written


@strawberry.enum(description="ประเภทการใช้ประโยชน์ที่ดิน / Land use for land-and-building tax.")
class LandUse(Enum):
    AGRICULTURAL = "agricultural"
    RESIDENTIAL = "residential"
    COMMERCIAL_OTHER = "commercial_other"
    VACANT = "vacant"


@strawberry.enum(description="ประเภทเอกสารสิทธิ / Title document type.")
class TitleDeedType(Enum):
    CHANOTE = "chanote"  # โฉนดที่ดิน
    NOR_SOR_3_KOR = "nor_sor_3_kor"  # น.ส. 3 ก.
    NOR_SOR_3 = "nor_sor_3"  # น.ส. 3


@strawberry.enum(description="สถานะการชำระภาษี / Payment status of an assessment.")
class AssessmentStatus(Enum):
    PAID = "paid"
    UNPAID = "unpaid"
    OVERDUE = "overdue"
    EXEMPT = "exempt"


@strawberry.enum(description="ประเภทผู้ถือกรรมสิทธิ์ / Natural or juristic person.")
class OwnerKind(Enum):
    PERSON = "person"
    JURISTIC = "juristic"


@strawberry.enum(description="สถานะทะเบียนพาณิชย์ / Status of a commercial registration.")
class BusinessStatus(Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


@strawberry.enum(description="ประเภทใบอนุญาต / Licence kind.")
class LicenceKind(Enum):
    HEALTH_HAZARD = "health_hazard"  # กิจการที่เป็นอันตรายต่อสุขภาพ
    FOOD_PREMISES = "food_premises"  # สถานที่จำหน่ายอาหาร


@strawberry.enum(description="เพศ / Sex as recorded in the civil registry.")
class Sex(Enum):
    MALE = "male"
    FEMALE = "female"


def _members(enum: type[E]) -> Callable[[Any], E]:
    """``enum(value)`` for a row builder: the member from a table made once, since the enum's
    own call costs more than the rest of a row (a page builds thousands); anything else
    through ``enum(value)`` itself, so its error (or ``_missing_``) stays the enum's."""
    table = {m.value: m for m in enum}

    def member(value: Any) -> E:
        found = table.get(value)
        return found if found is not None else enum(value)

    return member


_COMPLAINT_STATE = _members(ComplaintState)
_LAND_USE = _members(LandUse)
_TITLE_DEED_TYPE = _members(TitleDeedType)
_ASSESSMENT_STATUS = _members(AssessmentStatus)
_OWNER_KIND = _members(OwnerKind)
_BUSINESS_STATUS = _members(BusinessStatus)
_SEX = _members(Sex)


# ---------------------------------------------------------------------------- inputs


@strawberry.input(description="ตัวกรองเรื่องร้องเรียน / Complaint filter.")
class ComplaintFilter:
    district: str | None = strawberry.field(
        default=None, description="รหัสเขต / District code, e.g. 1039."
    )
    state: ComplaintState | None = strawberry.field(
        default=None,
        description="สถานะ / State; OTHER finds the states Traffy Fondue added after this API.",
    )
    type: str | None = strawberry.field(
        default=None, description="ประเภทปัญหา / Problem type, e.g. ถนน."
    )
    reported_since: datetime | None = strawberry.field(
        default=None, description="แจ้งตั้งแต่ / Reported at or after; no zone means Bangkok time."
    )
    reported_until: datetime | None = strawberry.field(
        default=None, description="แจ้งก่อน / Reported before; no zone means Bangkok time."
    )


@strawberry.input(description="ตัวกรองแปลงที่ดิน / Parcel filter.")
class ParcelFilter:
    district: str | None = strawberry.field(default=None, description="รหัสเขต / District code.")
    land_use: LandUse | None = strawberry.field(default=None, description="การใช้ที่ดิน / Land use.")


@strawberry.input(description="ตัวกรองทะเบียนพาณิชย์ / Business filter.")
class BusinessFilter:
    district: str | None = strawberry.field(default=None, description="รหัสเขต / District code.")
    type: str | None = strawberry.field(
        default=None, description="ประเภทกิจการ / Business type, e.g. ร้านอาหาร."
    )
    status: BusinessStatus | None = strawberry.field(default=None, description="สถานะ / Status.")


def district_code_arg(code: str | None) -> tuple[str, ...]:
    """A district code argument as a filter tuple; unknown codes are an error, not empty."""
    if code is None:
        return ()
    if district_info(code) is None:
        raise UnknownDistrict(f"there is no district with code {code!r}; codes run 1001-1050")
    return (code,)


def _district_filter(given: str | None, parent: str | None) -> tuple[str, ...]:
    """The district of a filter, or of the district the list hangs under; not both."""
    if parent is not None and given is not None and given != parent:
        raise BadUserInput(
            f"this list is of district {parent}; drop `district` from the filter",
            argument="filter.district",
        )
    return district_code_arg(parent or given)


def _short_text(value: str | None, argument: str, limit: int = 100) -> str | None:
    if value is not None and len(value) > limit:
        raise BadUserInput(f"`{argument}` is longer than {limit} characters", argument=argument)
    return value


def _one(value: str | None) -> tuple[str, ...]:
    return (value,) if value else ()


def bangkok_time(value: datetime | None) -> datetime | None:
    """A time without a zone is Bangkok time, as a user of this API in Bangkok means it."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=BANGKOK)


def complaint_query(f: ComplaintFilter | None, district: str | None = None) -> ComplaintQuery:
    f = f or ComplaintFilter()
    return ComplaintQuery(
        district_codes=_district_filter(f.district, district),
        states=(f.state.value,) if f.state else (),
        type=_short_text(f.type, "filter.type"),
        since=bangkok_time(f.reported_since),
        until=bangkok_time(f.reported_until),
    )


def parcel_query(f: ParcelFilter | None, district: str | None = None) -> ParcelQuery:
    f = f or ParcelFilter()
    return ParcelQuery(
        district_codes=_district_filter(f.district, district),
        land_uses=(f.land_use.value,) if f.land_use else (),
    )


def business_query(f: BusinessFilter | None, district: str | None = None) -> BusinessQuery:
    f = f or BusinessFilter()
    return BusinessQuery(
        district_codes=_district_filter(f.district, district),
        types=_one(_short_text(f.type, "filter.type")),
        statuses=(f.status.value,) if f.status else (),
    )


# ---------------------------------------------------------------------------- small types


@strawberry.type(description="พิกัด / A point, WGS 84.")
class GeoPoint:
    lat: float = strawberry.field(description="ละติจูด / Latitude.")
    lon: float = strawberry.field(description="ลองจิจูด / Longitude.")


@strawberry.type(description="จำนวนตามกลุ่ม / A count for one key.")
class KeyCount:
    key: str = strawberry.field(description="กลุ่ม / The key counted.")
    count: int = strawberry.field(description="จำนวน / How many.")


@strawberry.type(description="สถิติเรื่องร้องเรียนของเขต / Complaint counts of a district.")
class ComplaintStats:
    total: int = strawberry.field(description="ทั้งหมด / All complaints.")
    by_state: list[KeyCount] = strawberry.field(description="ตามสถานะ / By state.")
    by_type: list[KeyCount] = strawberry.field(
        description="ตามประเภท / By problem type; a complaint of two types counts in both."
    )


@strawberry.type(description="รายได้ภาษีที่ดินฯ ของเขตในปีภาษี / Land-and-building tax of a district.")
class TaxRevenue:
    year: int = strawberry.field(description="ปีภาษี (ค.ศ.) / Tax year.")
    assessed: Decimal = strawberry.field(description="ภาษีที่ประเมิน / Tax assessed, baht.")
    collected: Decimal = strawberry.field(description="ภาษีที่จัดเก็บได้ / Tax paid, baht.")
    outstanding: Decimal = strawberry.field(
        description="ภาษีค้างชำระ / Unpaid and overdue tax, baht."
    )
    parcel_count: int = strawberry.field(description="จำนวนแปลงที่ประเมิน / Parcels assessed.")


@strawberry.type(description="ประชากรตามเพศและช่วงอายุ / Population of one sex and age band.")
class PopulationBand:
    year: int = strawberry.field(description="ปี / Year.")
    sex: Sex = strawberry.field(description="เพศ / Sex.")
    age_band: str = strawberry.field(description="ช่วงอายุ / Age band, e.g. 15-29.")
    population: int = strawberry.field(description="จำนวน / Persons.")


def _key_counts(counter: dict[str, int]) -> list[KeyCount]:
    return [
        KeyCount(key=k, count=n) for k, n in sorted(counter.items(), key=lambda i: (-i[1], i[0]))
    ]


# ---------------------------------------------------------------------------- district


@strawberry.type(description="เขตของกรุงเทพมหานคร / One of Bangkok's 50 districts.")
class District:
    code: str = strawberry.field(description="รหัสเขต / District code, 1001-1050.")
    name_th: str = strawberry.field(description="ชื่อเขตภาษาไทย / Thai name.")
    name_en: str = strawberry.field(description="ชื่อเขตภาษาอังกฤษ / English name.")

    @classmethod
    def of(cls, info: DistrictInfo) -> District:
        return cls(code=info.code, name_th=info.name_th, name_en=info.name_en)

    @strawberry.field(description="ประชากรปีล่าสุด / Population, latest year (district registry).")
    async def population(self, info: Info) -> int | None:
        summary = await context_of(info).loaders.registry_summary.load(self.code)
        population: int | None = summary["population"]
        return population

    @strawberry.field(description="ประชากรตามเพศและอายุ / Population by sex and age band.")
    async def population_stats(self, info: Info) -> list[PopulationBand] | None:
        rows = await context_of(info).loaders.population.load(self.code)
        return [
            PopulationBand(
                year=r["year"],
                sex=_SEX(r["sex"]),
                age_band=r["age_band"],
                population=r["population"],
            )
            for r in rows
        ]

    @strawberry.field(description="สถิติเรื่องร้องเรียน / Traffy Fondue complaint counts.")
    async def complaint_stats(self, info: Info) -> ComplaintStats | None:
        stats = await context_of(info).loaders.complaint_stats.load(self.code)
        return ComplaintStats(
            total=stats.total,
            by_state=_key_counts(stats.by_state),
            by_type=_key_counts(stats.by_type),
        )

    @strawberry.field(description="รายได้ภาษีที่ดินและสิ่งปลูกสร้าง / Land-and-building tax revenue.")
    async def tax_revenue(self, info: Info, year: int) -> TaxRevenue | None:
        _check_tax_year(year)
        r = await context_of(info).loaders.revenue.load((self.code, year))
        return TaxRevenue(
            year=year,
            assessed=Decimal(r["assessed"]),
            collected=Decimal(r["collected"]),
            outstanding=Decimal(r["outstanding"]),
            parcel_count=r["parcel_count"],
        )

    @strawberry.field(
        description="สถิติการจัดเก็บภาษีรายเดือน / Tax collected by month, per tax, against the "
        "year's estimate."
    )
    async def revenue(
        self,
        info: Info,
        year: Annotated[
            int,
            strawberry.argument(description="ปีภาษี (ค.ศ.) / Tax year, Gregorian, e.g. 2025."),
        ],
        tax_type: Annotated[
            TaxType | None,
            strawberry.argument(description="ประเภทภาษี / One tax; both when omitted."),
        ] = None,
    ) -> list[RevenueStatistics] | None:
        _check_tax_year(year)
        rows = await context_of(info).loaders.revenue_by_month.load((self.code, year))
        return revenue_statistics(year, rows, tax_type)

    @strawberry.field(
        description="การใช้จ่ายของสำนักงานเขต / The district office's budget and contracts in a "
        "fiscal year (Buddhist era, e.g. 2568)."
    )
    async def spending(
        self, info: Info, year: int
    ) -> Annotated[DistrictSpending, strawberry.lazy("schema.finance")] | None:
        from schema.finance import district_spending

        return await district_spending(info, self.code, year)

    @strawberry.field(description="จำนวนกิจการที่เปิดดำเนินการ / Active commercial registrations.")
    async def business_count(self, info: Info) -> int | None:
        summary = await context_of(info).loaders.registry_summary.load(self.code)
        count: int | None = summary["business_count"]
        return count

    @strawberry.field(description="เรื่องร้องเรียนในเขต / Complaints in this district.")
    async def complaints(
        self,
        info: Info,
        filter: ComplaintFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Complaint] | None:
        return await complaints_page(info, complaint_query(filter, self.code), first, after)

    @strawberry.field(description="แปลงที่ดินในเขต / Parcels in this district.")
    async def parcels(
        self,
        info: Info,
        filter: ParcelFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Parcel] | None:
        return await parcels_page(info, parcel_query(filter, self.code), first, after)

    @strawberry.field(description="ทะเบียนพาณิชย์ในเขต / Commercial registrations in this district.")
    async def businesses(
        self,
        info: Info,
        filter: BusinessFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Business] | None:
        return await businesses_page(info, business_query(filter, self.code), first, after)

    @strawberry.field(description="ใบอนุญาตก่อสร้าง / Building permits issued by the district.")
    async def building_permits(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[BuildingPermit] | None:
        ctx = context_of(info)
        request = page_request(ctx.limits, first, after, count=list_selection(info).total)
        if not row_scope.admits(ctx.principal, self.code):
            return connection(Page(rows=[], total=0, has_next=False), BuildingPermit.of, str)
        page = await ctx.connectors.registry.building_permits(self.code, request)
        return connection(page, BuildingPermit.of, lambda r: permit_cursor(r["permit_no"]), after)


def _check_tax_year(year: int) -> None:
    if not 2000 <= year <= 2100:
        raise BadUserInput("`year` is a Gregorian tax year, e.g. 2025", argument="year")


def district_of(code: str | None) -> District | None:
    """The district of a row: one object per code, shared by every row and request (a
    District holds its three names only; what it loads, it loads through the request)."""
    if not code:
        return None
    district = _DISTRICT_OBJECTS.get(code)
    if district is None:
        info = district_info(code)
        if info is None:
            return None
        district = _DISTRICT_OBJECTS.setdefault(code, District.of(info))
    return district


_DISTRICT_OBJECTS: dict[str, District] = {}


def all_district_objects() -> list[District]:
    return [District.of(d) for d in all_districts()]


# ---------------------------------------------------------------------------- complaints


@strawberry.type(description="เรื่องร้องเรียนจาก Traffy Fondue / A citizen's complaint.")
class Complaint:
    ticket_id: str = strawberry.field(description="เลขที่เรื่อง / Ticket id.")
    type: str | None = strawberry.field(description="ประเภทปัญหาหลัก / Main problem type.")
    types: list[str] = strawberry.field(description="ประเภทปัญหาทั้งหมด / All problem types.")
    state: ComplaintState = strawberry.field(description="สถานะ / State.")
    state_th: str = strawberry.field(description="สถานะตามต้นทาง / State as Traffy writes it.")
    description: str | None = strawberry.field(description="รายละเอียด / What was reported.")
    address: str | None = strawberry.field(description="ที่อยู่ / Address.")
    subdistrict: str | None = strawberry.field(description="แขวง / Sub-district.")
    location: GeoPoint | None = strawberry.field(description="พิกัด / Where.")
    reported_at: datetime | None = strawberry.field(description="เวลาแจ้ง / Reported at.")
    last_activity_at: datetime | None = strawberry.field(
        description="ความเคลื่อนไหวล่าสุด / Last activity."
    )
    photo_url: str | None = strawberry.field(description="ภาพก่อน / Photo when reported.")
    after_photo_url: str | None = strawberry.field(description="ภาพหลัง / Photo when resolved.")
    organizations: list[str] = strawberry.field(description="หน่วยงาน / Agencies assigned.")
    star: int | None = strawberry.field(description="คะแนนความพึงพอใจ / Reporter's rating 1-5.")
    reopen_count: int = strawberry.field(description="จำนวนครั้งที่เปิดใหม่ / Times reopened.")
    district_code: strawberry.Private[str | None]

    @classmethod
    def of(cls, r: Record) -> Complaint:
        has_point = r["lat"] is not None
        return cls(
            ticket_id=r["ticket_id"],
            type=r["types"][0] if r["types"] else None,
            types=r["types"],
            state=_COMPLAINT_STATE(r["state"]),
            state_th=r["state_th"],
            description=r["description"],
            address=r["address"],
            subdistrict=r["subdistrict"],
            location=GeoPoint(lat=r["lat"], lon=r["lon"]) if has_point else None,
            reported_at=r["reported_at"],
            last_activity_at=r["last_activity_at"],
            photo_url=r["photo_url"],
            after_photo_url=r["after_photo_url"],
            organizations=r["organizations"],
            star=r["star"],
            reopen_count=r["count_reopen"],
            district_code=r["district_code"],
        )

    @strawberry.field(description="เขต / District.")
    def district(self) -> District | None:
        return district_of(self.district_code)


async def complaints_page(
    info: Info, where: ComplaintQuery, first: int | None, after: str | None
) -> Connection[Complaint]:
    ctx = context_of(info)
    # Traffy Fondue answers its total with every page: nothing to skip, one cache entry.
    request = page_request(ctx.limits, first, after)
    traffy = ctx.connectors.traffy
    page = await cached_call(
        ctx.connectors.cache,
        "traffy.search",
        (where, request),
        lambda: traffy.search(where, request),
    )
    return connection(page, Complaint.of, lambda r: r["_cursor"], after)


# ---------------------------------------------------------------------------- tax


@strawberry.type(description="ผู้ถือกรรมสิทธิ์ / Owner of a parcel (BMA TAX).")
class Owner:
    id: strawberry.ID | None = strawberry.field(
        description="รหัสระเบียนผู้ถือกรรมสิทธิ์ใน BMA TAX / Owner's record id in BMA TAX."
    )
    kind: OwnerKind | None = strawberry.field(
        description="บุคคลธรรมดาหรือนิติบุคคล / Person or juristic."
    )
    name: str | None = strawberry.field(description="ชื่อ / Name.")
    national_id: str | None = strawberry.field(
        description="เลขประจำตัวประชาชนหรือนิติบุคคล / 13-digit national or juristic id."
    )

    @classmethod
    def of(cls, r: Record) -> Owner:
        return cls(
            id=strawberry.ID(str(r["id"])),
            kind=_OWNER_KIND(r["kind"]),
            name=r["name"],
            national_id=r["national_id"],
        )


@strawberry.type(description="การประเมินภาษีรายปี / One tax year's assessment of a parcel.")
class Assessment:
    tax_year: int | None = strawberry.field(description="ปีภาษี / Tax year.")
    base: Decimal | None = strawberry.field(
        description="ฐานภาษี / Tax base (appraised value), baht."
    )
    exemption: Decimal | None = strawberry.field(description="มูลค่าที่ได้รับยกเว้น / Exempt value, baht.")
    rate: Decimal | None = strawberry.field(
        description="อัตราภาษีที่แท้จริง (%) ของมูลค่าที่ต้องเสียภาษี / Effective rate, % of base minus exemption."
    )
    tax_due: Decimal | None = strawberry.field(description="ภาษีที่ต้องชำระ / Tax due, baht.")
    status: AssessmentStatus | None = strawberry.field(description="สถานะการชำระ / Payment status.")
    paid_at: datetime | None = strawberry.field(description="วันที่ชำระ / When paid.")
    # Whose assessment this is: the audit log records it (schema.audit_keys).
    parcel_id: strawberry.Private[int]
    owner_id: strawberry.Private[int]

    @classmethod
    def of(cls, r: Record, owner_id: int) -> Assessment:
        return cls(
            parcel_id=r["parcel_id"],
            owner_id=owner_id,
            tax_year=r["tax_year"],
            base=r["base"],
            exemption=r["exemption"],
            rate=r["rate"],
            tax_due=r["tax_due"],
            status=_ASSESSMENT_STATUS(r["status"]),
            paid_at=r["paid_at"],
        )


@strawberry.type(description="ป้ายที่เสียภาษีป้าย / A taxed signboard.")
class Signboard:
    id: strawberry.ID = strawberry.field(description="รหัสป้าย / Signboard id.")
    business_registration_no: str = strawberry.field(
        description="เลขทะเบียนพาณิชย์ของเจ้าของป้าย / Owner business's registration number."
    )
    sign_type: int = strawberry.field(
        description="ประเภทป้าย 1/2/3 / Type 1 Thai only, 2 Thai with foreign, 3 no Thai."
    )
    area_cm2: int = strawberry.field(description="พื้นที่ป้าย ตร.ซม. / Area, cm².")
    moving: bool = strawberry.field(description="ป้ายเคลื่อนที่หรือเปลี่ยนข้อความได้ / Moving.")
    tax_year: int = strawberry.field(description="ปีภาษี / Tax year.")
    tax_due: Decimal | None = strawberry.field(description="ภาษีป้าย / Signboard tax, baht.")
    district_code: strawberry.Private[str]

    @classmethod
    def of(cls, r: Record) -> Signboard:
        return cls(
            id=strawberry.ID(str(r["id"])),
            business_registration_no=r["business_registration_no"],
            sign_type=r["sign_type"],
            area_cm2=r["area_cm2"],
            moving=r["moving"],
            tax_year=r["tax_year"],
            tax_due=r["tax_due"],
            district_code=r["district_code"],
        )

    @strawberry.field(description="เขต / District.")
    def district(self) -> District | None:
        return district_of(self.district_code)

    @strawberry.field(description="กิจการเจ้าของป้าย / The business (district registry).")
    async def business(self, info: Info) -> Business | None:
        r = await context_of(info).loaders.business.load(self.business_registration_no)
        return Business.of(r) if r else None


@strawberry.type(description="แปลงที่ดิน / A land parcel in BMA TAX.")
class Parcel:
    id: strawberry.ID = strawberry.field(description="รหัสแปลง / Parcel id.")
    title_deed_type: TitleDeedType = strawberry.field(description="ประเภทเอกสารสิทธิ / Title type.")
    title_deed_number: str | None = strawberry.field(description="เลขที่เอกสารสิทธิ / Title number.")
    land_use: LandUse = strawberry.field(description="การใช้ประโยชน์ / Land use.")
    area_sqm: Decimal = strawberry.field(description="เนื้อที่ ตร.ม. / Area, m².")
    appraised_value: Decimal | None = strawberry.field(
        description="ราคาประเมิน / Appraised value, baht."
    )
    location: GeoPoint = strawberry.field(description="พิกัด / Where.")
    district_code: strawberry.Private[str]
    owner_id: strawberry.Private[int]
    # Records of the whole page loaded with it (``parcels_page``), shared by its parcels.
    related: strawberry.Private[Related]

    @classmethod
    def of(cls, r: Record, related: Related = NOTHING_RELATED) -> Parcel:
        return cls(
            id=strawberry.ID(str(r["id"])),
            title_deed_type=_TITLE_DEED_TYPE(r["title_deed_type"]),
            title_deed_number=r["title_deed_number"],
            land_use=_LAND_USE(r["land_use"]),
            area_sqm=r["area_sqm"],
            appraised_value=r["appraised_value"],
            location=GeoPoint(lat=r["lat"], lon=r["lon"]),
            district_code=r["district_code"],
            owner_id=r["owner_id"],
            related=related,
        )

    @strawberry.field(description="เขต / District.")
    def district(self) -> District | None:
        return district_of(self.district_code)

    # The related records below answer at once when the page loaded them (no future, no
    # task per row), else through the request's DataLoaders.

    @strawberry.field(description="ผู้ถือกรรมสิทธิ์ / Owner.", graphql_type=Owner | None)
    @loads_upstream
    def owner(self, info: Info) -> Owner | None | Awaitable[Owner | None]:
        found = prefetched(self.related, "owner")
        if found is None:
            return self._owner(info)
        r = found.get(self.owner_id)
        return Owner.of(r) if r else None

    async def _owner(self, info: Info) -> Owner | None:
        r = await context_of(info).loaders.owner.load(self.owner_id)
        return Owner.of(r) if r else None

    @strawberry.field(
        description="การประเมินภาษีรายปี / Assessments, oldest year first.",
        graphql_type=list[Assessment] | None,
    )
    @loads_upstream
    def assessments(
        self, info: Info, year: int | None = None
    ) -> list[Assessment] | Awaitable[list[Assessment]]:
        found = prefetched(self.related, "assessments")
        if found is None:
            return self._assessments(info, year)
        return self._assessments_of(found.get(int(self.id), []), year)

    async def _assessments(self, info: Info, year: int | None) -> list[Assessment]:
        rows = await context_of(info).loaders.assessments.load(int(self.id))
        return self._assessments_of(rows, year)

    def _assessments_of(self, rows: list[Record], year: int | None) -> list[Assessment]:
        return [
            Assessment.of(r, self.owner_id) for r in rows if year is None or r["tax_year"] == year
        ]

    @strawberry.field(
        description="ป้ายบนแปลงนี้ / Signboards on this parcel.", graphql_type=list[Signboard]
    )
    @loads_upstream
    def signboards(self, info: Info) -> list[Signboard] | Awaitable[list[Signboard]]:
        found = prefetched(self.related, "signboards")
        if found is None:
            return self._signboards(info)
        return [Signboard.of(r) for r in found.get(int(self.id), [])]

    async def _signboards(self, info: Info) -> list[Signboard]:
        rows = await context_of(info).loaders.parcel_signboards.load(int(self.id))
        return [Signboard.of(r) for r in rows]

    @strawberry.field(description="เรื่องร้องเรียนใกล้แปลง / Complaints within a radius, nearest first.")
    async def nearby_complaints(
        self, info: Info, radius_meters: int, first: int = 20
    ) -> list[Complaint] | None:
        ctx = context_of(info)
        if not 0 < radius_meters <= ctx.limits.max_radius_m:
            raise BadUserInput(
                f"`radiusMeters` must be between 1 and {ctx.limits.max_radius_m}",
                argument="radiusMeters",
            )
        if not 0 <= first <= ctx.limits.max_nearby:
            raise BadUserInput(
                f"`first` must be between 0 and {ctx.limits.max_nearby}", argument="first"
            )
        key = NearbyKey(self.location.lat, self.location.lon, radius_meters)
        rows = await ctx.loaders.nearby.load(key)
        return [Complaint.of(r) for r in rows[:first]]


async def parcels_page(
    info: Info, where: ParcelQuery, first: int | None, after: str | None
) -> Connection[Parcel]:
    ctx = context_of(info)
    selection = list_selection(info)
    request = page_request(ctx.limits, first, after, count=selection.total)
    codes = row_scope.narrowed(ctx.principal, where.district_codes)
    if codes is None:
        return connection(Page(rows=[], total=0, has_next=False), Parcel.of, str)
    page = await ctx.connectors.tax.search_parcels(replace(where, district_codes=codes), request)
    related = await _parcels_related(info, selection.node, page.rows)
    return connection(
        page, lambda r: Parcel.of(r, related), lambda r: parcel_cursor(r["id"]), after
    )


async def _parcels_related(info: Info, node: frozenset[str], rows: list[Record]) -> Related:
    """The owners, assessments and signboards of a page's parcels, each in one call, when
    its nodes select them and the operation resolves them."""
    ctx = context_of(info)
    loaders = ctx.loaders
    loads: dict[str, Awaitable[Mapping[Any, Any]]] = {}
    if not rows:
        return NOTHING_RELATED
    ids = tuple(r["id"] for r in rows)
    if "owner" in node and ctx.resolves("Parcel", "owner"):
        loads["owner"] = loaders.owners_of_page.load(
            tuple(dict.fromkeys(r["owner_id"] for r in rows))
        )
    if "assessments" in node and ctx.resolves("Parcel", "assessments"):
        loads["assessments"] = loaders.assessments_of_page.load(ids)
    if "signboards" in node and ctx.resolves("Parcel", "signboards"):
        loads["signboards"] = loaders.signboards_of_page.load(ids)
    return await related_records(loads)


# ---------------------------------------------------------------------------- registries


@strawberry.type(description="เจ้าของกิจการ / Owner of a registered business.")
class BusinessOwner:
    name: str | None = strawberry.field(description="ชื่อ / Name.")
    national_id: str | None = strawberry.field(description="เลขประจำตัว 13 หลัก / 13-digit id.")
    registration_no: strawberry.Private[str]  # the business it owns, for the audit log


@strawberry.type(description="ใบอนุญาต / A district licence of a business.")
class Licence:
    licence_no: str = strawberry.field(description="เลขที่ใบอนุญาต / Licence number.")
    kind: LicenceKind = strawberry.field(description="ประเภท / Kind.")
    issued_on: date = strawberry.field(description="วันออก / Issued on.")
    expires_on: date = strawberry.field(description="วันหมดอายุ / Expires on.")

    @strawberry.field(description="ยังไม่หมดอายุ / Not expired today (Bangkok date).")
    def valid(self) -> bool:
        return self.expires_on >= datetime.now(BANGKOK).date()


@strawberry.type(description="ทะเบียนพาณิชย์ / A commercial registration at a district office.")
class Business:
    registration_no: str = strawberry.field(description="เลขทะเบียนพาณิชย์ / Registration no.")
    name: str = strawberry.field(description="ชื่อกิจการ / Business name.")
    type: str = strawberry.field(description="ประเภทกิจการ / Business type.")
    address: str = strawberry.field(description="ที่ตั้ง / Address.")
    registered_on: date = strawberry.field(description="วันจดทะเบียน / Registered on.")
    status: BusinessStatus = strawberry.field(description="สถานะ / Status.")
    owner: BusinessOwner | None = strawberry.field(description="เจ้าของ / Owner.")
    district_code: strawberry.Private[str]
    # Records of the whole page loaded with it (``businesses_page``), shared by its rows.
    related: strawberry.Private[Related]

    @classmethod
    def of(cls, r: Record, related: Related = NOTHING_RELATED) -> Business:
        return cls(
            registration_no=r["registration_no"],
            name=r["business_name"],
            type=r["business_type"],
            address=r["address"],
            registered_on=r["registered_on"],
            status=_BUSINESS_STATUS(r["status"]),
            owner=BusinessOwner(
                name=r["owner_name"],
                national_id=r["owner_id"],
                registration_no=r["registration_no"],
            ),
            district_code=r["district_code"],
            related=related,
        )

    @strawberry.field(description="เขต / District.")
    def district(self) -> District | None:
        return district_of(self.district_code)

    # As a parcel's: answered at once when the page loaded them, else through DataLoaders.

    @strawberry.field(
        description="ใบอนุญาต / Licences (district registry).", graphql_type=list[Licence] | None
    )
    @loads_upstream
    def licences(self, info: Info) -> list[Licence] | Awaitable[list[Licence]]:
        found = prefetched(self.related, "licences")
        if found is None:
            return self._licences(info)
        return _licences_of(rows_of(found, self.registration_no))

    async def _licences(self, info: Info) -> list[Licence]:
        return _licences_of(await context_of(info).loaders.licences.load(self.registration_no))

    @strawberry.field(
        description="ป้ายที่เสียภาษี / Signboards taxed to this business (BMA TAX).",
        graphql_type=list[Signboard] | None,
    )
    @loads_upstream
    def signboards(self, info: Info) -> list[Signboard] | Awaitable[list[Signboard]]:
        found = prefetched(self.related, "signboards")
        if found is None:
            return self._signboards(info)
        return [Signboard.of(r) for r in rows_of(found, self.registration_no)]

    async def _signboards(self, info: Info) -> list[Signboard]:
        rows = await context_of(info).loaders.business_signboards.load(self.registration_no)
        return [Signboard.of(r) for r in rows]

    @strawberry.field(
        description="สัญญากับกรุงเทพมหานคร / Contracts the BMA signed with this business "
        "(finance and procurement), oldest first."
    )
    async def contracts(
        self, info: Info
    ) -> list[Annotated[Contract, strawberry.lazy("schema.finance")]] | None:
        from schema.finance import business_contracts

        return await business_contracts(info, self.registration_no)


def _licences_of(rows: list[Record]) -> list[Licence]:
    return [
        Licence(
            licence_no=r["licence_no"],
            kind=LicenceKind(r["kind"]),
            issued_on=r["issued_on"],
            expires_on=r["expires_on"],
        )
        for r in rows
    ]


@strawberry.type(description="ใบอนุญาตก่อสร้างอาคาร / A building permit.")
class BuildingPermit:
    permit_no: str = strawberry.field(description="เลขที่ใบอนุญาต / Permit number.")
    applicant_name: str | None = strawberry.field(description="ผู้ขออนุญาต / Applicant.")
    address: str = strawberry.field(description="ที่ตั้ง / Address.")
    building_type: str = strawberry.field(description="ประเภทอาคาร / Building type.")
    floors: int = strawberry.field(description="จำนวนชั้น / Floors.")
    area_sqm: Decimal = strawberry.field(description="พื้นที่ ตร.ม. / Floor area, m².")
    permitted_on: date = strawberry.field(description="วันอนุญาต / Permitted on.")
    district_code: strawberry.Private[str]
    applicant_id: strawberry.Private[str]  # whose application it is, for the audit log

    @classmethod
    def of(cls, r: Record) -> BuildingPermit:
        return cls(
            permit_no=r["permit_no"],
            applicant_name=r["applicant_name"],
            applicant_id=r["applicant_id"],
            address=r["address"],
            building_type=r["building_type"],
            floors=r["floors"],
            area_sqm=r["area_sqm"],
            permitted_on=r["permitted_on"],
            district_code=r["district_code"],
        )

    @strawberry.field(description="เขตที่ออกใบอนุญาต / The district that issued it.")
    def district(self) -> District | None:
        return district_of(self.district_code)


async def businesses_page(
    info: Info, where: BusinessQuery, first: int | None, after: str | None
) -> Connection[Business]:
    """A page across district sources; failed sources become partial errors, not a failure."""
    ctx = context_of(info)
    selection = list_selection(info)
    request = page_request(ctx.limits, first, after, count=selection.total)
    codes = row_scope.narrowed(ctx.principal, where.district_codes)
    if codes is None:
        return connection(Page(rows=[], total=0, has_next=False), Business.of, str)
    page = await ctx.connectors.registry.search_businesses(
        replace(where, district_codes=codes), request
    )
    for failure in page.failures:
        ctx.add_partial_error(info, failure)
    related = await _businesses_related(info, selection.node, page.rows)
    return connection(
        page,
        lambda r: Business.of(r, related),
        lambda r: business_cursor(r["registration_no"]),
        after,
    )


async def _businesses_related(info: Info, node: frozenset[str], rows: list[Record]) -> Related:
    """The licences and signboards of a page's businesses, each in one load, when its nodes
    select them and the operation resolves them."""
    ctx = context_of(info)
    if not rows:
        return NOTHING_RELATED
    numbers = tuple(r["registration_no"] for r in rows)
    loads: dict[str, Awaitable[Mapping[Any, Any]]] = {}
    if "licences" in node and ctx.resolves("Business", "licences"):
        loads["licences"] = ctx.loaders.licences_of_page.load(numbers)
    if "signboards" in node and ctx.resolves("Business", "signboards"):
        loads["signboards"] = ctx.loaders.business_signboards_of_page.load(numbers)
    return await related_records(loads)
