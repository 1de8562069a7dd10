"""Deterministic synthetic data for the finance and procurement system (MIS2 and e-GP).

Fiscal years 2566-2569 (October-September), budget lines of the BMA departments and the 50
district offices, and the procurement that spends them: processes, bids, awards, contracts
with milestones and payments, amendments, and the infrastructure projects of public works.
Suppliers are companies, natural persons, and businesses of the district registries (by
their registration numbers, so the graph can join the two systems).

Everything is drawn from its own random stream: the other systems' rows do not change. The
seed also plants cases of each integrity indicator, and near misses that must not trigger
it (tests/test_integrity.py).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from connectors.districts import district as district_info
from connectors.finance import (
    JUST_UNDER_SHARE,
    METHOD_CEILINGS,
    RECENT_REGISTRATION_DAYS,
    SPLIT_WINDOW_DAYS,
)
from gateway.demo.synthetic import (
    DistrictRow,
    People,
    Registration,
    Row,
    Table,
    _address,
    _allocate,
    _log_uniform,
    _random_date,
    _road,
    _scatter,
)

FISCAL_YEARS = (2566, 2567, 2568, 2569)
DATA_END = date(2026, 3, 31)  # the last day the demo's finance system has recorded
SPECIFIC_CEILING = METHOD_CEILINGS["specific"]  # 500,000 baht
E_MARKET_CEILING = METHOD_CEILINGS["e_market"]  # 5,000,000 baht

# (code, Thai name, English name, weights of goods / services / works)
DEPARTMENTS: tuple[tuple[str, str, str, tuple[float, float, float]], ...] = (
    ("S01", "สำนักการโยธา", "Department of Public Works", (2, 2, 8)),
    ("S02", "สำนักการระบายน้ำ", "Department of Drainage and Sewerage", (2, 3, 8)),
    ("S03", "สำนักการจราจรและขนส่ง", "Department of Traffic and Transportation", (4, 4, 4)),
    ("S04", "สำนักสิ่งแวดล้อม", "Department of Environment", (5, 6, 1)),
    ("S05", "สำนักการแพทย์", "Medical Service Department", (8, 4, 1)),
    ("S06", "สำนักอนามัย", "Health Department", (7, 4, 1)),
    ("S07", "สำนักการศึกษา", "Education Department", (6, 3, 2)),
    ("S08", "สำนักการคลัง", "Finance Department", (4, 4, 0.3)),
    ("S09", "สำนักพัฒนาสังคม", "Social Development Department", (4, 5, 0.5)),
    ("S10", "สำนักป้องกันและบรรเทาสาธารณภัย", "Fire and Rescue Department", (7, 3, 1)),
    ("S11", "สำนักวัฒนธรรม กีฬา และการท่องเที่ยว", "Culture, Sports and Tourism Department", (4, 5, 1)),
    ("S12", "สำนักงบประมาณกรุงเทพมหานคร", "Budget Office", (3, 3, 0)),
)
CENTRAL_UNIT = "S12"  # holds the central fund (งบกลาง)
DISTRICT_WEIGHTS = (4, 4, 3)

_CLASS_PLANS = {
    "personnel": ("แผนงานบริหารทั่วไป", "เงินเดือนและค่าจ้างประจำ"),
    "subsidy": ("แผนงานบริการทางสังคม", "เงินอุดหนุนชุมชนและโรงเรียน"),
    "other": ("แผนงานบริหารทั่วไป", "รายจ่ายอื่นตามข้อผูกพัน"),
    "central": ("แผนงานงบกลาง", "เงินสำรองจ่ายทั่วไปกรณีฉุกเฉินหรือจำเป็น"),
}
_PROCUREMENT_PLANS = {
    ("operating", "goods"): ("แผนงานบริหารทั่วไป", "ค่าวัสดุ"),
    ("operating", "services"): ("แผนงานบริหารทั่วไป", "ค่าตอบแทน ใช้สอย"),
    ("investment", "goods"): ("แผนงานบริหารทั่วไป", "ค่าครุภัณฑ์"),
    ("investment", "works"): ("แผนงานพัฒนาโครงสร้างพื้นฐาน", "ค่าที่ดินและสิ่งก่อสร้าง"),
}
_GOODS = (
    "ซื้อวัสดุสำนักงาน",
    "ซื้อวัสดุคอมพิวเตอร์",
    "ซื้อวัสดุเชื้อเพลิงและหล่อลื่น",
    "ซื้อวัสดุก่อสร้าง",
    "ซื้อถุงดำใส่มูลฝอย",
    "ซื้อวัสดุการแพทย์",
    "ซื้อวัสดุงานบ้านงานครัว",
    "ซื้อวัสดุไฟฟ้าและวิทยุ",
)
_EQUIPMENT = (
    "ซื้อครุภัณฑ์คอมพิวเตอร์",
    "ซื้อรถบรรทุกมูลฝอย",
    "ซื้อเครื่องสูบน้ำ",
    "ซื้อครุภัณฑ์การแพทย์",
    "ซื้อกล้องโทรทัศน์วงจรปิด (CCTV)",
)
_SERVICES = (
    "จ้างเหมาทำความสะอาดอาคาร",
    "จ้างเหมาบริการรักษาความปลอดภัย",
    "จ้างซ่อมแซมและบำรุงรักษารถยนต์",
    "จ้างเหมาเก็บขนมูลฝอย",
    "จ้างที่ปรึกษาสำรวจออกแบบ",
    "จ้างเหมาลอกท่อระบายน้ำ",
    "จ้างเหมาตัดแต่งกิ่งไม้",
)
# (title pattern, sector, purpose)
_WORKS: tuple[tuple[str, str, str], ...] = (
    ("ก่อสร้างปรับปรุงผิวจราจร ถนน{road}", "transport.road", "ซ่อมผิวถนนที่ชำรุดให้ปลอดภัยต่อการสัญจร"),
    ("ก่อสร้างทางเท้า ถนน{road}", "transport.road", "ทางเท้าเรียบ กว้าง และเดินได้ทุกคน"),
    ("ปรับปรุงท่อระบายน้ำ ถนน{road}", "water.drainage", "ลดน้ำท่วมขังในฤดูฝน"),
    ("ก่อสร้างเขื่อนป้องกันตลิ่ง คลอง{road}", "water.flood", "ป้องกันตลิ่งพังและน้ำล้นตลิ่ง"),
    ("ติดตั้งไฟฟ้าแสงสว่าง ถนน{road}", "energy.lighting", "ถนนสว่างและปลอดภัยในเวลากลางคืน"),
    ("ก่อสร้างอาคารศูนย์บริการสาธารณสุข", "health", "ขยายบริการสาธารณสุขใกล้บ้าน"),
    ("ปรับปรุงอาคารโรงเรียนสังกัดกรุงเทพมหานคร", "education", "อาคารเรียนมั่นคงแข็งแรง"),
)
_TIME_RATIONALES = (
    "ฝนตกหนักต่อเนื่อง ไม่สามารถทำงานได้",
    "ส่งมอบพื้นที่ล่าช้าเนื่องจากต้องรื้อย้ายสาธารณูปโภค",
    "รอการอนุญาตจากหน่วยงานเจ้าของพื้นที่",
)
_PRICE_RATIONALES = (
    "เพิ่มงานตามสภาพพื้นที่จริง",
    "แก้ไขแบบก่อสร้างให้สอดคล้องกับระบบระบายน้ำเดิม",
)
_TENDER_RATIONALE = "แก้ไขร่างขอบเขตของงาน (TOR) ตามข้อเสนอแนะจากการรับฟังความคิดเห็น"


def fiscal_year_of(day: date) -> int:
    """The Buddhist-era fiscal year a day falls in (October starts the next one)."""
    return day.year + 543 + (1 if day.month >= 10 else 0)


def fiscal_bounds(year: int) -> tuple[date, date]:
    return date(year - 544, 10, 1), date(year - 543, 9, 30)


def _money(value: float | Decimal) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def _hundreds(value: float) -> Decimal:
    return Decimal(round(value, -2)).quantize(Decimal("0.01"))


# ---------------------------------------------------------------------------- the units


@dataclass(frozen=True)
class Unit:
    code: str
    name_th: str
    name_en: str
    kind: str
    district: DistrictRow | None
    weights: tuple[float, float, float]

    def row(self) -> Row:
        code = self.district.code if self.district else None
        return (self.code, self.name_th, self.name_en, self.kind, code)


def make_units(districts: Sequence[DistrictRow]) -> list[Unit]:
    units = [Unit(c, th_, en, "department", None, w) for c, th_, en, w in DEPARTMENTS]
    for d in districts:
        info = district_info(d.code)
        name_en = info.name_en.removeprefix("Khet ") if info else d.code
        units.append(
            Unit(
                f"K{d.code}",
                f"สำนักงาน{d.name_th}",
                f"{name_en} District Office",
                "district_office",
                d,
                DISTRICT_WEIGHTS,
            )
        )
    return units


# ---------------------------------------------------------------------------- suppliers


@dataclass(frozen=True)
class Supplier:
    id: int
    kind: str
    name: str
    tax_id: str
    registration_no: str | None
    address: str
    district: str | None  # the district of its commercial registration
    registered_on: date | None

    def row(self) -> Row:
        return (self.id, self.kind, self.name, self.tax_id, self.registration_no, self.address)


def make_suppliers(
    rng: random.Random,
    districts: Sequence[DistrictRow],
    registrations: Sequence[tuple[str, Registration]],
    people: People,
    everyday: Registration | None = None,
) -> list[Supplier]:
    """Companies, natural persons, and about one in eight of the registries' trading
    businesses (sole traders: the owner's national id is the supplier's tax id)."""
    suppliers: list[Supplier] = []
    for _ in range(420):
        name, juristic_id = people.company()
        address = _address(rng, rng.choice(districts))
        suppliers.append(
            Supplier(len(suppliers) + 1, "juristic", name, juristic_id, None, address, None, None)
        )
    for _ in range(120):
        address = _address(rng, rng.choice(districts))
        name, national_id = people.person_name(), people.person_id()
        suppliers.append(
            Supplier(len(suppliers) + 1, "person", name, national_id, None, address, None, None)
        )
    taken = {s.tax_id for s in suppliers}  # one supplier record per taxpayer
    # The everyday business first, so that no other registration of its owner takes its place.
    for district_code, reg in sorted(registrations, key=lambda pair: pair[1] != everyday):
        chosen = reg == everyday or (reg.status == "active" and rng.random() < 0.13)
        if reg.owner_id in taken or not chosen:
            continue
        taken.add(reg.owner_id)
        suppliers.append(
            Supplier(
                len(suppliers) + 1,
                "person",
                reg.name,
                reg.owner_id,
                reg.no,
                reg.address,
                district_code,
                reg.registered_on,
            )
        )
    return suppliers


# ---------------------------------------------------------------------------- procurement


@dataclass
class Process:
    id: str
    fiscal_year: int
    title: str
    unit: Unit
    economic_class: str
    project: tuple[str, str]  # (plan, project) of the budget line it spends
    method: str
    category: str
    budget: Decimal
    reference_price: Decimal
    announced_on: date
    bid_deadline: date | None
    status: str = "tender"
    budget_line_id: int = 0
    bids: list[Row] = field(default_factory=list)
    winner: Supplier | None = None
    award_id: int = 0
    award_value: Decimal | None = None
    awarded_on: date | None = None
    paid: Decimal = Decimal(0)


@dataclass
class FinanceBuilder:
    """Builds the finance tables in order; ids are handed out as rows are made."""

    rng: random.Random
    districts: Sequence[DistrictRow]
    units: list[Unit]
    suppliers: list[Supplier]
    processes: list[Process] = field(default_factory=list)
    awards: list[Row] = field(default_factory=list)
    contracts: list[Row] = field(default_factory=list)
    milestones: list[Row] = field(default_factory=list)
    payments: list[Row] = field(default_factory=list)
    amendments: list[Row] = field(default_factory=list)
    projects: list[Row] = field(default_factory=list)
    _sequence: dict[tuple[int, int], int] = field(default_factory=dict)

    # -- suppliers

    def _companies(self) -> list[Supplier]:
        return [s for s in self.suppliers if s.kind == "juristic"]

    def _locals(self, unit: Unit) -> list[Supplier]:
        code = unit.district.code if unit.district else None
        return [s for s in self.suppliers if code and s.district == code]

    def _pick(self, unit: Unit, category: str) -> Supplier:
        rng = self.rng
        local = self._locals(unit)
        if local and category != "works" and rng.random() < 0.45:
            return rng.choice(local)
        if rng.random() < 0.1:
            return rng.choice(self.suppliers)
        return rng.choice(self._companies())

    # -- processes

    def project_no(self, announced: date) -> str:
        """The e-GP project number: year (BE, two digits), month, and a running number."""
        key = (announced.year, announced.month)
        self._sequence[key] = self._sequence.get(key, 0) + 1
        be = (announced.year + 543) % 100
        return f"{be:02d}{announced.month:02d}9{self._sequence[key]:06d}"

    def new_process(
        self,
        unit: Unit,
        year: int,
        category: str,
        budget: Decimal,
        announced: date,
        method: str | None = None,
    ) -> Process:
        rng = self.rng
        method = method or self._method(category, budget)
        economic_class = (
            "investment"
            if category == "works" or (category == "goods" and budget > SPECIFIC_CEILING)
            else "operating"
        )
        title = self._title(unit, category, economic_class) + f" ประจำปีงบประมาณ พ.ศ. {year}"
        reference = min(budget, _hundreds(float(budget) * rng.uniform(0.9, 1.0)))
        deadline = None if method == "specific" else announced + timedelta(rng.randint(7, 21))
        process = Process(
            id=self.project_no(announced),
            fiscal_year=year,
            title=title,
            unit=unit,
            economic_class=economic_class,
            project=_PROCUREMENT_PLANS[(economic_class, category)],
            method=method,
            category=category,
            budget=budget,
            reference_price=reference,
            announced_on=announced,
            bid_deadline=deadline,
        )
        self.processes.append(process)
        return process

    def _method(self, category: str, budget: Decimal) -> str:
        """The Public Procurement Act's method for the value (docs/transparency.md)."""
        r = self.rng.random()
        if budget <= SPECIFIC_CEILING:
            return "selection" if r < 0.04 else "specific"
        if category != "works" and budget <= E_MARKET_CEILING:
            return "e_market" if r < 0.65 else "e_bidding"
        return "selection" if r < 0.06 else "e_bidding"

    def _title(self, unit: Unit, category: str, economic_class: str) -> str:
        rng = self.rng
        if category == "goods":
            return rng.choice(_EQUIPMENT if economic_class == "investment" else _GOODS)
        if category == "services":
            return rng.choice(_SERVICES)
        district = unit.district or rng.choice(self.districts)
        pattern = rng.choice(_WORKS)[0]
        return pattern.format(road=_road(rng, district)) + f" {district.name_th}"

    def bid(
        self,
        process: Process,
        winner: Supplier | None = None,
        count: int | None = None,
        price: Decimal | None = None,
        awarded_on: date | None = None,
    ) -> None:
        """Bids, the lowest valid one winning, and the award."""
        rng = self.rng
        if count is None:
            count = self._bid_count(process.method)
        opened = process.bid_deadline or process.announced_on + timedelta(rng.randint(1, 5))
        winner = winner or self._pick(process.unit, process.category)
        if price is None:
            price = _hundreds(float(process.reference_price) * rng.uniform(0.82, 1.0))
            if rng.random() < 0.03:  # the winning offer exactly the budget
                price = process.budget
        process.bids.append((process.id, winner.id, price, opened, "valid"))
        others = {winner.id}
        for _ in range(count - 1):
            rival = self._pick(process.unit, process.category)
            if rival.id in others:
                continue
            others.add(rival.id)
            valid = rng.random() >= 0.12
            offer = min(process.budget, _hundreds(float(price) * rng.uniform(1.01, 1.25)))
            process.bids.append(
                (process.id, rival.id, offer, opened, "valid" if valid else "disqualified")
            )
        self.award(process, winner, price, awarded_on or opened + timedelta(rng.randint(5, 25)))

    def _bid_count(self, method: str) -> int:
        rng = self.rng
        if method == "specific":
            return 1
        if rng.random() < 0.09:
            return 1
        return rng.randint(2, 3) if method == "selection" else rng.randint(2, 8)

    def award(self, process: Process, winner: Supplier, value: Decimal, on: date) -> None:
        process.winner, process.award_value, process.awarded_on = winner, value, on
        process.status = "awarded"
        process.award_id = len(self.awards) + 1
        self.awards.append((process.award_id, process.id, winner.id, value, on))

    # -- contracts and implementation

    def contract(self, process: Process) -> None:
        rng = self.rng
        assert process.winner and process.award_value and process.awarded_on
        signed = process.awarded_on + timedelta(rng.randint(3, 15))
        if signed > DATA_END:
            return
        process.status = "contracted"
        days = {"goods": (15, 90), "services": (60, 365), "works": (90, 540)}[process.category]
        ends = signed + timedelta(rng.randint(*days))
        value = process.award_value
        contract_id = len(self.contracts) + 1
        new_value, new_ends = value, ends
        if process.category == "works" and rng.random() < 0.28:
            new_value, new_ends = self._amend(process, contract_id, signed, value, ends)
        milestones = self._milestones(contract_id, process.category, signed, new_ends, new_value)
        terminated = rng.random() < 0.01
        paid, all_met = self._pay(contract_id, milestones, terminated)
        process.paid = paid
        status = "terminated" if terminated else "completed" if all_met else "active"
        self.contracts.append(
            (
                contract_id,
                process.id,
                process.award_id,
                f"{process.unit.code}-{process.fiscal_year}-{contract_id:05d}",
                process.winner.id,
                value,
                new_value,
                signed,
                signed,
                ends,
                new_ends,
                status,
            )
        )
        if process.category == "works" and process.budget > SPECIFIC_CEILING:
            self._project(process, paid, new_value, status)

    def _amend(
        self, process: Process, contract_id: int, signed: date, value: Decimal, ends: date
    ) -> tuple[Decimal, date]:
        rng = self.rng
        on = signed + timedelta(rng.randint(20, max(21, (ends - signed).days - 5)))
        new_ends = ends + timedelta(rng.randint(30, 120))
        new_value = value
        rationale = rng.choice(_TIME_RATIONALES)
        if rng.random() < 0.4:
            new_value = _money(float(value) * rng.uniform(1.01, 1.1))
            rationale += "; " + rng.choice(_PRICE_RATIONALES)
        self.amendments.append(
            (
                len(self.amendments) + 1,
                process.id,
                contract_id,
                on,
                rationale,
                value,
                new_value,
                ends,
                new_ends,
            )
        )
        return new_value, new_ends

    def _milestones(
        self, contract_id: int, category: str, signed: date, ends: date, value: Decimal
    ) -> list[Row]:
        rng = self.rng
        count = {"goods": 1, "services": rng.randint(1, 4), "works": rng.randint(2, 6)}[category]
        span = (ends - signed).days
        shares = _allocate(10_000, [rng.uniform(0.7, 1.3) for _ in range(count)], minimum=1)
        rows: list[Row] = []
        left = value
        for seq, share in enumerate(shares, start=1):
            amount = left if seq == count else _money(value * share / 10_000)
            left -= amount
            due = signed + timedelta(round(span * seq / count))
            met = due + timedelta(rng.randint(-5, 20))
            label = "ส่งมอบพัสดุ" if category == "goods" else f"งวดที่ {seq}"
            rows.append((contract_id, seq, label, due, met if met <= DATA_END else None, amount))
        return rows

    def _pay(
        self, contract_id: int, milestones: list[Row], terminated: bool
    ) -> tuple[Decimal, bool]:
        rng = self.rng
        paid = Decimal(0)
        all_met = True
        for i, (cid, seq, title, due, met, amount) in enumerate(milestones):
            if terminated and i >= len(milestones) // 2:
                met = None
            self.milestones.append((cid, seq, title, due, met, amount))
            if met is None:
                all_met = False
                continue
            paid_on = met + timedelta(rng.randint(5, 30))
            if paid_on <= DATA_END:
                self.payments.append((len(self.payments) + 1, contract_id, seq, paid_on, amount))
                paid += amount
            else:
                all_met = False
        return paid, all_met

    def _project(self, process: Process, paid: Decimal, value: Decimal, status: str) -> None:
        rng = self.rng
        district = process.unit.district or rng.choice(self.districts)
        sector, purpose = next(
            ((s, p) for pattern, s, p in _WORKS if process.title.startswith(pattern.split(" ")[0])),
            ("transport.road", _WORKS[0][2]),
        )
        lat, lon = _scatter(rng, district)
        progress = min(Decimal(100), _money(paid * 100 / value)) if value else Decimal(0)
        self.projects.append(
            (
                f"BKK-INF-{process.fiscal_year}-{len(self.projects) + 1:04d}",
                process.id,
                process.title,
                purpose,
                sector,
                district.code,
                lat,
                lon,
                process.budget,
                progress,
                "completed" if status == "completed" else "implementation",
            )
        )

    def tender_amendment(self, process: Process) -> None:
        if process.bid_deadline is None:
            return
        on = process.announced_on + timedelta(self.rng.randint(1, 5))
        self.amendments.append(
            (
                len(self.amendments) + 1,
                process.id,
                None,
                on,
                _TENDER_RATIONALE,
                None,
                None,
                None,
                None,
            )
        )


