"""The finance and procurement source: the seed's shape, checked in SQL, and the connector."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pgbouncer import DatabaseRoute

from connectors.base import InvalidCursor, PageRequest
from connectors.finance import FinanceConnector, ProcessQuery, process_cursor
from connectors.pg import PoolSettings
from gateway.demo.embedded import DatabaseUrls
from support import run, sql


def test_fiscal_years_run_october_to_september_under_buddhist_era_labels(db: DatabaseUrls):
    years = sql(db.finance, "SELECT * FROM finance.fiscal_years ORDER BY year")
    assert [y["year"] for y in years] == [2566, 2567, 2568, 2569]
    for y in years:
        assert (y["starts_on"].year + 544, y["starts_on"].month, y["starts_on"].day) == (
            y["year"],
            10,
            1,
        )
        assert (y["ends_on"].year + 543, y["ends_on"].month, y["ends_on"].day) == (y["year"], 9, 30)


def test_every_unit_and_district_office_has_budget_lines_in_every_year(db: DatabaseUrls):
    [counts] = sql(
        db.finance,
        """SELECT count(*) FILTER (WHERE kind = 'district_office') AS offices,
                  count(*) FILTER (WHERE kind = 'department') AS departments FROM finance.units""",
    )
    assert counts["offices"] == 50 and counts["departments"] >= 10
    missing = sql(
        db.finance,
        """SELECT u.code, y.year FROM finance.units u CROSS JOIN finance.fiscal_years y
           WHERE NOT EXISTS (SELECT 1 FROM finance.budget_lines bl
                             WHERE bl.unit_code = u.code AND bl.fiscal_year = y.year)""",
    )
    assert missing == []
    classes = sql(db.finance, "SELECT DISTINCT economic_class AS c FROM finance.budget_lines")
    assert {c["c"] for c in classes} == {
        "personnel",
        "operating",
        "investment",
        "subsidy",
        "other",
        "central",
    }


def test_disbursed_never_exceeds_approved_plus_adjusted(db: DatabaseUrls):
    over = sql(
        db.finance,
        "SELECT id FROM finance.budget_lines WHERE disbursed > approved + adjusted",
    )
    assert over == []


def test_procurement_volume_and_public_works(db: DatabaseUrls):
    [n] = sql(
        db.finance,
        """SELECT count(*) AS processes,
                  (SELECT count(*) FROM finance.projects) AS projects,
                  count(DISTINCT fiscal_year) AS years FROM finance.processes""",
    )
    assert n["processes"] >= 4_000 and n["projects"] >= 150 and n["years"] == 4


def test_amounts_stay_within_the_budget_they_spend(db: DatabaseUrls):
    over = sql(
        db.finance,
        """SELECT bl.id FROM finance.budget_lines bl
           JOIN finance.processes p ON p.budget_line_id = bl.id
           LEFT JOIN finance.contracts c ON c.process_id = p.id
           GROUP BY bl.id, bl.approved, bl.adjusted
           HAVING sum(p.budget) FILTER (WHERE p.status <> 'cancelled') > bl.approved
               OR coalesce(sum(c.value), 0) > bl.approved + bl.adjusted""",
    )
    assert over == []
    unpaid = sql(
        db.finance,
        """SELECT c.id FROM finance.contracts c JOIN finance.payments y ON y.contract_id = c.id
           GROUP BY c.id, c.value HAVING sum(y.amount) > c.value""",
    )
    assert unpaid == []
    awards = sql(
        db.finance,
        """SELECT a.id FROM finance.awards a JOIN finance.processes p ON p.id = a.process_id
           WHERE a.value > p.budget""",
    )
    assert awards == []


def test_suppliers_include_registry_businesses_companies_and_persons(db: DatabaseUrls):
    suppliers = sql(
        db.finance,
        "SELECT kind, registration_no, tax_id FROM finance.suppliers ORDER BY id",
    )
    registered = [s for s in suppliers if s["registration_no"]]
    assert len(registered) > 100
    assert any(s["kind"] == "juristic" for s in suppliers)
    assert any(s["kind"] == "person" and not s["registration_no"] for s in suppliers)
    no = registered[0]["registration_no"]
    [business] = sql(
        db.registry,
        f"SELECT owner_id FROM d{no[:4]}.commercial_registrations WHERE registration_no = $1",
        no,
    )
    assert business["owner_id"] == registered[0]["tax_id"]


def test_a_page_of_processes_comes_whole_in_one_call(db: DatabaseUrls, route: DatabaseRoute):
    # Straight to PostgreSQL, and behind PgBouncer in transaction mode.
    finance = FinanceConnector(route.url(db.finance), PoolSettings(pgbouncer=route.mode))

    async def page() -> tuple[object, int]:
        await finance.start()
        try:
            found = await finance.search_processes(
                ProcessQuery(fiscal_years=(2567,), statuses=("contracted",)), PageRequest(5)
            )
            return found, finance.counter.calls["finance"]
        finally:
            await finance.stop()

    found, calls = run(page())
    assert calls == 1
    [total] = sql(
        db.finance,
        "SELECT count(*) AS n FROM finance.processes WHERE fiscal_year = 2567 AND status = 'contracted'",
    )
    assert found.total == total["n"] and found.has_next and len(found.rows) == 5
    first = found.rows[0]
    assert first["contract"]["value"] > 0 and isinstance(first["contract"]["value"], Decimal)
    assert first["bids"] and first["award"]["supplier"]["id"] == first["contract"]["supplier"]["id"]


def test_a_forged_process_cursor_is_refused(db: DatabaseUrls):
    from connectors.finance import process_position

    with pytest.raises(InvalidCursor):
        process_position(process_cursor("1' OR 1=1"))
    assert process_position(process_cursor("66019000123")) == "66019000123"
