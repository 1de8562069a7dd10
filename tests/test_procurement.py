"""The finance and procurement graph: figures reconciled against SQL, the joins to the
registries batched, and each integrity indicator on seeded cases that trigger it and cases
that must not."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connectors.districts import all_districts
from connectors.finance import (
    JUST_UNDER_SHARE,
    RECENT_REGISTRATION_DAYS,
    SPLIT_WINDOW_DAYS,
    THRESHOLDS,
)
from gateway.demo.embedded import DatabaseUrls
from support import sql

SPENDING = """{ districts { code spending(year: 2568) { fiscalYear approved adjusted disbursed
    contracted contractCount byMethod { method contracts value } } } }"""

PROCESS = """query($id: ID!) { procurementProcess(id: $id) { id ocid fiscalYear method status
    budget bids { offeredPrice status supplier { id } } award { value }
    contract { originalValue value } integrity { singleBidder awardEqualsBudget
    justUnderThreshold splitThreshold supplierRegisteredDaysBefore } } }"""


def _process(gateway: Any, process_id: str) -> dict[str, Any]:
    data: dict[str, Any] = gateway.query(PROCESS, {"id": process_id})["procurementProcess"]
    return data


# ---------------------------------------------------------------------------- figures


def test_district_spending_reconciles_with_its_contracts_and_budget(gateway, db: DatabaseUrls):
    gateway.reset_counters()
    districts = gateway.query(SPENDING)["districts"]
    assert dict(gateway.connectors.finance.counter.calls) == {"finance": 1}
    contracts = sql(
        db.finance,
        """SELECT u.district_code AS code, p.method, count(*) AS n, sum(c.value) AS value
           FROM finance.contracts c JOIN finance.processes p ON p.id = c.process_id
           JOIN finance.units u ON u.code = p.buyer_code
           WHERE p.fiscal_year = 2568 AND u.district_code IS NOT NULL GROUP BY 1, 2""",
    )
    budget = {
        r["code"]: r
        for r in sql(
            db.finance,
            """SELECT u.district_code AS code, sum(approved) AS approved,
                      sum(adjusted) AS adjusted, sum(disbursed) AS disbursed
               FROM finance.budget_lines bl JOIN finance.units u ON u.code = bl.unit_code
               WHERE bl.fiscal_year = 2568 AND u.district_code IS NOT NULL GROUP BY 1""",
        )
    }
    by_district: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in contracts:
        by_district[r["code"]].append(r)
    assert len(districts) == 50
    for d in districts:
        s = d["spending"]
        mine = by_district[d["code"]]
        assert Decimal(s["contracted"]) == sum((r["value"] for r in mine), Decimal(0))
        assert s["contractCount"] == sum(r["n"] for r in mine)
        assert {m["method"]: m["contracts"] for m in s["byMethod"]} == {
            r["method"].upper(): r["n"] for r in mine
        }
        assert Decimal(s["approved"]) == budget[d["code"]]["approved"]
        assert Decimal(s["disbursed"]) == budget[d["code"]]["disbursed"]
        assert Decimal(s["disbursed"]) <= Decimal(s["approved"]) + Decimal(s["adjusted"])
    assert sum(Decimal(d["spending"]["contracted"]) for d in districts) > 0


def test_budget_lines_never_disburse_more_than_approved_plus_adjusted(gateway, db):
    lines, after = [], None
    while True:
        page = gateway.query(
            """query($after: String) { budgetLines(filter: {fiscalYear: 2567}, first: 1000,
                 after: $after) { totalCount edges { node { id approved adjusted disbursed
                 unit { code kind } economicClass } } pageInfo { hasNextPage endCursor } } }""",
            {"after": after},
        )["budgetLines"]
        lines += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    [count] = sql(
        db.finance, "SELECT count(*) AS n FROM finance.budget_lines WHERE fiscal_year = 2567"
    )
    assert len(lines) == page["totalCount"] == count["n"]
    for line in lines:
        assert Decimal(line["disbursed"]) <= Decimal(line["approved"]) + Decimal(line["adjusted"])


def test_a_process_reads_as_its_rows(gateway, db):
    [p] = sql(
        db.finance,
        """SELECT p.id, p.budget, c.value FROM finance.processes p
           JOIN finance.contracts c ON c.process_id = p.id
           WHERE p.method = 'e_bidding' ORDER BY p.id LIMIT 1""",
    )
    bids = sql(
        db.finance,
        "SELECT supplier_id, offered_price FROM finance.bids WHERE process_id = $1",
        p["id"],
    )
    data = _process(gateway, p["id"])
    assert data["ocid"] == f"ocds-bq4ldt-{p['id']}"
    assert Decimal(data["contract"]["value"]) == p["value"]
    assert sorted(
        (b["supplier"]["id"], Decimal(b["offeredPrice"])) for b in data["bids"]
    ) == sorted((str(b["supplier_id"]), b["offered_price"]) for b in bids)


def test_process_filters_and_pages(gateway, db):
    [n] = sql(
        db.finance,
        """SELECT count(*) AS n FROM finance.processes p JOIN finance.units u ON u.code = p.buyer_code
           WHERE u.district_code = '1039' AND p.method = 'specific' AND p.fiscal_year = 2566""",
    )
    seen, after = [], None
    while True:
        page = gateway.query(
            """query($after: String) { procurementProcesses(filter: {district: "1039",
                 method: SPECIFIC, fiscalYear: 2566}, first: 7, after: $after) { totalCount
                 edges { node { id buyer { code district { code } } method fiscalYear } }
                 pageInfo { hasNextPage endCursor } } }""",
            {"after": after},
        )["procurementProcesses"]
        seen += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert page["totalCount"] == n["n"] == len(seen) == len({s["id"] for s in seen}) > 0
    assert {(s["buyer"]["district"]["code"], s["method"], s["fiscalYear"]) for s in seen} == {
        ("1039", "SPECIFIC", 2566)
    }


@pytest.mark.parametrize(
    ("query", "argument"),
    [
        ('{ district(code: "1039") { spending(year: 2025) { approved } } }', "year"),
        ("{ procurementProcesses(filter: {fiscalYear: 68}) { totalCount } }", "filter.fiscalYear"),
        ('{ budgetLines(filter: {unit: "S01; --"}) { totalCount } }', "filter.unit"),
        ('{ procurementProcess(id: "abc") { id } }', "id"),
    ],
)
def test_bad_finance_arguments_are_named(gateway, query: str, argument: str):
    body = gateway.post(query).json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["argument"] == argument


def test_infrastructure_projects_carry_the_cost_items(gateway, db):
    [n] = sql(db.finance, "SELECT count(*) AS n FROM finance.projects")
    assert n["n"] >= 150
    gateway.reset_counters()
    page = gateway.query(
        """{ infrastructureProjects(first: 50) { totalCount edges { node { id purpose sector
             location { lat lon } district { code } budget progressPct status
             process { ocid contract { supplier { name } value originalValue endsOn
             originalEndsOn } } } } } }"""
    )["infrastructureProjects"]
    assert page["totalCount"] == n["n"]
    assert gateway.connectors.finance.counter.calls["finance"] == 2  # the page, its processes
    for edge in page["edges"]:
        node = edge["node"]
        assert node["process"]["contract"]["supplier"]["name"]
        assert Decimal(node["process"]["contract"]["value"]) <= Decimal(node["budget"]) * Decimal(
            "1.1"
        )


# ---------------------------------------------------------------------------- the join


def test_business_contracts_join_is_one_call_per_connector_per_level(gateway, db):
    suppliers = sql(
        db.finance,
        """SELECT s.registration_no AS no, count(*) AS n FROM finance.suppliers s
           JOIN finance.contracts c ON c.supplier_id = s.id
           WHERE s.registration_no LIKE '1039-%' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1""",
    )
    [top] = suppliers
    gateway.reset_counters()
    data = gateway.query(
        """query($no: String!) { business(registrationNo: $no) { registrationNo
             contracts { id value process { ocid buyer { code } } supplier { registrationNo
             business { registrationNo } } integrity { supplierRegisteredDaysBefore } } } }""",
        {"no": top["no"]},
    )["business"]
    assert len(data["contracts"]) == top["n"]
    assert {c["supplier"]["registrationNo"] for c in data["contracts"]} == {top["no"]}
    assert dict(gateway.connectors.finance.counter.calls) == {"finance": 1}
    # The business itself; every contract's supplier is that business, which the request's
    # loader already holds (and the registration dates of the indicator come from it too).
    assert dict(gateway.connectors.registry.counter.calls) == {"registry:1039": 1}


def test_contracts_of_many_businesses_are_batched(gateway):
    gateway.reset_counters()
    data = gateway.query(
        """{ district(code: "1039") { businesses(first: 200) { edges { node { registrationNo
             contracts { value } } } } } }"""
    )
    edges = data["district"]["businesses"]["edges"]
    assert any(e["node"]["contracts"] for e in edges)
    assert dict(gateway.connectors.finance.counter.calls) == {"finance": 1}


# ---------------------------------------------------------------------------- indicators


def _processes(db: DatabaseUrls) -> list[dict[str, Any]]:
    return sql(
        db.finance,
        """SELECT p.id, p.method, p.budget, p.buyer_code, p.announced_on, a.value AS award,
                  a.awarded_on, a.supplier_id, c.original_value AS contract, s.registration_no,
                  (SELECT count(*) FROM finance.bids b WHERE b.process_id = p.id
                    AND b.status = 'valid') AS valid_bids
           FROM finance.processes p
           LEFT JOIN finance.awards a ON a.process_id = p.id
           LEFT JOIN finance.contracts c ON c.process_id = p.id
           LEFT JOIN finance.suppliers s ON s.id = a.supplier_id
           ORDER BY p.id""",
    )


@pytest.fixture(scope="module")
def processes(db: DatabaseUrls) -> list[dict[str, Any]]:
    return _processes(db)


def _cases(rows: list[dict[str, Any]], flagged: Any, unflagged: Any) -> tuple[str, str]:
    hit = next(r["id"] for r in rows if flagged(r))
    miss = next(r["id"] for r in rows if unflagged(r))
    return hit, miss


def test_single_bidder(gateway, processes):
    competitive = [r for r in processes if r["award"] is not None]
    hit, miss = _cases(
        competitive,
        lambda r: r["method"] == "e_bidding" and r["valid_bids"] == 1,
        lambda r: r["method"] == "e_bidding" and r["valid_bids"] >= 2,
    )
    specific = next(r["id"] for r in competitive if r["method"] == "specific")
    assert _process(gateway, hit)["integrity"]["singleBidder"] is True
    assert _process(gateway, miss)["integrity"]["singleBidder"] is False
    # One offer is what the specific method asks for: not a red flag.
    assert _process(gateway, specific)["integrity"]["singleBidder"] is False


def test_award_equal_to_the_budget(gateway, processes):
    hit, miss = _cases(
        processes,
        lambda r: r["award"] is not None and r["award"] == r["budget"],
        lambda r: r["award"] is not None and r["award"] < r["budget"],
    )
    assert _process(gateway, hit)["integrity"]["awardEqualsBudget"] is True
    assert _process(gateway, miss)["integrity"]["awardEqualsBudget"] is False


def test_contract_value_just_under_a_threshold(gateway, processes):
    signed = [r for r in processes if r["contract"] is not None]
    ceiling = Decimal(500_000)
    under = [r for r in signed if ceiling * JUST_UNDER_SHARE <= r["contract"] <= ceiling]
    below_margin = [
        r for r in signed if ceiling * Decimal("0.90") <= r["contract"] < ceiling * JUST_UNDER_SHARE
    ]
    over = [r for r in signed if ceiling < r["contract"] <= ceiling * Decimal("1.05")]
    assert under and below_margin and over
    assert Decimal(_process(gateway, under[0]["id"])["integrity"]["justUnderThreshold"]) == ceiling
    for r in (below_margin[0], over[0]):
        assert _process(gateway, r["id"])["integrity"]["justUnderThreshold"] is None


def _split(rows: list[dict[str, Any]], r: dict[str, Any]) -> bool:
    """The splitting indicator, computed here from the rows: any 30-day window holding this
    award in which two or more awards of its buyer to its supplier, each under a threshold,
    cross it together."""
    pair = [
        x
        for x in rows
        if x["award"] is not None
        and x["buyer_code"] == r["buyer_code"]
        and x["supplier_id"] == r["supplier_id"]
    ]
    for threshold in THRESHOLDS:
        small = [x for x in pair if x["award"] <= threshold]
        for start in small:
            end = start["awarded_on"] + timedelta(SPLIT_WINDOW_DAYS)
            if not start["awarded_on"] <= r["awarded_on"] <= end:
                continue
            window = [x["award"] for x in small if start["awarded_on"] <= x["awarded_on"] <= end]
            if len(window) >= 2 and sum(window) > threshold:
                return True
    return False


def test_splitting(gateway, processes):
    awarded = [r for r in processes if r["award"] is not None and r["method"] == "specific"]
    by_pair: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in awarded:
        by_pair[(r["buyer_code"], r["supplier_id"])].append(r)
    repeated = [r for rows in by_pair.values() if len(rows) >= 2 for r in rows]
    flagged = [r for r in repeated if _split(processes, r)]
    clean = [r for r in repeated if not _split(processes, r)]
    assert len(flagged) >= 20 and clean
    # Near misses: the same pair, over the ceiling together but further apart than the window.
    apart = next(
        r
        for r in clean
        if any(
            x is not r and abs((x["awarded_on"] - r["awarded_on"]).days) > SPLIT_WINDOW_DAYS
            for x in by_pair[(r["buyer_code"], r["supplier_id"])]
        )
    )
    for r in (*flagged[:5], *clean[:5], apart):
        got = _process(gateway, r["id"])["integrity"]["splitThreshold"]
        assert (got is not None) == (r in flagged), r["id"]


def test_supplier_registered_shortly_before_the_announcement(gateway, processes, db):
    registered: dict[str, date] = {}
    for code in {r["registration_no"][:4] for r in processes if r["registration_no"]}:
        for b in sql(
            db.registry,
            f"SELECT registration_no, registered_on FROM d{code}.commercial_registrations",
        ):
            registered[b["registration_no"]] = b["registered_on"]
    with_registration = [r for r in processes if r["registration_no"]]

    def days(r: dict[str, Any]) -> int:
        return (r["announced_on"] - registered[r["registration_no"]]).days

    recent = [r for r in with_registration if days(r) < RECENT_REGISTRATION_DAYS]
    older = [r for r in with_registration if RECENT_REGISTRATION_DAYS <= days(r) < 400]
    assert len(recent) >= 20 and older
    assert _process(gateway, recent[0]["id"])["integrity"]["supplierRegisteredDaysBefore"] == days(
        recent[0]
    )
    assert _process(gateway, older[0]["id"])["integrity"]["supplierRegisteredDaysBefore"] is None
    company = next(r for r in processes if r["award"] is not None and not r["registration_no"])
    assert _process(gateway, company["id"])["integrity"]["supplierRegisteredDaysBefore"] is None


def test_the_whole_city_spending_is_one_call_even_with_two_years(gateway):
    gateway.reset_counters()
    data = gateway.query(
        "{ districts { a: spending(year: 2567) { fiscalYear } b: spending(year: 2568) { fiscalYear } } }"
    )
    assert gateway.connectors.finance.counter.calls["finance"] == 1
    assert {d["a"]["fiscalYear"] for d in data["districts"]} == {2567}
    assert len(data["districts"]) == len(all_districts())
