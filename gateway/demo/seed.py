"""Deterministic synthetic data for the four upstream systems, seeded once per database.

The same ``rng_seed`` and scale always give byte-identical rows: every section draws from its
own ``random.Random`` named after the seed and the section, and nothing depends on the clock
or on set iteration order. Each database is reseeded in one transaction that writes
``meta.seed_info`` last, so a database with that row holds complete data.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from importlib import resources
from typing import Any

import asyncpg
import orjson

from gateway.demo import thai_data as th
from gateway.demo.ddl import (
    AGE_BANDS,
    FINANCE_DDL,
    META_DDL,
    REGISTRY_DDL,
    TAX_DDL,
    TRAFFY_DDL,
    registry_schema,
)
from gateway.demo.embedded import DatabaseUrls
from gateway.demo.finance_seed import make_finance
from gateway.demo.synthetic import (
    DistrictRow,
    People,
    Registration,
    Row,
    Table,
    _address,
    _allocate,
    _house_number,
    _log_uniform,
    _random_date,
    _road,
    _scatter,
    _subdistrict,
)
from gateway.demo.tax_rules import land_building_tax, signboard_tax

# 2: signs of businesses on parcels of other districts; 3: permits carry the applicant's id;
# 4: signboard tax is paid (status, paid_at), drawn after every other signboard column;
# 5: finance indexes on payments, amendments and awards by their foreign keys.
SEED_VERSION = 5

BANGKOK = timezone(timedelta(hours=7))
# Serialises concurrent seeders of one database (advisory locks are per database).
_SEED_LOCK_KEY = 2562_0001
# Physical signs per registration; each is taxed in every seeded year its business existed,
# which gives about 3,000 signboard rows at the default scale.
SIGNS_PER_REGISTRATION = 0.23
# Signs of each district's businesses on parcels of other districts (a chain's branch, a
# billboard on a main road): the district where a sign stands taxes it.
BRANCH_SIGNS_PER_DISTRICT = 2

# Districts by ring of the city: the inner city is denser and dearer, the outer ring greener.
INNER = frozenset(
    {
        "1001",
        "1002",
        "1004",
        "1007",
        "1008",
        "1012",
        "1013",
        "1014",
        "1015",
        "1016",
        "1017",
        "1018",
        "1020",
        "1026",
        "1028",
        "1029",
        "1030",
        "1031",
        "1033",
        "1037",
        "1039",
    }
)
OUTER = frozenset(
    {
        "1003",
        "1010",
        "1011",
        "1019",
        "1021",
        "1023",
        "1032",
        "1042",
        "1043",
        "1044",
        "1046",
        "1048",
        "1050",
    }
)
RURAL = frozenset({"1003", "1011", "1021", "1046"})  # still largely rice fields and ponds
PRIME = frozenset({"1004", "1007", "1028", "1033", "1037", "1039"})  # CBD land prices


@dataclass(frozen=True)
class SeedScale:
    parcels: int = 20_000
    registrations: int = 5_000
    tickets: int = 20_000
    building_permits_per_district: int = 40
    tax_years: tuple[int, ...] = (2023, 2024, 2025)
    procurement_processes: int = 4_400  # over fiscal years 2566-2569, before planted cases


@dataclass(frozen=True)
class SeedData:
    districts: list[DistrictRow]
    tax: list[Table]
    registry: list[Table]
    traffy: list[Table]
    finance: list[Table]


# ---------------------------------------------------------------------------- seeding


async def ensure_seeded(
    urls: DatabaseUrls,
    scale: SeedScale = SeedScale(),
    rng_seed: int = 2562,
) -> bool:
    """Seed whichever of the four upstream databases lacks this version and scale of the data.

    Returns True if anything was seeded now, False if all four were reused.
    """
    fingerprint = seed_fingerprint(scale, rng_seed)
    dsns = (urls.tax, urls.registry, urls.traffy, urls.finance)
    async with AsyncExitStack() as stack:
        conns = [await _connect(stack, dsn) for dsn in dsns]
        current = [await _is_current(conn, fingerprint) for conn in conns]
        if all(current):
            return False
        data = await asyncio.to_thread(build_dataset, scale, rng_seed)
        plans = _database_plans(data)
        loads = [
            _load(conn, *plan, fingerprint)
            for conn, plan, done in zip(conns, plans, current, strict=True)
            if not done
        ]
        return any(await asyncio.gather(*loads))


def seed_fingerprint(scale: SeedScale, rng_seed: int) -> str:
    """What ``meta.seed_info.scale`` holds: the scale and the seed, as JSON."""
    return json.dumps({**asdict(scale), "rng_seed": rng_seed}, sort_keys=True)


async def _connect(stack: AsyncExitStack, dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    stack.push_async_callback(conn.close)
    return conn


async def _is_current(conn: asyncpg.Connection, fingerprint: str) -> bool:
    if await conn.fetchval("SELECT to_regclass('meta.seed_info')") is None:
        return False
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM meta.seed_info WHERE version = $1 AND scale = $2::jsonb)",
            SEED_VERSION,
            fingerprint,
        )
    )


def _database_plans(data: SeedData) -> list[tuple[str, tuple[str, ...], list[Table]]]:
    """(DDL, schemas to drop first, tables) for the tax, registry, Traffy and finance
    databases."""
    schemas = [registry_schema(d.code) for d in data.districts]
    registry_ddl = "".join(REGISTRY_DDL.format(schema=s) for s in schemas)
    return [
        (TAX_DDL, ("tax", "meta"), data.tax),
        (registry_ddl, (*schemas, "meta"), data.registry),
        (TRAFFY_DDL, ("traffy", "meta"), data.traffy),
        (FINANCE_DDL, ("finance", "meta"), data.finance),
    ]


async def _load(
    conn: asyncpg.Connection,
    ddl: str,
    drop: Sequence[str],
    tables: Sequence[Table],
    fingerprint: str,
) -> bool:
    """Replace one database's data in one transaction; False if another seeder beat us."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SEED_LOCK_KEY)
        if await _is_current(conn, fingerprint):
            return False
        await conn.execute("".join(f"DROP SCHEMA IF EXISTS {s} CASCADE;" for s in drop))
        await conn.execute(ddl + META_DDL)
        for t in tables:
            await conn.copy_records_to_table(
                t.name, schema_name=t.schema, columns=list(t.columns), records=t.rows
            )
        await conn.execute(
            "INSERT INTO meta.seed_info (version, scale) VALUES ($1, $2::jsonb)",
            SEED_VERSION,
            fingerprint,
        )
    return True