# ---------------------------------------------------------------------------- the draw


def make_finance(
    rng: random.Random,
    districts: Sequence[DistrictRow],
    registrations: Sequence[tuple[str, Registration]],
    people: People,
    process_count: int,
    everyday: Registration | None = None,
) -> list[Table]:
    """The finance tables; ``registrations`` are the registries' (district code, business),
    ``everyday`` the business of the person every kind of record names (seed.py), who wins
    a public work of their district office."""
    units = make_units(districts)
    suppliers = make_suppliers(rng, districts, registrations, people, everyday)
    b = FinanceBuilder(rng, districts, units, suppliers)
    _draw_processes(b, process_count)
    _plant_cases(b)
    if everyday is not None:
        _plant_everyday_work(b, everyday)
    b.processes.sort(key=lambda p: (p.announced_on, p.id))
    for p in b.processes:
        if p.winner is not None and p.status == "awarded":
            b.contract(p)
    lines = _budget_lines(b)
    return _tables(b, units, suppliers, lines)


def _draw_processes(b: FinanceBuilder, count: int) -> None:
    rng = b.rng
    weights = [6.0 if u.kind == "department" else 1.0 for u in b.units]
    pairs = [(u, y) for u in b.units for y in FISCAL_YEARS]
    counts = _allocate(count, [weights[b.units.index(u)] for u, _ in pairs], minimum=4)
    for (unit, year), n in zip(pairs, counts, strict=True):
        start, end = fiscal_bounds(year)
        for _ in range(n):
            category = rng.choices(("goods", "services", "works"), weights=unit.weights)[0]
            low, high = {"goods": (8e3, 8e6), "services": (2e4, 6e6), "works": (1e5, 9e7)}[category]
            budget = _hundreds(_log_uniform(rng, low, high))
            announced = _random_date(rng, start, min(end, DATA_END))
            p = b.new_process(unit, year, category, budget, announced)
            if rng.random() < 0.04:
                b.tender_amendment(p)
            if (DATA_END - announced).days < 40:
                continue  # still open for bids
            if rng.random() < 0.02:
                p.status = "cancelled"
                continue
            b.bid(p)


