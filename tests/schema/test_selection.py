"""Lists do the work their selection asks for: the filter's total is counted only when
`totalCount` is selected (through fragments and variables' @skip/@include too), and is right
when it is. Observed on the SQL each source receives: every pool has one connection, and an
asyncpg query logger on it sees every statement."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import UpstreamUnavailable
from connectors.pg import PgPool
from gateway.audit.trail import Caller
from gateway.execution.executor import Executor, Operation
from gateway.http.app import connectors_from
from policies.model import load_policy
from policies.principal import ANONYMOUS, Level, Principal
from schema import Connectors, graphql_schema
from schema.types import Assessment, Business, Owner, Parcel
from support import settings_for, sql


@dataclass
class Logged:
    """An executor over connectors whose SQL is logged, per source."""

    executor: Executor
    connectors: Connectors
    statements: dict[str, list[str]]
    audited: list[dict[str, Any]]

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, principal: Principal = ANONYMOUS
    ) -> dict[str, Any]:
        for log in self.statements.values():
            log.clear()
        outcome = await self.executor.run(Operation(query, variables), Caller(principal, "t", None))
        assert outcome.status == 200 and "errors" not in outcome.body, outcome.body
        data: dict[str, Any] = outcome.body["data"]
        return data

    def counted(self, source: str) -> int:
        """How many statements the source ran that count rows."""
        return sum("count(*)" in s for s in self.statements[source])


class _Recorder:
    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries

    async def record(self, entry: dict[str, Any]) -> int:
        self.entries.append(entry)
        return len(self.entries)


ASYNCPG_OWN = ("pg_advisory_unlock_all()", "typeinfo_tree", "setting('jit'", "set_config('jit'")


async def _logged(pool: PgPool, into: list[str]) -> None:
    """Log every statement of the pool's one connection (loggers outlive a release), but
    asyncpg's own: the reset at each release, and its type introspection."""
    assert pool.settings.max_size == 1
    await pool.start()
    assert pool._pool is not None

    def log(record: Any) -> None:
        if not any(own in record.query for own in ASYNCPG_OWN):
            into.append(record.query)

    async with pool._pool.acquire() as conn:
        conn.add_query_logger(log)


@pytest.fixture
async def logged(db, traffy_url) -> AsyncIterator[Logged]:
    connectors = connectors_from(settings_for(db, traffy_url, db_pool_max=1))
    await asyncio.gather(*(c.start() for c in connectors.all()))
    statements: dict[str, list[str]] = {"tax": [], "registry": [], "finance": []}
    await _logged(connectors.tax._pool, statements["tax"])
    await _logged(connectors.finance._pool, statements["finance"])
    (registry_pool,) = connectors.registry._pools.values()  # the 50 districts share it
    await _logged(registry_pool, statements["registry"])
    audited: list[dict[str, Any]] = []
    executor = Executor(graphql_schema(), load_policy(), _Recorder(audited), connectors)
    try:
        yield Logged(executor, connectors, statements, audited)
    finally:
        await asyncio.gather(*(c.stop() for c in connectors.all()))


@pytest.fixture(scope="module")
def totals(db) -> dict[str, int]:
    """The expected totals, counted in SQL (before any event loop runs)."""

    def n(url: str, query: str) -> int:
        count: int = sql(url, f"SELECT count(*) AS n FROM {query}")[0]["n"]
        return count

    return {
        "residential parcels": n(db.tax, "tax.parcels WHERE land_use = 'residential'"),
        "businesses": sum(
            n(db.registry, f"d{code}.commercial_registrations") for code in range(1001, 1051)
        ),
        "permits of 1039": n(db.registry, "d1039.building_permits"),
        "finance.processes": n(db.finance, "finance.processes"),
        "finance.budget_lines": n(db.finance, "finance.budget_lines"),
        "finance.projects": n(db.finance, "finance.projects"),
    }


async def test_a_list_without_total_count_counts_nothing(logged, db):
    data = await logged.data(
        "{ parcels(first: 3, filter: {landUse: RESIDENTIAL}) { edges { node { id } } "
        "pageInfo { hasNextPage } } }"
    )
    assert len(data["parcels"]["edges"]) == 3
    assert data["parcels"]["pageInfo"]["hasNextPage"] is True
    assert logged.statements["tax"] and logged.counted("tax") == 0