# ---------------------------------------------------------------------------- the dataset


def build_dataset(scale: SeedScale, rng_seed: int = 2562) -> SeedData:
    """Every row of the four systems, in load order; pure and deterministic."""

    districts = load_districts()
    people = People(_rng(rng_seed, "people"))
    owners = make_owners(_rng(rng_seed, "owners"), people, round(scale.parcels * 0.6))
    parcels = make_parcels(_rng(rng_seed, "parcels"), districts, owners, scale.parcels)
    assessments = make_assessments(_rng(rng_seed, "assessments"), parcels, scale.tax_years)
    registries = make_registries(_rng(rng_seed, "registry"), districts, parcels, people, scale)
    signboards = make_signboards(
        _rng(rng_seed, "signboards"),
        registries,
        parcels,
        scale.tax_years,
        max(1, round(scale.registrations * SIGNS_PER_REGISTRATION)),
    )
    registries, signboards = with_everyday_person(
        _rng(rng_seed, "everyday-person"), registries, parcels, signboards, scale.tax_years
    )
    signboards += make_branch_signboards(
        _rng(rng_seed, "branch-signboards"), registries, parcels, scale.tax_years, len(signboards)
    )
    signboards = with_signboard_payments(
        _rng(rng_seed, "signboard-payments"), signboards, scale.tax_years
    )
    tickets, contacts = make_tickets(_rng(rng_seed, "traffy"), districts, people, scale.tickets)
    finance = make_finance(
        _rng(rng_seed, "finance"),
        districts,
        [(r.district.code, reg) for r in registries for reg in r.registrations],
        People(_rng(rng_seed, "finance-people")),
        scale.procurement_processes,
        everyday_business(registries),
    )
    return SeedData(
        districts=districts,
        tax=[
            Table(
                "tax",
                "owners",
                ("id", "kind", "name", "national_id"),
                [(o.id, o.kind, o.name, o.national_id) for o in owners],
            ),
            Table("tax", "parcels", PARCEL_COLUMNS, [p.row() for p in parcels]),
            Table("tax", "assessments", ASSESSMENT_COLUMNS, assessments),
            Table("tax", "signboards", SIGNBOARD_COLUMNS, signboards),
        ],
        registry=[t for r in registries for t in r.tables()],
        traffy=[
            Table("traffy", "tickets", ("ticket_id", "doc"), tickets),
            Table("traffy", "reporter_contacts", ("ticket_id", "name", "phone"), contacts),
        ],
        finance=finance,
    )


def load_districts() -> list[DistrictRow]:
    """The 50 districts from the connectors' reference CSV, with their centres."""
    path = resources.files("connectors") / "data" / "bangkok_districts.csv"
    rows = csv.DictReader(io.StringIO(path.read_text("utf-8")))
    return [
        DistrictRow(r["code"], r["name_th"], _tier(r["code"]), *th.DISTRICT_CENTROIDS[r["code"]])
        for r in rows
    ]


def _tier(code: str) -> str:
    return "inner" if code in INNER else "outer" if code in OUTER else "middle"


# ---------------------------------------------------------------------------- helpers


def _rng(seed: int, part: str) -> random.Random:
    # String seeds are hashed with SHA-512, so they do not depend on PYTHONHASHSEED.
    return random.Random(f"{seed}:{part}")


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _district_weights(
    rng: random.Random, districts: Sequence[DistrictRow], by_tier: dict[str, float]
) -> list[float]:
    """Per-district weights by ring, jittered so neighbours differ."""
    return [by_tier[d.tier] * rng.uniform(0.8, 1.2) for d in districts]


def _spread(
    rng: random.Random, districts: Sequence[DistrictRow], counts: Sequence[int]
) -> list[DistrictRow]:
    """One district per row, shuffled so ids do not run district by district."""
    spread = [d for d, n in zip(districts, counts, strict=True) for _ in range(n)]
    rng.shuffle(spread)
    return spread


def _plus_one_year(d: date) -> date:
    return d.replace(year=d.year + 1) if (d.month, d.day) != (2, 29) else date(d.year + 1, 2, 28)


def _be(year: int) -> int:
    """The Buddhist-era year."""
    return year + 543


# ---------------------------------------------------------------------------- tax


@dataclass(frozen=True)
class OwnerRow:
    id: int
    kind: str
    name: str
    national_id: str


@dataclass(frozen=True)
class ParcelRow:
    id: int
    deed_type: str
    deed_number: str
    district: DistrictRow
    land_use: str
    area_sqm: Decimal
    value: Decimal
    lat: float
    lon: float
    owner: OwnerRow

    def row(self) -> Row:
        return (
            self.id,
            self.deed_type,
            self.deed_number,
            self.district.code,
            self.land_use,
            self.area_sqm,
            self.value,
            self.lat,
            self.lon,
            self.owner.id,
        )