def _plant_cases(b: FinanceBuilder) -> None:
    """Cases of each integrity indicator, and near misses that must not trigger it."""
    rng = b.rng
    offices = [u for u in b.units if u.kind == "district_office"]
    for unit in rng.sample(offices, 20):
        supplier = rng.choice(b._locals(unit) or b._companies())
        year = rng.choice(FISCAL_YEARS[:3])
        start = fiscal_bounds(year)[0] + timedelta(rng.randint(10, 250))
        # Splitting: three specific-method buys within the window, together over the ceiling.
        for offset in (0, 9, SPLIT_WINDOW_DAYS - 3):
            _planted(b, unit, year, start + timedelta(offset), supplier, rng.uniform(180e3, 240e3))
        # Near misses: two buys over the ceiling together but further apart than the window,
        # and three within the window that stay under it.
        other = rng.choice(b._companies())
        later = start + timedelta(SPLIT_WINDOW_DAYS + 15)
        _planted(b, unit, year, start + timedelta(2), other, rng.uniform(300e3, 400e3))
        _planted(b, unit, year, later, other, rng.uniform(300e3, 400e3))
        third = rng.choice(b._companies())
        for offset in (1, 11, 21):
            _planted(b, unit, year, start + timedelta(offset), third, rng.uniform(90e3, 150e3))
        # Just under a ceiling, and just over the margin below it.
        ceiling = float(SPECIFIC_CEILING)
        _planted(b, unit, year, start + timedelta(90), None, ceiling * rng.uniform(0.97, 0.999))
        _planted(
            b, unit, year, start + timedelta(95), None, ceiling * (float(JUST_UNDER_SHARE) - 0.03)
        )
    # Suppliers registered shortly before the announcement, and long enough before.
    recent = [s for s in b.suppliers if s.registered_on and s.registered_on >= date(2022, 10, 1)]
    for supplier in rng.sample(recent, min(30, len(recent))):
        assert supplier.registered_on is not None
        days = rng.randint(10, RECENT_REGISTRATION_DAYS - 20)
        _planted_for(b, supplier, supplier.registered_on + timedelta(days))
    for supplier in rng.sample(recent, min(30, len(recent))):
        assert supplier.registered_on is not None
        days = rng.randint(RECENT_REGISTRATION_DAYS + 30, RECENT_REGISTRATION_DAYS + 200)
        _planted_for(b, supplier, supplier.registered_on + timedelta(days))


