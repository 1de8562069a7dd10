"""Revenue statistics by district, tax year and month: every figure checked against SQL over
the tax system's rows, and the months reconciled with `District.taxRevenue`."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest

from connectors.districts import all_districts
from support import sql

YEARS = (2023, 2024, 2025)
FIGURES = """year taxType estimate collected collectedUndated outstanding taxpayerCount
    shareOfEstimate months { month collected taxpayerCount shareOfEstimate
    cumulativeCollected cumulativeShareOfEstimate }"""

# The rows each tax's statistics count, as (district, year, amount, status, month, payer).
ITEMS = {
    "LAND_BUILDING": """SELECT p.district_code AS code, a.tax_year AS year, a.tax_due AS amount,
        a.status, to_char(a.paid_at AT TIME ZONE 'Asia/Bangkok', 'YYYY-MM') AS month,
        p.owner_id::text AS payer
        FROM tax.assessments a JOIN tax.parcels p ON p.id = a.parcel_id""",
    "SIGNBOARD": """SELECT district_code AS code, tax_year AS year, tax_due AS amount, status,
        to_char(paid_at AT TIME ZONE 'Asia/Bangkok', 'YYYY-MM') AS month,
        business_registration_no AS payer FROM tax.signboards""",
}


def _expected(db, tax_type: str) -> dict:
    """Per (district, year): estimate, collected, outstanding, payers, and per month the
    amount and the payers, summed in Python from the rows."""
    out: dict = defaultdict(
        lambda: {
            "estimate": Decimal(0),
            "collected": Decimal(0),
            "outstanding": Decimal(0),
            "payers": set(),
            "months": defaultdict(lambda: [Decimal(0), set()]),
        }
    )
    for r in sql(db.tax, ITEMS[tax_type]):
        e = out[(r["code"], r["year"])]
        e["estimate"] += r["amount"]
        if r["status"] == "paid":
            e["collected"] += r["amount"]
            e["payers"].add(r["payer"])
            e["months"][r["month"]][0] += r["amount"]
            e["months"][r["month"]][1].add(r["payer"])
        elif r["status"] in ("unpaid", "overdue"):
            e["outstanding"] += r["amount"]
    return out


def _all_years(tax_type: str) -> str:
    parts = [f"y{y}: revenue(year: {y}, taxType: {tax_type}) {{ {FIGURES} }}" for y in YEARS]
    parts += [f"t{y}: taxRevenue(year: {y}) {{ collected assessed outstanding }}" for y in YEARS]
    return "{ districts { code " + " ".join(parts) + " } }"


@pytest.mark.parametrize("tax_type", ["LAND_BUILDING", "SIGNBOARD"])
def test_every_district_and_year_matches_the_rows(gateway, db, tax_type):
    districts = gateway.query(_all_years(tax_type))["districts"]
    expected = _expected(db, tax_type)
    assert len(districts) == 50
    for d in districts:
        for year in YEARS:
            [stats] = d[f"y{year}"]
            e = expected[(d["code"], year)]
            assert (stats["year"], stats["taxType"]) == (year, tax_type)
            assert Decimal(stats["estimate"]) == e["estimate"] > 0
            assert Decimal(stats["collected"]) == e["collected"] > 0
            assert Decimal(stats["outstanding"]) == e["outstanding"]
            assert Decimal(stats["collectedUndated"]) == 0
            assert stats["taxpayerCount"] == len(e["payers"]) > 0
            assert stats["shareOfEstimate"] == pytest.approx(float(e["collected"] / e["estimate"]))
            months = stats["months"]
            assert [m["month"] for m in months] == [f"{year}-{m:02}" for m in range(1, 13)]
            for m in months:
                amount, payers = e["months"].get(m["month"], (Decimal(0), set()))
                assert Decimal(m["collected"]) == amount, (d["code"], m["month"])
                assert m["taxpayerCount"] == len(payers), (d["code"], m["month"])
                assert m["shareOfEstimate"] == pytest.approx(float(amount / e["estimate"]))
            # The months sum to the year: to its own SQL total, and for land and building
            # to what `taxRevenue` reports.
            total = sum(Decimal(m["collected"]) for m in months)
            assert (
                total == Decimal(stats["collected"]) == Decimal(months[-1]["cumulativeCollected"])
            )
            assert months[-1]["cumulativeShareOfEstimate"] == pytest.approx(
                stats["shareOfEstimate"]
            )
            if tax_type == "LAND_BUILDING":
                assert total == Decimal(d[f"t{year}"]["collected"])
                assert Decimal(stats["estimate"]) == Decimal(d[f"t{year}"]["assessed"])
                assert Decimal(stats["outstanding"]) == Decimal(d[f"t{year}"]["outstanding"])


def test_both_taxes_when_no_type_is_given(gateway):
    data = gateway.query(
        '{ district(code: "1039") { revenue(year: 2025) { taxType collected } '
        "l: revenue(year: 2025, taxType: LAND_BUILDING) { collected } "
        "s: revenue(year: 2025, taxType: SIGNBOARD) { collected } } }"
    )["district"]
    assert [r["taxType"] for r in data["revenue"]] == ["LAND_BUILDING", "SIGNBOARD"]
    assert [r["collected"] for r in data["revenue"]] == [
        data["l"][0]["collected"],
        data["s"][0]["collected"],
    ]


def test_a_year_without_tax_has_zeros_and_twelve_empty_months(gateway):
    [stats] = gateway.query(
        '{ district(code: "1004") { revenue(year: 2010, taxType: SIGNBOARD) '
        "{ estimate collected taxpayerCount shareOfEstimate months { month collected "
        "cumulativeShareOfEstimate } } } }"
    )["district"]["revenue"]
    assert (stats["estimate"], stats["collected"], stats["taxpayerCount"]) == ("0", "0", 0)
    assert stats["shareOfEstimate"] is None
    assert [m["month"] for m in stats["months"]] == [f"2010-{m:02}" for m in range(1, 13)]
    assert {(m["collected"], m["cumulativeShareOfEstimate"]) for m in stats["months"]} == {
        ("0", None)
    }


def test_a_year_that_is_not_a_gregorian_tax_year_is_refused(gateway):
    gateway.reset_counters()
    response = gateway.post('{ district(code: "1004") { revenue(year: 1) { collected } } }')
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert gateway.connectors.tax.counter.calls["tax"] == 0


def test_one_tax_call_for_every_district_year_and_tax(gateway):
    gateway.reset_counters()
    data = gateway.query(
        "{ districts { code a: revenue(year: 2024) { months { collected } } "
        "b: revenue(year: 2025, taxType: SIGNBOARD) { taxpayerCount } } }"
    )
    assert dict(gateway.connectors.tax.counter.calls) == {"tax": 1}
    assert [d["code"] for d in data["districts"]] == [d.code for d in all_districts()]
    assert all(len(d["a"]) == 2 and len(d["b"]) == 1 for d in data["districts"])


def test_the_statistics_are_served_from_their_cache_unchanged(db, traffy_url):
    from connectors.cache import DEFAULT_TTLS
    from support import run, settings_for, start_gateway

    ttls = {**dict.fromkeys(DEFAULT_TTLS, 0), "tax.revenue_by_month": 300}
    server, gw = start_gateway(settings_for(db, traffy_url, cache_ttls=ttls))
    query = f"{{ districts {{ code revenue(year: 2025) {{ {FIGURES} }} }} }}"
    try:
        run(gw.connectors.cache.clear(["tax.revenue_by_month"]))
        fresh = gw.query(query)
        gw.reset_counters()
        # From the cache (Redis when REDIS_URL is set): dates, Decimals and flags come back.
        assert gw.query(query) == fresh
        assert gw.connectors.tax.counter.calls["tax"] == 0
    finally:
        gw.client.close()
        server.stop()