PARCEL_COLUMNS = (
    "id",
    "title_deed_type",
    "title_deed_number",
    "district_code",
    "land_use",
    "area_sqm",
    "appraised_value",
    "lat",
    "lon",
    "owner_id",
)
ASSESSMENT_COLUMNS = (
    "parcel_id",
    "tax_year",
    "base",
    "exemption",
    "rate",
    "tax_due",
    "status",
    "paid_at",
)
SIGNBOARD_COLUMNS = (
    "id",
    "business_registration_no",
    "parcel_id",
    "district_code",
    "sign_type",
    "area_cm2",
    "moving",
    "tax_year",
    "tax_due",
    "status",
    "paid_at",
)

_LAND_USE_MIX: dict[str, dict[str, float]] = {
    "inner": {"residential": 0.54, "commercial_other": 0.38, "agricultural": 0.0, "vacant": 0.08},
    "middle": {"residential": 0.60, "commercial_other": 0.28, "agricultural": 0.03, "vacant": 0.09},
    "outer": {"residential": 0.55, "commercial_other": 0.20, "agricultural": 0.13, "vacant": 0.12},
    "rural": {"residential": 0.40, "commercial_other": 0.12, "agricultural": 0.38, "vacant": 0.10},
}
# Baht per square metre of land (log-uniform between the two).
_PRICE_PER_SQM: dict[str, tuple[float, float]] = {
    "prime": (100_000, 500_000),
    "inner": (20_000, 350_000),
    "middle": (12_000, 120_000),
    "outer": (4_000, 45_000),
    "agricultural": (800, 6_000),
}
_AREA_SQM: dict[str, tuple[float, float]] = {
    "residential": (80, 1_200),
    "commercial_other": (60, 6_000),
    "agricultural": (1_600, 64_000),  # 1 to 40 rai
    "vacant": (200, 16_000),
}
# Share of each land use held by juristic persons rather than individuals.
_JURISTIC_SHARE = {
    "residential": 0.03,
    "commercial_other": 0.45,
    "agricultural": 0.1,
    "vacant": 0.2,
}
_DEED_TYPES = {
    "inner": {"chanote": 0.98, "nor_sor_3_kor": 0.02, "nor_sor_3": 0.0},
    "middle": {"chanote": 0.93, "nor_sor_3_kor": 0.06, "nor_sor_3": 0.01},
    "outer": {"chanote": 0.82, "nor_sor_3_kor": 0.14, "nor_sor_3": 0.04},
}


def make_owners(rng: random.Random, people: People, count: int) -> list[OwnerRow]:
    """About 85% individuals, 15% juristic persons, in shuffled id order."""
    count = max(count, 2)
    juristic = max(1, round(count * 0.15))
    kinds = ["juristic"] * juristic + ["person"] * (count - juristic)
    rng.shuffle(kinds)
    owners = []
    for i, kind in enumerate(kinds, start=1):
        if kind == "person":
            owners.append(OwnerRow(i, kind, people.person_name(), people.person_id()))
        else:
            owners.append(OwnerRow(i, kind, *people.company()))
    return owners


class _OwnerPicker:
    """Hands every owner of a kind one parcel before any owner gets a second."""

    def __init__(self, rng: random.Random, owners: Sequence[OwnerRow]) -> None:
        self._rng = rng
        self._pools = {k: [o for o in owners if o.kind == k] for k in ("person", "juristic")}
        for pool in self._pools.values():
            rng.shuffle(pool)
        self._handed = {k: 0 for k in self._pools}

    def pick(self, kind: str) -> OwnerRow:
        if not self._pools[kind]:
            kind = "person" if kind == "juristic" else "juristic"
        pool, handed = self._pools[kind], self._handed[kind]
        if handed < len(pool):
            self._handed[kind] = handed + 1
            return pool[handed]
        return self._rng.choice(pool)


def make_parcels(
    rng: random.Random, districts: Sequence[DistrictRow], owners: Sequence[OwnerRow], count: int
) -> list[ParcelRow]:
    weights = _district_weights(rng, districts, {"inner": 1.4, "middle": 1.0, "outer": 0.7})
    counts = _allocate(count, weights, minimum=100)
    picker = _OwnerPicker(rng, owners)
    deed_numbers = rng.sample(range(1_000, 1_000 + count * 20), count)
    return [
        _parcel(rng, i, district, picker, str(deed_numbers[i - 1]))
        for i, district in enumerate(_spread(rng, districts, counts), start=1)
    ]


def _parcel(
    rng: random.Random, parcel_id: int, district: DistrictRow, picker: _OwnerPicker, deed: str
) -> ParcelRow:
    mix = "rural" if district.code in RURAL else district.tier
    land_use = _weighted(rng, _LAND_USE_MIX[mix])
    kind = "juristic" if rng.random() < _JURISTIC_SHARE[land_use] else "person"
    wah = max(1, round(_log_uniform(rng, *_AREA_SQM[land_use]) / 4))  # deeds count square wah
    area = Decimal(wah * 4)
    price = _log_uniform(rng, *_PRICE_PER_SQM[_price_band(district, land_use)])
    value = Decimal(int(round(float(area) * price, -2))).quantize(Decimal("0.01"))
    lat, lon = _scatter(rng, district)
    return ParcelRow(
        id=parcel_id,
        deed_type=_weighted(rng, _DEED_TYPES[district.tier]),
        deed_number=deed,
        district=district,
        land_use=land_use,
        area_sqm=area.quantize(Decimal("0.01")),
        value=value,
        lat=lat,
        lon=lon,
        owner=picker.pick(kind),
    )