def _plant_everyday_work(b: FinanceBuilder, business: Registration) -> None:
    """A public work of the business's district office, won by the business: a supplier
    who is a person reachable by every path of the graph (tests/test_data_subject_report.py)."""
    supplier = next(s for s in b.suppliers if s.registration_no == business.no)
    unit = next(u for u in b.units if u.district and u.district.code == supplier.district)
    announced = fiscal_bounds(2567)[0] + timedelta(40)
    p = b.new_process(unit, 2567, "works", Decimal("3200000.00"), announced, "e_bidding")
    b.bid(p, winner=supplier, count=3)


def _planted(
    b: FinanceBuilder,
    unit: Unit,
    year: int,
    day: date,
    supplier: Supplier | None,
    value: float,
) -> None:
    """A specific-method buy awarded at ``value`` two days after its announcement."""
    category = b.rng.choice(("goods", "services"))
    budget = _hundreds(value)
    p = b.new_process(
        unit,
        year,
        category,
        min(SPECIFIC_CEILING, _hundreds(float(budget) * 1.02)),
        day,
        "specific",
    )
    b.bid(p, winner=supplier, count=1, price=budget, awarded_on=day + timedelta(2))


def _planted_for(b: FinanceBuilder, supplier: Supplier, announced: date) -> None:
    if announced > DATA_END - timedelta(60):
        return
    unit = next(u for u in b.units if u.district and u.district.code == supplier.district)
    budget = _hundreds(_log_uniform(b.rng, 30e3, 450e3))
    p = b.new_process(unit, fiscal_year_of(announced), "goods", budget, announced, "specific")
    b.bid(p, winner=supplier, count=1)


