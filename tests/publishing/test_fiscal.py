"""The budget and revenue Fiscal Data Packages, fetched over HTTP from a running gateway:
each validates with frictionless (descriptor and every row) and against the official Fiscal
Data Package profile schema, and its figures reconcile with the source databases in SQL."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from frictionless import Package
from jsonschema import Draft4Validator

from gateway.publishing.fiscal import PACKAGES, fiscal_year_bounds, tax_year_bounds
from policies.catalog import load_catalog
from support import Gateway, sql

PROFILE = json.loads(
    (
        Path(__file__).parents[1] / "standards" / "fiscal-data-package" / "fiscal-data-package.json"
    ).read_text("utf-8")
)
CATALOG = load_catalog()


def download(gw: Gateway, name: str, folder: Path) -> Path:
    """The package as a folder, as a user saves it: datapackage.json beside its CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    for file in ("datapackage.json", f"{name}.csv"):
        response = httpx.get(f"{gw.url}/fiscal/{name}/{file}", timeout=120)
        assert response.status_code == 200, (file, response.text[:300])
        (folder / file).write_bytes(response.content)
    return folder / "datapackage.json"


@pytest.fixture(scope="module")
def packages(anonymous: Gateway, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fiscal")
    return {name: download(anonymous, name, folder / name) for name in PACKAGES}


def rows(descriptor: Path) -> list[dict[str, str]]:
    name = json.loads(descriptor.read_text("utf-8"))["resources"][0]["path"]
    with (descriptor.parent / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_every_package_is_made_from_a_resource_of_the_catalogue():
    for package in PACKAGES.values():
        found = CATALOG.resource(package.resource_id)
        assert found is not None, package.resource_id
        columns = set(found[1].output_columns)
        for dimension in package.dimensions.values():
            sources = set(dimension.attributes.values()) - {"period_start", "period_end"}
            assert sources - {package.period.label_column} <= columns, package.name
        assert set(package.measures) <= columns


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_frictionless_validates_the_package_and_every_row(packages, name):
    report = Package(str(packages[name])).validate()
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:10]
    assert report.stats["errors"] == 0
    assert report.tasks[0].stats["rows"] == len(rows(packages[name])) > 0


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_the_descriptor_follows_the_fiscal_data_package_profile(packages, name):
    descriptor = json.loads(packages[name].read_text("utf-8"))
    problems = [e.message for e in Draft4Validator(PROFILE).iter_errors(descriptor)]
    assert problems == []
    measures = descriptor["model"]["measures"]
    assert {m["currency"] for m in measures.values()} == {"THB"}
    direction = "expenditure" if name == "budget" else "revenue"
    assert {m["direction"] for m in measures.values()} == {direction}
    fields = {f["name"] for f in descriptor["resources"][0]["schema"]["fields"]}
    for dimension in descriptor["model"]["dimensions"].values():
        assert {a["source"] for a in dimension["attributes"].values()} <= fields
    assert {m["source"] for m in measures.values()} <= fields


def test_budget_measures_per_fiscal_year_equal_the_sums_in_sql(packages, db):
    descriptor = json.loads(packages["budget"].read_text("utf-8"))
    phases = {m["phase"]: m["source"] for m in descriptor["model"]["measures"].values()}
    assert set(phases) == {"proposed", "approved", "adjusted", "executed"}
    totals: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows(packages["budget"]):
        for phase, column in phases.items():
            totals[int(row["fiscal_year"])][phase] += Decimal(row[column])
        start, end = fiscal_year_bounds(int(row["fiscal_year"]))
        assert (row["period_start"], row["period_end"]) == (str(start), str(end))
        # Disbursed never above what the line may spend.
        assert Decimal(row["disbursed"]) <= Decimal(row["approved"]) + Decimal(row["adjusted"])
    expected = sql(
        db.finance,
        "SELECT fiscal_year, sum(proposed) AS proposed, sum(approved) AS approved, "
        "sum(adjusted) AS adjusted, sum(disbursed) AS executed, count(*) AS n "
        "FROM finance.budget_lines GROUP BY fiscal_year",
    )
    assert {r["fiscal_year"] for r in expected} == set(totals) == {2566, 2567, 2568, 2569}
    for r in expected:
        assert totals[r["fiscal_year"]] == {p: r[p] for p in phases}, r["fiscal_year"]
    assert sum(r["n"] for r in expected) == len(rows(packages["budget"]))
    assert fiscal_year_bounds(2568) == (date(2024, 10, 1), date(2025, 9, 30))


REVENUE_SQL = """
SELECT year, tax_type, sum(tax_due) AS estimate,
       coalesce(sum(tax_due) FILTER (WHERE status = 'paid'), 0) AS collected
FROM (SELECT a.tax_year AS year, 'LAND_BUILDING' AS tax_type, a.tax_due, a.status
      FROM tax.assessments a
      UNION ALL
      SELECT tax_year, 'SIGNBOARD', tax_due, status FROM tax.signboards) items
WHERE year BETWEEN 2023 AND 2025
GROUP BY year, tax_type
"""


def test_revenue_measures_per_tax_year_equal_the_sums_in_sql(packages, db):
    totals: dict[tuple[int, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows(packages["revenue"]):
        year = int(row["tax_year"])
        totals[year, row["tax_type"]]["estimate"] += Decimal(row["estimate"])
        totals[year, row["tax_type"]]["collected"] += Decimal(row["collected"])
        assert int(row["tax_year_be"]) == year + 543
        assert (row["period_start"], row["period_end"]) == tuple(map(str, tax_year_bounds(year)))
    expected = {
        (r["year"], r["tax_type"]): {"estimate": r["estimate"], "collected": r["collected"]}
        for r in sql(db.tax, REVENUE_SQL)
    }
    assert totals == expected
    assert len(rows(packages["revenue"])) == 50 * 3 * 2


def test_an_unknown_package_or_table_is_not_found(anonymous: Gateway):
    for path in ("/fiscal/nothing/datapackage.json", "/fiscal/budget/revenue.csv"):
        response = httpx.get(f"{anonymous.url}{path}")
        assert response.status_code == 404
        assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