def _price_band(district: DistrictRow, land_use: str) -> str:
    if land_use == "agricultural":
        return "agricultural"
    return "prime" if district.code in PRIME else district.tier


def make_assessments(
    rng: random.Random, parcels: Sequence[ParcelRow], years: Sequence[int]
) -> list[Row]:
    """One assessment per parcel and year; the base is the appraisal of the current round
    (B.E. 2566-2569), so it is the same in every seeded year."""
    latest = max(years)
    with_residence: set[int] = set()  # a person has one primary residence
    rows: list[Row] = []
    for p in parcels:
        primary = (
            p.land_use == "residential"
            and p.owner.kind == "person"
            and p.owner.id not in with_residence
            and rng.random() < 0.6
        )
        if primary:
            with_residence.add(p.owner.id)
        tax = land_building_tax(p.land_use, p.value, p.owner.kind, primary)
        for year in sorted(years):
            status, paid_at = _payment(rng, year, latest, tax.tax_due)
            rows.append(
                (p.id, year, tax.base, tax.exemption, tax.rate, tax.tax_due, status, paid_at)
            )
    return rows


def _payment(
    rng: random.Random, year: int, latest: int, tax_due: Decimal
) -> tuple[str, datetime | None]:
    """Older years are mostly settled; the latest is still being collected."""
    if not tax_due:
        return "exempt", None
    r = rng.random()
    if year == latest:
        status = "paid" if r < 0.62 else "unpaid" if r < 0.85 else "overdue"
    else:
        status = "paid" if r < 0.93 else "overdue"
    return status, _paid_at(rng, year) if status == "paid" else None


def _paid_at(rng: random.Random, year: int) -> datetime:
    """Office hours in Bangkok, mostly April to June when the bills fall due."""
    if rng.random() < 0.85:
        day = _random_date(rng, date(year, 4, 1), date(year, 6, 30))
    else:
        day = _random_date(rng, date(year, 7, 1), date(year, 12, 20))
    return _office_hours(rng, day)