# ---------------------------------------------------------------------------- the budget


def _budget_lines(b: FinanceBuilder) -> list[Row]:
    """Lines that cover the processes spending them; disbursed never above approved plus
    adjusted, and at least what the line's contracts were paid."""
    rng = b.rng
    spending: dict[tuple[str, int, str, tuple[str, str]], list[Process]] = defaultdict(list)
    for p in b.processes:
        spending[(p.unit.code, p.fiscal_year, p.economic_class, p.project)].append(p)
    rows: list[Row] = []
    for unit in b.units:
        scale = 8.0 if unit.kind == "department" else 1.0
        for year in FISCAL_YEARS:
            progress = 0.45 if year == FISCAL_YEARS[-1] else rng.uniform(0.86, 0.98)
            keys = [k for k in spending if k[0] == unit.code and k[1] == year]
            for key in sorted(keys, key=lambda k: (k[2], k[3])):
                procs = spending[key]
                committed = sum((p.budget for p in procs if p.status != "cancelled"), Decimal(0))
                paid = sum((p.paid for p in procs), Decimal(0))
                line_id = len(rows) + 1
                for p in procs:
                    p.budget_line_id = line_id
                approved = _hundreds(float(committed) * rng.uniform(1.2, 1.8) + 1e5)
                rows.append(
                    _line(rng, line_id, year, unit.code, key[3], key[2], approved, paid, progress)
                )
            fixed = ["personnel", "other"] + (["subsidy"] if rng.random() < 0.6 else [])
            if unit.code == CENTRAL_UNIT:
                fixed.append("central")
            for economic_class in fixed:
                approved = _hundreds(_log_uniform(rng, 8e6, 9e7) * scale)
                plan = _CLASS_PLANS[economic_class]
                rows.append(
                    _line(
                        rng,
                        len(rows) + 1,
                        year,
                        unit.code,
                        plan,
                        economic_class,
                        approved,
                        Decimal(0),
                        progress,
                    )
                )
    return rows


