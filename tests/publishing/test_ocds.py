"""Procurement in OCDS 1.1.5, over HTTP on a real gateway called anonymously: every release
and record package the demo publishes validates against the official schemas (unchanged
copies in tests/standards/, resolved offline), the crawl holds no national id and no value
of a personal field, and each record's compiled release agrees with the source in SQL."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from faults import TcpProxy
from gateway.publishing.ocds import compiled
from policies.model import load_policy
from support import Gateway, settings_for, sql, start_gateway

STANDARD = Path(__file__).parent.parent / "standards" / "ocds-1.1.5"
SCHEMA_BASE = "https://standard.open-contracting.org/schema/1__1__5/"
BANGKOK_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+07:00$")


@cache
def validator(name: str) -> Draft4Validator:
    """The official schema ``name``, its ``$ref``s resolved to the local copies only."""
    documents = {p.name: json.loads(p.read_text()) for p in STANDARD.glob("*.json")}
    registry: Registry = Registry().with_resources(
        (SCHEMA_BASE + n, Resource.from_contents(d, default_specification=DRAFT4))
        for n, d in documents.items()
    )
    return Draft4Validator(
        documents[name], registry=registry, format_checker=Draft4Validator.FORMAT_CHECKER
    )


def problems(name: str, package: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(name).iter_errors(package)
    ]


def walk(client: httpx.Client, url: str) -> list[dict[str, Any]]:
    """Every package from ``url`` on, following ``links.next``."""
    packages = []
    next_url: str | None = url
    while next_url:
        response = client.get(next_url)
        assert response.status_code == 200, response.text
        package = response.json()
        packages.append(package)
        next_url = package.get("links", {}).get("next")
    return packages


@pytest.fixture(scope="module")
def release_packages(anonymous: Gateway) -> list[dict[str, Any]]:
    return walk(anonymous.client, "/ocds/releases")


@pytest.fixture(scope="module")
def record_packages(anonymous: Gateway) -> list[dict[str, Any]]:
    return walk(anonymous.client, "/ocds/records")


@pytest.fixture(scope="module")
def downloads(anonymous: Gateway) -> dict[str, bytes]:
    found = {}
    for kind in ("releases", "records"):
        response = anonymous.client.get(f"/ocds/{kind}.jsonl")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        found[kind] = response.content
    return found


def test_the_local_schemas_refuse_what_is_not_ocds():
    # The validator has teeth: a release without its ocid, a package without a publisher.
    package = {"uri": "https://x.test/p", "version": "1.1", "publishedDate": "2025-01-01T00:00:00Z"}
    release = {"id": "r", "date": "2025-01-01T00:00:00+07:00", "tag": ["tender"]}
    found = problems("release-package-schema.json", {**package, "releases": [release]})
    assert any("'publisher' is a required property" in p for p in found)
    assert any("'ocid' is a required property" in p for p in found)
    assert any("'initiationType'" in p for p in found)


def test_every_release_package_validates_and_covers_every_process(release_packages, db):
    errors = [
        f"package {i}: {p}"
        for i, package in enumerate(release_packages)
        for p in problems("release-package-schema.json", package)
    ]
    assert errors == []
    releases = [r for package in release_packages for r in package["releases"]]
    processes = sql(db.finance, "SELECT id FROM finance.processes")
    assert {r["ocid"] for r in releases} == {f"ocds-bq4ldt-{p['id']}" for p in processes}
    assert len(processes) > 4000
    # Release ids are unique within their process; every date is Bangkok time, RFC 3339.
    assert len({(r["ocid"], r["id"]) for r in releases}) == len(releases)
    for release in releases:
        assert BANGKOK_TIME.match(release["date"]), release["date"]
    tags = {t for r in releases for t in r["tag"]}
    assert {"planning", "tender", "tenderAmendment", "award", "contract"} <= tags
    assert {"contractAmendment", "implementation"} <= tags


def test_every_record_package_validates(record_packages, release_packages):
    errors = [
        f"package {i}: {p}"
        for i, package in enumerate(record_packages)
        for p in problems("record-package-schema.json", package)
    ]
    assert errors == []
    records = [r for package in record_packages for r in package["records"]]
    releases = [r for package in release_packages for r in package["releases"]]
    assert len(records) == len({r["ocid"] for r in releases})
    by_ocid = defaultdict(list)
    for release in releases:
        by_ocid[release["ocid"]].append(release)
    for rec in records:
        assert rec["releases"] == by_ocid[rec["ocid"]]
        assert rec["compiledRelease"] == compiled(rec["ocid"], rec["releases"])


def test_each_compiled_release_agrees_with_the_source(record_packages, db):
    rows = sql(
        db.finance,
        """SELECT p.id, p.budget, p.method, a.value AS award_value, s.name AS winner,
                  c.value AS contract_value, c.ends_on,
                  (SELECT coalesce(sum(y.amount), 0) FROM finance.payments y
                    WHERE y.contract_id = c.id) AS paid,
                  (SELECT count(*) FROM finance.payments y WHERE y.contract_id = c.id) AS payments,
                  (SELECT count(*) FROM finance.bids b WHERE b.process_id = p.id) AS bidders
             FROM finance.processes p
             LEFT JOIN finance.awards a ON a.process_id = p.id
             LEFT JOIN finance.suppliers s ON s.id = a.supplier_id
             LEFT JOIN finance.contracts c ON c.process_id = p.id""",
    )
    compiled_by_ocid = {
        r["ocid"]: r["compiledRelease"] for package in record_packages for r in package["records"]
    }
    methods = {"e_bidding": "open", "e_market": "open", "selection": "selective"}
    for row in rows:
        release = compiled_by_ocid.pop(f"ocds-bq4ldt-{row['id']}")
        where = row["id"]
        tender = release["tender"]
        assert _money(tender["value"]) == row["budget"], where
        assert tender["procurementMethod"] == methods.get(row["method"], "direct"), where
        assert tender.get("numberOfTenderers", 0) == row["bidders"], where
        if row["award_value"] is None:
            assert "awards" not in release, where
        else:
            [award] = release["awards"]
            assert _money(award["value"]) == row["award_value"], where
            assert award["suppliers"][0]["name"] == row["winner"], where
        if row["contract_value"] is None:
            assert "contracts" not in release, where
            continue
        [contract] = release["contracts"]
        assert _money(contract["value"]) == row["contract_value"], where
        assert contract["period"]["endDate"] == f"{row['ends_on']}T00:00:00+07:00", where
        transactions = contract.get("implementation", {}).get("transactions", [])
        assert len(transactions) == row["payments"], where
        assert sum((_money(t["value"]) for t in transactions), Decimal(0)) == row["paid"], where
        party_ids = {p["id"] for p in release["parties"]}
        for t in transactions:
            assert {t["payer"]["id"], t["payee"]["id"]} <= party_ids, where
    assert compiled_by_ocid == {}


def _money(value: dict[str, Any]) -> Decimal:
    assert value["currency"] == "THB"
    return Decimal(str(value["amount"]))


# ---------------------------------------------------------------------------- no personal data

# Where the seed keeps the values of each field the policy tags personal in the procurement
# dataset: a new personal field fails the test below until its values are checked too.
PERSONAL_VALUES = {
    "Supplier.nationalId": "SELECT tax_id AS v FROM finance.suppliers WHERE kind = 'person'",
    "Supplier.address": "SELECT address AS v FROM finance.suppliers",
}


def strings(value: Any) -> Iterator[str]:
    """Every key, text and number in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif value is not None:
        yield str(value)