def _office_hours(rng: random.Random, day: date) -> datetime:
    """A moment of ``day`` between 08:30 and 16:30 Bangkok time."""
    seconds = rng.randint(8 * 3600 + 1800, 16 * 3600 + 1800)
    moment = time(seconds // 3600, seconds // 60 % 60, seconds % 60)
    return datetime.combine(day, moment, tzinfo=BANGKOK)


def make_signboards(
    rng: random.Random,
    registries: Sequence[DistrictRegistry],
    parcels: Sequence[ParcelRow],
    years: Sequence[int],
    signs: int,
) -> list[Row]:
    """Signs of active businesses on parcels of their district, taxed every seeded year from
    the year the business registered."""
    by_district: dict[str, list[ParcelRow]] = {}
    for p in parcels:
        by_district.setdefault(p.district.code, []).append(p)
    active = [[r for r in reg.registrations if r.status == "active"] for reg in registries]
    counts = _allocate(signs, [len(a) for a in active], minimum=0)
    rows: list[Row] = []
    for reg, businesses, n in zip(registries, active, counts, strict=True):
        here = by_district.get(reg.district.code, [])
        if not (businesses and here):
            continue
        shops = [p for p in here if p.land_use == "commercial_other"] or here
        for _ in range(n):
            business = rng.choice(businesses)
            parcel = rng.choice(shops) if rng.random() < 0.85 else rng.choice(here)
            rows.extend(_sign_rows(rng, len(rows), business, parcel, years))
    return rows


def make_branch_signboards(
    rng: random.Random,
    registries: Sequence[DistrictRegistry],
    parcels: Sequence[ParcelRow],
    years: Sequence[int],
    first_id: int,
) -> list[Row]:
    """Signs of each district's active businesses on parcels of other districts: the first
    in the next district by code (so that every district both has such signs and hosts
    them), the others in districts drawn at random. Numbered after ``first_id``."""
    by_district: dict[str, list[ParcelRow]] = {}
    for p in parcels:
        by_district.setdefault(p.district.code, []).append(p)
    codes = [reg.district.code for reg in registries]
    rows: list[Row] = []
    for i, reg in enumerate(registries):
        active = [r for r in reg.registrations if r.status == "active"]
        others = [c for c in codes if c != reg.district.code]
        if not (active and others):
            continue
        hosts = [codes[(i + 1) % len(codes)]]
        hosts += [rng.choice(others) for _ in range(BRANCH_SIGNS_PER_DISTRICT - 1)]
        for host in hosts:
            here = by_district.get(host, [])
            shops = [p for p in here if p.land_use == "commercial_other"] or here
            if shops:
                business, parcel = rng.choice(active), rng.choice(shops)
                rows.extend(_sign_rows(rng, first_id + len(rows), business, parcel, years))
    return rows


def _sign_rows(
    rng: random.Random,
    first_id: int,
    business: Registration,
    parcel: ParcelRow,
    years: Sequence[int],
) -> list[Row]:
    sign_type = rng.choices((1, 2, 3), weights=(35, 50, 15))[0]
    area = int(_log_uniform(rng, 500, 200_000))
    moving = rng.random() < 0.08
    tax = signboard_tax(sign_type, area, moving)
    taxed = [y for y in sorted(years) if y >= business.registered_on.year]
    return [
        (
            first_id + i + 1,
            business.no,
            parcel.id,
            parcel.district.code,
            sign_type,
            area,
            moving,
            year,
            tax,
        )
        for i, year in enumerate(taxed)
    ]


def with_signboard_payments(
    rng: random.Random, signboards: Sequence[Row], years: Sequence[int]
) -> list[Row]:
    """Each sign's payment for its year, appended to its row. Drawn from a generator of its
    own, after every other column, so adding payments left the signs themselves unchanged."""
    latest = max(years)
    rows: list[Row] = []
    for row in signboards:
        year = row[SIGNBOARD_COLUMNS.index("tax_year")]
        r = rng.random()
        if year == latest:
            status = "paid" if r < 0.7 else "unpaid" if r < 0.88 else "overdue"
        else:
            status = "paid" if r < 0.95 else "overdue"
        rows.append((*row, status, _signboard_paid_at(rng, year) if status == "paid" else None))
    return rows


def _signboard_paid_at(rng: random.Random, year: int) -> datetime:
    """Office hours in Bangkok; signs are declared by the end of March and the tax is paid
    within 15 days of the notice, so mostly March to May, late payers until December."""
    if rng.random() < 0.8:
        day = _random_date(rng, date(year, 3, 1), date(year, 5, 31))
    else:
        day = _random_date(rng, date(year, 6, 1), date(year, 12, 20))
    return _office_hours(rng, day)


# ---------------------------------------------------------------------------- registries


@dataclass(frozen=True)
class DistrictRegistry:
    district: DistrictRow
    registrations: list[Registration]
    licences: list[Row]
    permits: list[Row]
    population: list[Row]

    def tables(self) -> list[Table]:
        schema = registry_schema(self.district.code)
        return [
            Table(
                schema,
                "commercial_registrations",
                (
                    "registration_no",
                    "business_name",
                    "business_type",
                    "owner_name",
                    "owner_id",
                    "address",
                    "registered_on",
                    "status",
                ),
                [r.row() for r in self.registrations],
            ),
            Table(
                schema,
                "licences",
                ("licence_no", "registration_no", "kind", "issued_on", "expires_on"),
                self.licences,
            ),
            Table(
                schema,
                "building_permits",
                (
                    "permit_no",
                    "applicant_name",
                    "applicant_id",
                    "address",
                    "building_type",
                    "floors",
                    "area_sqm",
                    "permitted_on",
                ),
                self.permits,
            ),
            Table(
                schema,
                "population_stats",
                ("year", "sex", "age_band", "population"),
                self.population,
            ),
        ]


_BUSINESS_WEIGHTS = {
    "ร้านอาหาร": 10,
    "ร้านก๋วยเตี๋ยว": 5,
    "ร้านกาแฟ": 6,
    "ร้านขายของชำ": 8,
    "ร้านค้าปลีก": 7,
    "ร้านเสริมสวย": 5,
    "อู่ซ่อมรถยนต์": 3,
}
_FIRST_REGISTRATION_YEAR, _LAST_YEAR = 2005, 2025
# (floors, area in m², weight in the inner / middle / outer ring)
_BUILDINGS: dict[str, tuple[tuple[int, int], tuple[float, float], tuple[float, float, float]]] = {
    "บ้านเดี่ยว": ((1, 3), (120, 600), (2, 6, 8)),
    "ทาวน์เฮาส์": ((2, 3), (90, 240), (2, 5, 5)),
    "ตึกแถว": ((3, 5), (120, 400), (4, 3, 2)),
    "อาคารพาณิชย์": ((3, 8), (200, 3_000), (5, 3, 2)),
    "อาคารชุด": ((8, 45), (4_000, 60_000), (4, 2, 1)),
    "อาคารสำนักงาน": ((5, 40), (2_000, 80_000), (3, 1, 0.3)),
    "หอพัก": ((4, 8), (600, 5_000), (2, 2, 1)),
    "โรงแรม": ((5, 35), (2_000, 40_000), (2, 0.5, 0.3)),
    "โกดังสินค้า": ((1, 2), (500, 8_000), (0.3, 1, 3)),
    "โรงงาน": ((1, 3), (800, 12_000), (0.1, 0.7, 2.5)),
}
_TIER_INDEX = {"inner": 0, "middle": 1, "outer": 2}
# Age-band shares by ring (the inner city is older), and the female share of each band.
_AGE_SHARES = {
    "inner": (0.11, 0.17, 0.21, 0.23, 0.19, 0.09),
    "middle": (0.13, 0.18, 0.22, 0.23, 0.17, 0.07),
    "outer": (0.16, 0.20, 0.23, 0.21, 0.14, 0.06),
}
_FEMALE_SHARE = (0.49, 0.50, 0.51, 0.53, 0.55, 0.60)
_POPULATION_GROWTH = {"inner": -0.012, "middle": 0.002, "outer": 0.012}


def make_registries(
    rng: random.Random,
    districts: Sequence[DistrictRow],
    parcels: Sequence[ParcelRow],
    people: People,
    scale: SeedScale,
) -> list[DistrictRegistry]:
    weights = _district_weights(rng, districts, {"inner": 1.6, "middle": 1.0, "outer": 0.6})
    counts = _allocate(scale.registrations, weights, minimum=20)
    owners = _parcel_owners_by_district(parcels)
    persons = [o for o in dict.fromkeys(p.owner for p in parcels) if o.kind == "person"]
    registries = []
    for district, n in zip(districts, counts, strict=True):
        local = owners.get(district.code, [])
        local_persons = [o for o in local if o.kind == "person"] or persons
        registrations = _registrations(rng, district, n, people, local_persons)
        registries.append(
            DistrictRegistry(
                district=district,
                registrations=registrations,
                licences=_licences(rng, district, registrations),
                permits=_permits(rng, district, scale.building_permits_per_district, people, local),
                population=_population(rng, district),
            )
        )
    return registries


def _parcel_owners_by_district(parcels: Sequence[ParcelRow]) -> dict[str, list[OwnerRow]]:
    """Each district's parcel owners, once each, in parcel order."""
    seen: dict[str, dict[int, OwnerRow]] = {}
    for p in parcels:
        seen.setdefault(p.district.code, {}).setdefault(p.owner.id, p.owner)
    return {code: list(owners.values()) for code, owners in seen.items()}


def _registrations(
    rng: random.Random,
    district: DistrictRow,
    count: int,
    people: People,
    local_persons: Sequence[OwnerRow],
) -> list[Registration]:
    """Registrations numbered per Buddhist-era year in date order, e.g. 1039-2566-00123."""
    years = range(_FIRST_REGISTRATION_YEAR, _LAST_YEAR + 1)
    year_weights = [(y - _FIRST_REGISTRATION_YEAR + 1) ** 1.3 for y in years]
    dates = sorted(
        _random_date(rng, date(y, 1, 1), date(y, 12, 31))
        for y in rng.choices(years, weights=year_weights, k=count)
    )
    type_weights = [_BUSINESS_WEIGHTS.get(t, 2) for t in th.BUSINESS_TYPES]
    sequence: dict[int, int] = {}
    rows = []
    for registered_on in dates:
        be = _be(registered_on.year)
        sequence[be] = sequence.get(be, 0) + 1
        business_type = rng.choices(th.BUSINESS_TYPES, weights=type_weights)[0]
        if local_persons and rng.random() < 0.6:  # the owner also owns land: a join across systems
            owner = rng.choice(local_persons)
            owner_name, owner_id = owner.name, owner.national_id
        else:
            owner_name, owner_id = people.person_name(), people.person_id()
        rows.append(
            Registration(
                no=f"{district.code}-{be}-{sequence[be]:05d}",
                name=business_type + rng.choice(th.SHOP_NAME_WORDS),
                type=business_type,
                owner_name=owner_name,
                owner_id=owner_id,
                address=_address(rng, district),
                registered_on=registered_on,
                status=_registration_status(rng, registered_on),
            )
        )
    return _with_an_active_one(rows)


def _registration_status(rng: random.Random, registered_on: date) -> str:
    """Older businesses have had more time to close."""
    closed = 0.03 + 0.007 * (_LAST_YEAR - registered_on.year)
    r = rng.random()
    return "closed" if r < closed else "suspended" if r < closed + 0.06 else "active"


def _with_an_active_one(rows: list[Registration]) -> list[Registration]:
    """Every district has a trading business, whatever the draw: the newest stays active."""
    if rows and all(r.status != "active" for r in rows):
        rows[-1] = replace(rows[-1], status="active")
    return rows


def _licences(
    rng: random.Random, district: DistrictRow, registrations: Sequence[Registration]
) -> list[Row]:
    """About 40% of registrations hold a licence: food premises for food businesses, health
    hazard for the rest; most were renewed in 2025, the rest have lapsed."""
    rows: list[Row] = []
    for reg in registrations:
        if reg.status == "closed" or rng.random() >= 0.44:
            continue
        food = reg.type in th.FOOD_BUSINESS_TYPES
        issued = _licence_issued_on(rng, reg.registered_on)
        prefix = "FP" if food else "HH"
        rows.append(
            (
                f"{prefix}-{district.code}-{_be(issued.year)}-{len(rows) + 1:05d}",
                reg.no,
                "food_premises" if food else "health_hazard",
                issued,
                _plus_one_year(issued),
            )
        )
    return rows


def _licence_issued_on(rng: random.Random, registered_on: date) -> date:
    year = _LAST_YEAR if rng.random() < 0.7 else rng.randint(2021, _LAST_YEAR - 1)
    start = max(registered_on, date(year, 1, 1))
    end = date(year, 12, 31)
    return _random_date(rng, start, end) if start <= end else registered_on


def _permits(
    rng: random.Random,
    district: DistrictRow,
    count: int,
    people: People,
    local_owners: Sequence[OwnerRow],
) -> list[Row]:
    """Building permits of 2015-2025, numbered per Buddhist-era year in date order."""
    kinds = list(_BUILDINGS)
    weights = [_BUILDINGS[k][2][_TIER_INDEX[district.tier]] for k in kinds]
    dates = sorted(_random_date(rng, date(2015, 1, 1), date(2025, 12, 31)) for _ in range(count))
    sequence: dict[int, int] = {}
    rows: list[Row] = []
    for permitted_on in dates:
        be = _be(permitted_on.year)
        sequence[be] = sequence.get(be, 0) + 1
        kind = rng.choices(kinds, weights=weights)[0]
        (floor_lo, floor_hi), (area_lo, area_hi), _ = _BUILDINGS[kind]
        rows.append(
            (
                f"BP-{district.code}-{be}-{sequence[be]:04d}",
                *_applicant(rng, people, local_owners),
                _address(rng, district),
                kind,
                rng.randint(floor_lo, floor_hi),
                Decimal(f"{_log_uniform(rng, area_lo, area_hi):.2f}"),
                permitted_on,
            )
        )
    return rows


def _applicant(
    rng: random.Random, people: People, local_owners: Sequence[OwnerRow]
) -> tuple[str, str]:
    """The applicant's name and national (or juristic) id."""
    if local_owners and rng.random() < 0.45:  # builds on land the tax system knows
        owner = rng.choice(local_owners)
        return owner.name, owner.national_id
    if rng.random() < 0.6:
        return people.person_name(), people.person_id()
    return people.company()


def _population(rng: random.Random, district: DistrictRow) -> list[Row]:
    """2024 and 2025, by sex and age band; each year's cells sum to the district total."""
    base = th.DISTRICT_POPULATION[district.code] * rng.uniform(0.97, 1.03)
    growth = _POPULATION_GROWTH[district.tier] + rng.uniform(-0.004, 0.004)
    rows: list[Row] = []
    for year, total in ((2024, base), (2025, base * (1 + growth))):
        total = min(200_000, max(20_000, round(total)))
        cells = [
            (sex, band, share * rng.uniform(0.95, 1.05) * (f if sex == "female" else 1 - f))
            for band, share, f in zip(
                AGE_BANDS, _AGE_SHARES[district.tier], _FEMALE_SHARE, strict=True
            )
            for sex in ("male", "female")
        ]
        counts = _allocate(total, [w for _, _, w in cells], minimum=0)
        rows.extend((year, sex, band, n) for (sex, band, _), n in zip(cells, counts, strict=True))
    return rows


EVERYDAY_DISTRICT = "1039"


def with_everyday_person(
    rng: random.Random,
    registries: Sequence[DistrictRegistry],
    parcels: Sequence[ParcelRow],
    signboards: list[Row],
    years: Sequence[int],
) -> tuple[list[DistrictRegistry], list[Row]]:
    """One person every kind of record about people names: in ``EVERYDAY_DISTRICT`` they own
    land, trade there under a sign on that land, and applied for the district's first building
    permit. Random draws rarely join all three, and the data-subject report's tests need one
    person reachable by every path of the graph."""
    land: dict[str, ParcelRow] = {}
    for p in parcels:
        if p.district.code == EVERYDAY_DISTRICT and p.owner.kind == "person":
            land.setdefault(p.owner.national_id, p)
    registries = list(registries)
    for i, registry in enumerate(registries):
        if registry.district.code != EVERYDAY_DISTRICT or not registry.permits:
            continue
        business = next(
            (r for r in registry.registrations if r.status == "active" and r.owner_id in land),
            None,
        )
        if business is None:
            break
        parcel = land[business.owner_id]
        permit_no, _, _, *rest = registry.permits[0]
        first = (permit_no, parcel.owner.name, parcel.owner.national_id, *rest)
        registries[i] = replace(registry, permits=[first, *registry.permits[1:]])
        sign = _sign_rows(rng, len(signboards), business, parcel, years)
        return registries, [*signboards, *sign]
    return registries, signboards


def everyday_business(registries: Sequence[DistrictRegistry]) -> Registration | None:
    """The everyday person's first business (by number), which also sells to the BMA."""
    for registry in registries:
        if registry.district.code == EVERYDAY_DISTRICT and registry.permits:
            applicant = registry.permits[0][2]
            owned = [r for r in registry.registrations if r.owner_id == applicant]
            return min(owned, key=lambda r: r.no) if owned else None
    return None


# ---------------------------------------------------------------------------- Traffy Fondue

_TYPE_WEIGHTS: dict[str, float] = {
    "ถนน": 14,
    "ทางเท้า": 12,
    "น้ำท่วม": 9,
    "ขยะ": 10,
    "แสงสว่าง": 8,
    "ความปลอดภัย": 5,
    "จราจร": 6,
    "ท่อระบายน้ำ": 7,
    "ต้นไม้": 4,
    "เสียงรบกวน": 4,
    "สะพาน": 2,
    "คลอง": 2,
    "กีดขวาง": 6,
    "ป้าย": 2,
    "สัตว์จรจัด": 3,
    "PM2.5": 2,
    "ร้องเรียน": 5,
    "สายไฟ": 4,
    "ความสะอาด": 3,
    "คนจรจัด": 1.5,
    "ห้องน้ำ": 1,
    "ป้ายจราจร": 1.5,
}
WAITING, IN_PROGRESS, FINISHED, FORWARDED, IRRELEVANT = th.TRAFFY_STATES
# State weights by the ticket's age at the end of the data: young tickets are still open.
_STATE_BY_AGE: tuple[tuple[int, dict[str, float]], ...] = (
    (14, {WAITING: 20, IN_PROGRESS: 40, FINISHED: 25, FORWARDED: 10, IRRELEVANT: 5}),
    (120, {WAITING: 4, IN_PROGRESS: 18, FINISHED: 63, FORWARDED: 7, IRRELEVANT: 8}),
    (10_000, {WAITING: 1, IN_PROGRESS: 6, FINISHED: 79, FORWARDED: 4, IRRELEVANT: 10}),
)
# Hours from the report to the last activity (log-uniform), by state.
_ACTIVITY_HOURS = {
    WAITING: (0.01, 2),
    IN_PROGRESS: (1, 720),
    FINISHED: (2, 1_440),
    FORWARDED: (0.2, 72),
    IRRELEVANT: (0.2, 240),
}
_TRAFFY_FIRST_DAY = date(2022, 6, 2)  # local days; reports stay on or after 2022-06-01 UTC
_TRAFFY_LAST_DAY = date(2025, 12, 31)
_TRAFFY_END = datetime(2025, 12, 31, 16, 59, 59, 999_999, tzinfo=UTC)  # 23:59 in Bangkok
_LEGACY_UNTIL = datetime(2023, 7, 1, tzinfo=UTC)  # older tickets mostly carry the old names
_TICKET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
PHOTO_BASE = "https://traffy-standin.invalid/photos"


def make_tickets(
    rng: random.Random, districts: Sequence[DistrictRow], people: People, count: int
) -> tuple[list[Row], list[Row]]:
    """Ticket documents as the public API serves them, and one reporter contact each.

    The first tickets take every type and state in turn, so each occurs at any scale.
    """
    weights = _district_weights(rng, districts, {"inner": 1.5, "middle": 1.0, "outer": 0.7})
    counts = _allocate(count, weights, minimum=60)
    issued: set[str] = set()  # membership only
    tickets: list[Row] = []
    contacts: list[Row] = []
    for i, district in enumerate(_spread(rng, districts, counts)):
        doc = _ticket(rng, i, district, issued)
        tickets.append((doc["ticket_id"], orjson.dumps(doc).decode()))
        contacts.append((doc["ticket_id"], people.person_name(), _phone(rng)))
    return tickets, contacts


def _ticket(
    rng: random.Random, index: int, district: DistrictRow, issued: set[str]
) -> dict[str, Any]:
    reported = _reported_at(rng)
    types = _ticket_types(rng, index)
    state = th.TRAFFY_STATES[index] if index < len(th.TRAFFY_STATES) else _state(rng, reported)
    ticket_id = _ticket_id(rng, reported.astimezone(BANGKOK).year, issued)
    lat, lon = _scatter(rng, district)
    road, subdistrict = _road(rng, district), _subdistrict(rng, district)
    comment = rng.choice(th.TRAFFY_COMMENTS[types[0]]).format(road=road)
    finished = state == FINISHED
    doc = {
        "ticket_id": ticket_id,
        "type": "{" + ",".join(types) + "}",
        "organization": ",".join(_organizations(district, types)),
        "comment": comment + rng.choice(th.TRAFFY_COMMENT_ENDINGS),
        "photo": f"{PHOTO_BASE}/{ticket_id}.jpg",
        "after_photo": f"{PHOTO_BASE}/{ticket_id}-after.jpg" if finished else None,
        "coords": [f"{lon:.6f}", f"{lat:.6f}"],
        "address": f"{_house_number(rng)} ถนน{road} แขวง{subdistrict} {district.name_th} "
        "กรุงเทพมหานคร ประเทศไทย",
        "subdistrict": subdistrict,
        "district": _district_spelling(rng, district.short_name),
        "province": "กรุงเทพมหานคร",
        "timestamp": _traffy_time(reported),
        "state": state,
        "star": _star(rng) if finished else None,
        "count_reopen": _reopens(rng, state),
        "last_activity": _traffy_time(_last_activity(rng, reported, state)),
    }
    legacy = rng.random() < (0.55 if reported < _LEGACY_UNTIL else 0.12)
    return _legacy_shape(doc, types) if legacy else doc


def _organizations(district: DistrictRow, types: Sequence[str]) -> list[str]:
    """The district office, then the agencies the types are routed to, once each."""
    agencies = [a for t in types if (a := th.TRAFFY_AGENCIES[t])]
    return list(dict.fromkeys([district.name_th, *agencies]))


def _legacy_shape(doc: dict[str, Any], types: list[str]) -> dict[str, Any]:
    """The field names the platform used before: lists for types and agencies."""
    renamed = {
        "type": ("problem_type_fondue", types),
        "organization": ("org", doc["organization"].split(",")),
        "comment": ("description", doc["comment"]),
        "photo": ("photo_url", doc["photo"]),
    }
    return dict(renamed.get(k, (k, v)) for k, v in doc.items())


def _star(rng: random.Random) -> int | None:
    """About half of the finished tickets are rated, mostly well."""
    if rng.random() >= 0.55:
        return None
    return rng.choices((1, 2, 3, 4, 5), weights=(8, 5, 10, 25, 52))[0]


def _reported_at(rng: random.Random) -> datetime:
    """A report time in UTC; Bangkok residents report mostly by day."""
    day = _random_date(rng, _TRAFFY_FIRST_DAY, _TRAFFY_LAST_DAY)
    hour = min(23, int(rng.triangular(5, 24, 10)))
    local = datetime.combine(
        day,
        time(hour, rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999_999)),
        tzinfo=BANGKOK,
    )
    return local.astimezone(UTC)