def _line(
    rng: random.Random,
    line_id: int,
    year: int,
    unit: str,
    plan: tuple[str, str],
    economic_class: str,
    approved: Decimal,
    paid: Decimal,
    progress: float,
) -> Row:
    proposed = _hundreds(float(approved) * rng.uniform(1.0, 1.25))
    adjusted = _hundreds(float(approved) * rng.uniform(-0.03, 0.08))
    available = approved + adjusted
    disbursed = min(available, max(paid, _money(available * Decimal(str(round(progress, 4))))))
    return (line_id, year, unit, *plan, economic_class, proposed, approved, adjusted, disbursed)


# ---------------------------------------------------------------------------- tables


def _tables(
    b: FinanceBuilder, units: list[Unit], suppliers: list[Supplier], lines: list[Row]
) -> list[Table]:
    years = [(y, *fiscal_bounds(y)) for y in FISCAL_YEARS]
    processes = [
        (
            p.id,
            p.fiscal_year,
            p.title,
            p.unit.code,
            p.budget_line_id,
            p.method,
            p.category,
            p.budget,
            p.reference_price,
            p.announced_on,
            p.bid_deadline,
            p.status,
        )
        for p in b.processes
    ]
    return [
        Table("finance", "fiscal_years", ("year", "starts_on", "ends_on"), years),
        Table(
            "finance",
            "units",
            ("code", "name_th", "name_en", "kind", "district_code"),
            [u.row() for u in units],
        ),
        Table("finance", "budget_lines", BUDGET_LINE_COLUMNS, lines),
        Table("finance", "suppliers", SUPPLIER_COLUMNS, [s.row() for s in suppliers]),
        Table("finance", "processes", PROCESS_COLUMNS, processes),
        Table("finance", "bids", BID_COLUMNS, [bid for p in b.processes for bid in p.bids]),
        Table(
            "finance",
            "awards",
            ("id", "process_id", "supplier_id", "value", "awarded_on"),
            b.awards,
        ),
        Table("finance", "contracts", CONTRACT_COLUMNS, b.contracts),
        Table(
            "finance",
            "milestones",
            ("contract_id", "seq", "title", "due_on", "met_on", "value"),
            b.milestones,
        ),
        Table(
            "finance",
            "payments",
            ("id", "contract_id", "milestone_seq", "paid_on", "amount"),
            b.payments,
        ),
        Table("finance", "amendments", AMENDMENT_COLUMNS, b.amendments),
        Table("finance", "projects", PROJECT_COLUMNS, b.projects),
    ]