async def test_total_count_is_counted_when_asked_and_right(logged, totals):
    data = await logged.data(
        "{ parcels(first: 3, filter: {landUse: RESIDENTIAL}) { totalCount edges { node { id } } } }"
    )
    assert data["parcels"]["totalCount"] == totals["residential parcels"] > 3
    assert logged.counted("tax") == 1


async def test_total_count_through_a_fragment_and_an_alias(logged, totals):
    data = await logged.data(
        "query { p: parcels(first: 1, filter: {landUse: RESIDENTIAL}) { ...Counted } } "
        "fragment Counted on ParcelConnection { ... on ParcelConnection { n: totalCount } }"
    )
    assert data["p"]["n"] == totals["residential parcels"]
    assert logged.counted("tax") == 1


@pytest.mark.parametrize(("skip", "counts"), [(True, 0), (False, 1)])
async def test_a_skipped_total_count_is_not_counted(logged, skip, counts):
    data = await logged.data(
        "query ($skip: Boolean!) { parcels(first: 1) { totalCount @skip(if: $skip) "
        "edges { node { id } } } }",
        {"skip": skip},
    )
    assert ("totalCount" in data["parcels"]) is not skip
    assert logged.counted("tax") == counts


async def test_businesses_across_the_districts_count_only_when_asked(logged, totals):
    await logged.data("{ businesses(first: 5) { edges { node { registrationNo } } } }")
    assert len(logged.statements["registry"]) == 50 and logged.counted("registry") == 0
    data = await logged.data("{ businesses(first: 5) { totalCount } }")
    assert data["businesses"]["totalCount"] == totals["businesses"]
    assert logged.counted("registry") == 50


async def test_building_permits_count_only_when_asked(logged, totals):
    query = '{ district(code: "1039") { buildingPermits(first: 2) { %s edges { cursor } } } }'
    await logged.data(query % "")
    assert logged.statements["registry"] and logged.counted("registry") == 0
    data = await logged.data(query % "totalCount")
    assert data["district"]["buildingPermits"]["totalCount"] == totals["permits of 1039"]
    assert logged.counted("registry") == 1


@pytest.mark.parametrize(
    ("field", "table"),
    [
        ("procurementProcesses", "finance.processes"),
        ("budgetLines", "finance.budget_lines"),
        ("infrastructureProjects", "finance.projects"),
    ],
)
async def test_finance_lists_count_only_when_asked(logged, totals, field, table):
    await logged.data(f"{{ {field}(first: 2) {{ edges {{ cursor }} }} }}")
    assert logged.statements["finance"] and logged.counted("finance") == 0
    data = await logged.data(f"{{ {field}(first: 2) {{ totalCount }} }}")
    assert data[field]["totalCount"] == totals[table]
    assert logged.counted("finance") == 1


# ---------------------------------------------------------------- related records of a page

FINANCE_OFFICER = Principal(
    "agency",
    "officer",
    "bma-finance",
    Level.CONFIDENTIAL,
    frozenset({"tax:read", "tax:personal"}),
    purpose="tax-collection",
)
RELATED = (
    "{ parcels(first: 40) { edges { node { id appraisedValue owner { id name nationalId } "
    "assessments(year: 2025) { taxYear taxDue } signboards { id } } } } }"
)


@pytest.fixture(scope="module")
def expected_related(db) -> dict[str, Any]:
    parcels = sql(db.tax, "SELECT id, owner_id FROM tax.parcels ORDER BY id LIMIT 40")
    ids = [p["id"] for p in parcels]
    owners = {
        o["id"]: o
        for o in sql(db.tax, "SELECT id, name, national_id FROM tax.owners")
        if o["id"] in {p["owner_id"] for p in parcels}
    }
    assessed = sql(
        db.tax,
        "SELECT parcel_id, tax_due FROM tax.assessments "
        "WHERE tax_year = 2025 AND parcel_id = ANY($1::bigint[])",
        ids,
    )
    signs = sql(
        db.tax, "SELECT id, parcel_id FROM tax.signboards WHERE parcel_id = ANY($1::bigint[])", ids
    )
    return {
        "parcels": parcels,
        "owners": owners,
        "assessed": {a["parcel_id"]: a["tax_due"] for a in assessed},
        "signs": {i: sorted(s["id"] for s in signs if s["parcel_id"] == i) for i in ids},
    }