def _ticket_types(rng: random.Random, index: int) -> list[str]:
    names = list(_TYPE_WEIGHTS)
    weights = list(_TYPE_WEIGHTS.values())
    first = (
        th.TRAFFY_TYPES[index]
        if index < len(th.TRAFFY_TYPES)
        else rng.choices(names, weights=weights)[0]
    )
    if rng.random() >= 0.15:
        return [first]
    second = rng.choices(names, weights=weights)[0]
    return [first] if second == first else [first, second]


def _state(rng: random.Random, reported: datetime) -> str:
    age_days = (_TRAFFY_END - reported).days
    weights = next(w for limit, w in _STATE_BY_AGE if age_days < limit)
    return _weighted(rng, weights)


def _ticket_id(rng: random.Random, year: int, issued: set[str]) -> str:
    while True:
        ticket_id = f"{year}-{''.join(rng.choices(_TICKET_ALPHABET, k=6))}"
        if ticket_id not in issued:
            issued.add(ticket_id)
            return ticket_id


def _district_spelling(rng: random.Random, short_name: str) -> str:
    """The short Thai name; about 2% carry the prefix or stray spaces, as upstream does."""
    if rng.random() >= 0.02:
        return short_name
    return rng.choice((f"เขต{short_name}", f"{short_name} ", f" {short_name}", f"เขต {short_name}"))


def _reopens(rng: random.Random, state: str) -> int:
    if state not in (FINISHED, IN_PROGRESS):
        return 0
    r = rng.random()
    return 0 if r < 0.93 else 1 if r < 0.985 else rng.randint(2, 3)


def _last_activity(rng: random.Random, reported: datetime, state: str) -> datetime:
    hours = _log_uniform(rng, *_ACTIVITY_HOURS[state])
    return min(reported + timedelta(hours=hours), max(reported, _TRAFFY_END))


def _traffy_time(moment: datetime) -> str:
    """The platform's timestamp text, e.g. "2024-01-05 10:22:31.123456+00"."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}+00"


def _phone(rng: random.Random) -> str:
    return f"08{rng.randint(0, 9)}-{rng.randint(0, 999):03d}-{rng.randint(0, 9999):04d}"
