"""The 50-district integrated query: every figure checked against the upstream data."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from connectors.districts import all_districts, code_for_name
from connectors.traffy import STATES
from support import sql

DISTRICTS_QUERY = """{ districts { code nameTh nameEn population
    complaintStats { total byState { key count } byType { key count } }
    taxRevenue(year: 2025) { year assessed collected outstanding parcelCount }
    businessCount } }"""


def test_all_fifty_districts_with_figures_from_every_system(gateway, db, tickets):
    districts = gateway.query(DISTRICTS_QUERY)["districts"]

    assert [d["code"] for d in districts] == [d.code for d in all_districts()]
    assert len(districts) == 50
    revenue = {
        r["district_code"]: r
        for r in sql(
            db.tax,
            """SELECT p.district_code, sum(a.tax_due) AS assessed,
                      sum(a.tax_due) FILTER (WHERE a.status = 'paid') AS collected,
                      sum(a.tax_due) FILTER (WHERE a.status IN ('unpaid', 'overdue')) AS outstanding,
                      count(*) AS parcels
               FROM tax.assessments a JOIN tax.parcels p ON p.id = a.parcel_id
               WHERE a.tax_year = 2025 GROUP BY p.district_code""",
        )
    }
    complaints = Counter(code_for_name(t["district"]) for t in tickets)
    for d in districts:
        code = d["code"]
        expected = revenue[code]
        assert Decimal(d["taxRevenue"]["assessed"]) == expected["assessed"]
        assert Decimal(d["taxRevenue"]["collected"]) == expected["collected"]
        assert Decimal(d["taxRevenue"]["outstanding"]) == (expected["outstanding"] or 0)
        assert d["taxRevenue"]["parcelCount"] == expected["parcels"]
        assert Decimal(d["taxRevenue"]["collected"]) > 0
        assert d["complaintStats"]["total"] == complaints[code] > 0
        assert sum(s["count"] for s in d["complaintStats"]["byState"]) == complaints[code]
        schema = f"d{code}"
        active = sql(
            db.registry,
            f"SELECT count(*) AS n FROM {schema}.commercial_registrations WHERE status = 'active'",
        )[0]["n"]
        assert d["businessCount"] == active > 0
        population = sql(
            db.registry,
            f"""SELECT sum(population) AS n FROM {schema}.population_stats
                WHERE year = (SELECT max(year) FROM {schema}.population_stats)""",
        )[0]["n"]
        assert d["population"] == population > 0


def test_complaint_stats_by_state_and_type_match_the_tickets(gateway, tickets):
    data = gateway.query(
        '{ district(code: "1039") { complaintStats { total byState { key count } byType { key count } } } }'
    )
    stats = data["district"]["complaintStats"]
    mine = [t for t in tickets if code_for_name(t["district"]) == "1039"]
    by_state = Counter(STATES[t["state"]] for t in mine)
    assert {s["key"]: s["count"] for s in stats["byState"]} == dict(by_state)
    by_type: Counter[str] = Counter()
    for t in mine:
        raw = t.get("problem_type_fondue", t.get("type"))
        types = raw if isinstance(raw, list) else raw.strip("{}").split(",")
        by_type.update(x for x in types if x)
    assert {s["key"]: s["count"] for s in stats["byType"]} == dict(by_type)
    assert stats["total"] == len(mine)


def test_one_upstream_call_per_connector_and_source_per_level(gateway):
    gateway.reset_counters()
    gateway.query(
        "{ districts { code complaintStats { total } taxRevenue(year: 2025) { collected } businessCount population } }"
    )
    tax = gateway.connectors.tax.counter.calls
    traffy = gateway.connectors.traffy.counter.calls
    registry = gateway.connectors.registry.counter.calls
    assert dict(tax) == {"tax": 1}
    assert dict(traffy) == {"traffy": 1}
    # The registries are 50 sources: each answers once, never once per field or per row.
    assert dict(registry) == {f"registry:{d.code}": 1 for d in all_districts()}


def test_two_years_in_one_query_still_one_tax_call(gateway):
    gateway.reset_counters()
    data = gateway.query(
        "{ districts { a: taxRevenue(year: 2024) { year collected } b: taxRevenue(year: 2025) { year collected } } }"
    )
    assert gateway.connectors.tax.counter.calls["tax"] == 1
    assert {d["a"]["year"] for d in data["districts"]} == {2024}
    assert {d["b"]["year"] for d in data["districts"]} == {2025}


def test_district_by_code_and_unknown_year_is_zero(gateway):
    data = gateway.query(
        '{ district(code: "1004") { code nameTh nameEn taxRevenue(year: 2010) { assessed parcelCount } } }'
    )
    assert data["district"]["nameEn"] == "Khet Bang Rak"
    assert data["district"]["nameTh"] == "เขตบางรัก"
    assert data["district"]["taxRevenue"] == {"assessed": "0", "parcelCount": 0}