BUDGET_LINE_COLUMNS = (
    "id",
    "fiscal_year",
    "unit_code",
    "plan",
    "project",
    "economic_class",
    "proposed",
    "approved",
    "adjusted",
    "disbursed",
)
SUPPLIER_COLUMNS = ("id", "kind", "name", "tax_id", "registration_no", "address")
PROCESS_COLUMNS = (
    "id",
    "fiscal_year",
    "title",
    "buyer_code",
    "budget_line_id",
    "method",
    "category",
    "budget",
    "reference_price",
    "announced_on",
    "bid_deadline",
    "status",
)
BID_COLUMNS = ("process_id", "supplier_id", "offered_price", "submitted_on", "status")
CONTRACT_COLUMNS = (
    "id",
    "process_id",
    "award_id",
    "contract_no",
    "supplier_id",
    "original_value",
    "value",
    "signed_on",
    "starts_on",
    "original_ends_on",
    "ends_on",
    "status",
)
AMENDMENT_COLUMNS = (
    "id",
    "process_id",
    "contract_id",
    "amended_on",
    "rationale",
    "value_before",
    "value_after",
    "ends_before",
    "ends_after",
)
PROJECT_COLUMNS = (
    "id",
    "process_id",
    "title",
    "purpose",
    "sector",
    "district_code",
    "lat",
    "lon",
    "budget",
    "progress_pct",
    "status",
)