def national_ids(db: Any) -> set[str]:
    """Every natural person's national id the demo seeds that OCDS could carry: the
    suppliers' and the registry's owners' (sole traders are suppliers too)."""
    ids = {r["v"] for r in sql(db.finance, PERSONAL_VALUES["Supplier.nationalId"])}
    schemas = sql(
        db.registry,
        """SELECT table_schema FROM information_schema.tables
            WHERE table_name = 'commercial_registrations'""",
    )
    union = " UNION ".join(
        f"SELECT owner_id AS v FROM {s['table_schema']}.commercial_registrations" for s in schemas
    )
    ids |= {r["v"] for r in sql(db.registry, union)}
    return ids


def test_an_anonymous_crawl_holds_no_national_id_and_no_personal_value(
    release_packages, record_packages, downloads, db
):
    personal = {
        rule.coordinate
        for rule in load_policy().rules.values()
        if rule.personal and rule.dataset.name == "procurement"
    }
    assert personal == set(PERSONAL_VALUES)
    # Every distinct text of the crawl (both endpoints, both downloads) once: the scan below
    # looks for each seeded value inside any of them.
    texts: set[str] = set()
    for document in [*release_packages, *record_packages]:
        texts |= set(strings(document))
    for download in downloads.values():
        for line in download.splitlines():
            texts |= set(strings(orjson.loads(line)))
    crawl = "\n".join(texts)
    ids = national_ids(db)
    assert len(ids) > 500
    digits = re.sub(r"\D", " ", crawl.replace("-", ""))  # 1-2345-67890-12-3 written out too
    runs = [run for run in digits.split() if len(run) >= 13]
    leaked = {run[i : i + 13] for run in runs for i in range(len(run) - 12)} & ids
    assert leaked == set()
    for coordinate, query in PERSONAL_VALUES.items():
        values = {r["v"] for r in sql(db.finance, query)}
        assert values, coordinate
        assert [v for v in values if v in crawl] == [], coordinate