@pytest.fixture(scope="module")
def expected_businesses(db) -> dict[str, Any]:
    businesses = sql(
        db.registry,
        "SELECT registration_no FROM d1039.commercial_registrations ORDER BY registration_no "
        "LIMIT 30",
    )
    numbers = [b["registration_no"] for b in businesses]
    licences = sql(
        db.registry,
        "SELECT registration_no, licence_no FROM d1039.licences "
        "WHERE registration_no = ANY($1::text[]) ORDER BY issued_on, licence_no",
        numbers,
    )
    signs = sql(
        db.tax,
        "SELECT business_registration_no AS n, id FROM tax.signboards "
        "WHERE business_registration_no = ANY($1::text[]) ORDER BY id",
        numbers,
    )
    return {
        n: {
            "licences": [x["licence_no"] for x in licences if x["registration_no"] == n],
            "signs": [str(x["id"]) for x in signs if x["n"] == n],
        }
        for n in numbers
    }


async def test_a_page_of_businesses_loads_licences_and_signboards_once(logged, expected_businesses):
    data = await logged.data(
        '{ businesses(first: 30, filter: {district: "1039"}) { edges { node { registrationNo '
        "licences { licenceNo } signboards { id } } } } }"
    )
    found = {
        e["node"]["registrationNo"]: {
            "licences": [x["licenceNo"] for x in e["node"]["licences"]],
            "signs": [x["id"] for x in e["node"]["signboards"]],
        }
        for e in data["businesses"]["edges"]
    }
    assert found == expected_businesses
    assert any(v["licences"] for v in found.values()) and any(v["signs"] for v in found.values())
    assert len(logged.statements["registry"]) == 2  # the page, its licences
    assert sum("tax.signboards" in s for s in logged.statements["tax"]) == 1


async def test_a_page_loads_its_parcels_related_records_in_one_call_each(logged, expected_related):
    data = await logged.data(RELATED, principal=FINANCE_OFFICER)
    nodes = [e["node"] for e in data["parcels"]["edges"]]
    statements = logged.statements["tax"]
    assert len(statements) == 4  # the page, its owners, its assessments, its signboards
    assert sum("FROM tax.owners" in s for s in statements) == 1
    assert [int(n["id"]) for n in nodes] == [p["id"] for p in expected_related["parcels"]]
    for node, parcel in zip(nodes, expected_related["parcels"], strict=True):
        owner = expected_related["owners"][parcel["owner_id"]]
        assert node["owner"] == {
            "id": str(owner["id"]),
            "name": owner["name"],
            "nationalId": owner["national_id"],
        }
        assessed = expected_related["assessed"].get(parcel["id"])
        assert [a["taxDue"] for a in node["assessments"]] == (
            [] if assessed is None else [str(assessed)]
        )
        assert (
            sorted(int(s["id"]) for s in node["signboards"])
            == expected_related["signs"][parcel["id"]]
        )
    # Every restricted value read is in the audit record, once per parcel and owner.
    (entry,) = logged.audited
    assert entry["records"]  # the record names the parcels and owners read
    assert {f"owner:{o}" for o in expected_related["owners"]} <= set(entry["subjects"])


async def test_the_page_and_each_row_read_the_same_owner(logged):
    """The page's owners against the DataLoader of a single parcel, field by field."""
    page = await logged.data(RELATED, principal=FINANCE_OFFICER)
    first = page["parcels"]["edges"][0]["node"]
    one = await logged.data(
        f'{{ parcel(id: "{first["id"]}") {{ id appraisedValue owner {{ id name nationalId }} '
        "assessments(year: 2025) { taxYear taxDue } signboards { id } } }",
        principal=FINANCE_OFFICER,
    )
    assert one["parcel"] == first