def test_the_downloads_hold_every_release_and_record(release_packages, record_packages, downloads):
    lines = {k: [orjson.loads(line) for line in v.splitlines()] for k, v in downloads.items()}
    releases = [r for package in release_packages for r in package["releases"]]
    records = [r for package in record_packages for r in package["records"]]
    assert lines["releases"] == releases
    assert lines["records"] == records


# ---------------------------------------------------------------------------- filters, input


def test_filters_by_fiscal_year_buyer_and_announcement_date(anonymous: Gateway, db):
    [busiest] = sql(
        db.finance,
        """SELECT buyer_code, fiscal_year FROM finance.processes GROUP BY 1, 2
            ORDER BY count(*) DESC, 1, 2 LIMIT 1""",
    )
    year, buyer = busiest["fiscal_year"], busiest["buyer_code"]
    packages = walk(anonymous.client, f"/ocds/records?fiscalYear={year}&buyer={buyer}")
    expected = sql(
        db.finance,
        "SELECT id FROM finance.processes WHERE fiscal_year = $1 AND buyer_code = $2",
        year,
        buyer,
    )
    found = [r["ocid"] for p in packages for r in p["records"]]
    assert sorted(found) == sorted(f"ocds-bq4ldt-{r['id']}" for r in expected)
    dated = walk(anonymous.client, "/ocds/releases?from=2024-12-01&to=2024-12-31")
    expected = sql(
        db.finance,
        """SELECT id FROM finance.processes
            WHERE announced_on BETWEEN '2024-12-01' AND '2024-12-31'""",
    )
    assert {r["ocid"] for p in dated for r in p["releases"]} == {
        f"ocds-bq4ldt-{r['id']}" for r in expected
    }
    assert len(expected) > 0


def test_a_page_links_to_the_next_with_the_same_filter(anonymous: Gateway):
    first = anonymous.client.get("/ocds/releases?fiscalYear=2567").json()
    following = first["links"]["next"]
    assert "fiscalYear=2567" in following and "cursor=" in following
    second = anonymous.client.get(following).json()
    ocids = {r["ocid"] for r in first["releases"]}
    assert ocids.isdisjoint(r["ocid"] for r in second["releases"])


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("fiscalYear=68", "fiscalYear"),
        ("fiscalYear=1999", "fiscalYear"),
        ("buyer=S-01", "buyer"),
        ("from=20241001", "from"),
        ("to=2024-13-01", "to"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=cHJvY2VzczphYmM", "cursor"),  # process:abc, not an e-GP number
        ("page=2", "page"),
    ],
)
@pytest.mark.parametrize("path", ["/ocds/releases", "/ocds/records.jsonl"])
def test_bad_parameters_are_refused_by_name(anonymous: Gateway, path, query, parameter):
    response = anonymous.client.get(f"{path}?{query}")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST", "parameter": parameter}


def test_a_finance_outage_is_a_503_not_a_short_package(db, server_url, traffy_url):
    proxy = TcpProxy(server_url).start()
    finance = proxy.url(urlsplit(db.finance).path.lstrip("/"))
    server, gw = start_gateway(
        settings_for(db, traffy_url, finance_database_url=finance, upstream_timeout=2)
    )
    try:
        assert gw.client.get("/ocds/records?fiscalYear=2566").status_code == 200
        proxy.stop()  # the database goes away: open connections cut, new ones refused
        for path in ("/ocds/releases", "/ocds/records?fiscalYear=2567", "/ocds/records.jsonl"):
            response = gw.client.get(path)
            assert response.status_code == 503, path
            [error] = response.json()["errors"]
            assert error["extensions"]["code"] == "DATASET_UNAVAILABLE", path
    finally:
        gw.client.close()
        server.stop()
        proxy.close()