async def test_a_refused_owner_is_not_read_for_the_page(logged):
    """Anonymous may not read owners: the page does not load them either."""
    outcome = await logged.executor.run(
        Operation("{ parcels(first: 5) { edges { node { id owner { kind } } } } }"),
        Caller(ANONYMOUS, "t", None),
    )
    assert [e["extensions"]["code"] for e in outcome.body["errors"]] == ["FORBIDDEN"] * 5
    assert not any("tax.owners" in s for s in logged.statements["tax"])


async def test_a_failed_owner_load_fails_each_owner_not_the_page(logged):
    def down(ids: Any) -> Any:
        raise UpstreamUnavailable("tax", "connection refused")

    logged.connectors.tax.owners_by_ids = down  # type: ignore[method-assign]
    outcome = await logged.executor.run(
        Operation("{ parcels(first: 3) { edges { node { id owner { kind } } } } }"),
        Caller(FINANCE_OFFICER, "t", None),
    )
    nodes = [e["node"] for e in outcome.body["data"]["parcels"]["edges"]]
    assert [n["owner"] for n in nodes] == [None] * 3 and all(n["id"] for n in nodes)
    assert [e["path"] for e in outcome.body["errors"]] == [
        ["parcels", "edges", i, "node", "owner"] for i in range(3)
    ]
    assert {e["extensions"]["code"] for e in outcome.body["errors"]} == {"UPSTREAM_UNAVAILABLE"}


PARCEL_ROW = {
    "id": 7,
    "title_deed_type": "chanote",
    "title_deed_number": "123",
    "district_code": "1001",
    "land_use": "residential",
    "area_sqm": Decimal("120.5"),
    "appraised_value": Decimal("3500000"),
    "lat": 13.75,
    "lon": 100.5,
    "owner_id": 5,
}


def test_a_parcel_of_a_loaded_page_answers_its_related_records_at_once():
    owner = {"id": 5, "kind": "person", "name": "สมชาย ใจดี", "national_id": "1101700000011"}
    assessed = {"parcel_id": 7, "tax_year": 2025, "base": Decimal(1), "exemption": Decimal(0)}
    assessed |= {"rate": Decimal("0.02"), "tax_due": Decimal(2), "status": "paid", "paid_at": None}
    parcel = Parcel.of(
        PARCEL_ROW, {"owner": {5: owner}, "assessments": {7: [assessed]}, "signboards": {}}
    )
    info: Any = None  # not read: nothing is loaded
    assert parcel.owner(info) == Owner.of(owner)
    assert parcel.assessments(info) == [Assessment.of(assessed, 5)]
    assert parcel.assessments(info, year=2024) == []
    assert parcel.signboards(info) == []


def test_a_parcel_on_its_own_loads_its_related_records_later():
    parcel = Parcel.of(PARCEL_ROW)
    for pending in (parcel.owner(None), parcel.assessments(None), parcel.signboards(None)):  # type: ignore[arg-type]
        assert inspect.iscoroutine(pending)
        pending.close()


def test_a_district_that_failed_fails_its_businesses_licences():
    row = {
        "registration_no": "1039-2566-00001",
        "business_name": "ร้านทดสอบ",
        "business_type": "ร้านอาหาร",
        "address": "1 ถนนทดสอบ",
        "registered_on": date(2023, 1, 5),
        "status": "active",
        "owner_name": "สมชาย ใจดี",
        "owner_id": "1101700000011",
        "district_code": "1039",
    }
    failure = UpstreamUnavailable("registry:1039", "connection refused")
    business = Business.of(row, {"licences": {row["registration_no"]: failure}, "signboards": {}})
    with pytest.raises(UpstreamUnavailable):
        business.licences(None)  # type: ignore[arg-type]
    assert business.signboards(None) == []  # type: ignore[arg-type]


def test_a_failed_load_of_the_page_fails_each_parcels_field():
    failure = UpstreamUnavailable("tax", "connection refused")
    parcel = Parcel.of(PARCEL_ROW, {"owner": failure})
    with pytest.raises(UpstreamUnavailable):
        parcel.owner(None)  # type: ignore[arg-type]
