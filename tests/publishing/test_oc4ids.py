"""OC4IDS 0.9.5 project packages of the public works, over HTTP on a real gateway: every
package the gateway publishes validates against the official schemas (copied unchanged into
tests/standards/oc4ids-0.9.5/), offline; the figures equal SQL's; each project
links to its procurement process by the OCDS ocid; and nothing personal is published."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from connectors.base import UpstreamUnavailable
from gateway.demo.ddl import registry_schema
from gateway.demo.embedded import DatabaseUrls
from gateway.http.app import connectors_from
from policies.model import load_policy
from support import Gateway, settings_for, sql, start_gateway

pytestmark = pytest.mark.usefixtures("db")

STANDARD = Path(__file__).parents[1] / "standards" / "oc4ids-0.9.5"
PREFIX = "oc4ids-bq4ldt-"
OCDS_PREFIX = "ocds-bq4ldt-"
STATUS = {"planning": "preparation", "implementation": "implementation", "completed": "completion"}


def validator() -> Draft4Validator:
    """The package schema, its $refs resolved to the copied files: never the network."""
    schemas = [json.loads(p.read_text()) for p in sorted(STANDARD.glob("*.json"))]
    registry: Registry = Registry().with_resources(
        (schema["id"], Resource.from_contents(schema, default_specification=DRAFT4))
        for schema in schemas
    )
    package = next(s for s in schemas if s["id"].endswith("/project-package-schema.json"))
    Draft4Validator.check_schema(package)
    return Draft4Validator(
        package, registry=registry, format_checker=Draft4Validator.FORMAT_CHECKER
    )


def errors_of(document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in VALIDATOR.iter_errors(document)
    ]


VALIDATOR = validator()


def walk(client: httpx.Client, url: str) -> list[dict[str, Any]]:
    """Every package from ``url`` on, following ``links.next``; each validated."""
    packages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        package = response.json()
        assert errors_of(package) == [], url
        packages.append(package)
        url = package.get("links", {}).get("next", "")
    return packages


@pytest.fixture(scope="module")
def crawl(anonymous: Gateway) -> dict[str, Any]:
    """Everything the OC4IDS endpoints publish to an anonymous caller: every page, every
    project's own package and the JSON Lines download."""
    client = anonymous.client
    pages = walk(client, "/oc4ids/projects")
    projects = [p for page in pages for p in page["projects"]]
    singles = {}
    for item in projects:
        response = client.get(f"/oc4ids/projects/{item['id']}")
        assert response.status_code == 200, response.text
        singles[item["id"]] = response.json()
    download = client.get("/oc4ids/projects.jsonl")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in download.content.splitlines()]
    return {"pages": pages, "projects": projects, "singles": singles, "lines": lines}


def test_every_package_validates_and_holds_every_public_work_once(crawl, db: DatabaseUrls):
    pages, projects = crawl["pages"], crawl["projects"]
    seeded = [r["id"] for r in sql(db.finance, "SELECT id FROM finance.projects ORDER BY id")]
    assert len(seeded) >= 150
    assert len(pages) > 1  # paged: links.next was followed
    assert [p["id"] for p in projects] == [PREFIX + i for i in seeded]
    for single in crawl["singles"].values():
        assert errors_of(single) == []
        assert len(single["projects"]) == 1
    assert {k: s["projects"][0] for k, s in crawl["singles"].items()} == {
        p["id"]: p for p in projects
    }
    assert crawl["lines"] == projects
    for line in crawl["lines"]:  # a line is a project: valid inside a package of one
        assert errors_of({**pages[0], "projects": [line]}) == []


def test_a_project_links_its_process_by_ocid_and_its_figures_are_sqls(crawl, db: DatabaseUrls):
    rows = sql(
        db.finance,
        """SELECT j.id, j.process_id, j.budget, j.status, j.sector, p.reference_price, p.title,
                  c.original_value, c.value, c.starts_on, c.ends_on, c.status AS contract_status
             FROM finance.projects j JOIN finance.processes p ON p.id = j.process_id
             LEFT JOIN finance.contracts c ON c.process_id = p.id""",
    )
    amendments = sql(
        db.finance,
        """SELECT a.process_id, a.value_before, a.value_after, a.ends_before, a.ends_after
             FROM finance.amendments a WHERE a.contract_id IS NOT NULL""",
    )
    by_id = {PREFIX + r["id"]: r for r in rows}
    processes = {r["id"] for r in sql(db.finance, "SELECT id FROM finance.processes")}
    changed = {"value": 0, "duration": 0}
    for item in crawl["projects"]:
        row = by_id[item["id"]]
        assert Decimal(str(item["budget"]["amount"]["amount"])) == row["budget"]
        assert item["budget"]["amount"]["currency"] == "THB"
        assert item["sector"] == [row["sector"]]
        assert item["type"] in {"construction", "rehabilitation"}  # every seeded title names one
        assert item["status"] == STATUS[row["status"]]
        [linked] = item["contractingProcesses"]
        assert linked["id"] == linked["summary"]["ocid"] == OCDS_PREFIX + row["process_id"]
        assert linked["id"].removeprefix(OCDS_PREFIX) in processes
        summary = linked["summary"]
        cost = summary["tender"]["costEstimate"]["amount"]
        assert Decimal(str(cost)) == row["reference_price"]
        if row["original_value"] is None:
            assert "contractValue" not in summary
            continue
        assert Decimal(str(summary["contractValue"]["amount"])) == row["original_value"]
        assert summary["contractPeriod"]["startDate"].startswith(row["starts_on"].isoformat())
        assert summary["contractPeriod"]["endDate"].startswith(row["ends_on"].isoformat())
        if row["status"] == "completed":
            assert item["status"] == "completion"
            assert Decimal(str(item["completion"]["finalValue"]["amount"])) == row["value"]
        expected = [a for a in amendments if a["process_id"] == row["process_id"]]
        modifications = summary.get("modifications", [])
        values = [m for m in modifications if m["type"] == "value"]
        times = [m for m in modifications if m["type"] == "duration"]
        assert sorted(Decimal(str(m["newContractValue"]["amount"])) for m in values) == sorted(
            a["value_after"] for a in expected if a["value_after"] is not None
        )
        assert len(times) == sum(a["ends_after"] is not None for a in expected)
        changed["value"] += len(values)
        changed["duration"] += len(times)
    assert changed["value"] and changed["duration"]  # the seed has changes of both kinds


def test_the_public_authority_and_contractor_are_parties(crawl):
    for item in crawl["projects"]:
        parties = {p["id"]: p for p in item["parties"]}
        assert "publicAuthority" in parties[item["publicAuthority"]["id"]]["roles"]
        summary = item["contractingProcesses"][0]["summary"]
        for supplier in summary.get("suppliers", []):
            assert "supplier" in parties[supplier["id"]]["roles"]


def personal_values(db: DatabaseUrls) -> tuple[set[str], set[str]]:
    """National ids (of suppliers who are natural persons, tax owners, registry owners) and
    the other values of every field the policy tags personal in the procurement dataset."""
    policy = load_policy()
    procurement_personal = {
        rule.coordinate
        for rule in policy.rules.values()
        if rule.personal and rule.dataset.name == "procurement"
    }
    # Where each personal procurement field's values are: a field added to the policy
    # without a place here fails this test, so its values are checked too.
    sources = {
        "Supplier.nationalId": "SELECT tax_id AS v FROM finance.suppliers WHERE kind = 'person'",
        "Supplier.address": "SELECT address AS v FROM finance.suppliers WHERE kind = 'person'",
    }
    assert procurement_personal == set(sources)
    ids = {r["v"] for r in sql(db.finance, sources.pop("Supplier.nationalId"))}
    others = {r["v"] for query in sources.values() for r in sql(db.finance, query)}
    ids |= {r["v"] for r in sql(db.tax, "SELECT national_id AS v FROM tax.owners")}
    schemas = [r["s"] for r in sql(db.registry, "SELECT nspname AS s FROM pg_namespace")]
    for schema in (s for s in schemas if s.startswith("d") and s[1:].isdigit()):
        assert schema == registry_schema(schema[1:])
        query = f"SELECT owner_id AS v FROM {schema}.commercial_registrations"
        ids |= {r["v"] for r in sql(db.registry, query)}
    return ids, others


def strings(value: Any) -> Iterator[str]:
    """Every key and string value in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def digit_windows(texts: set[str]) -> set[str]:
    """Every 13 consecutive digits anywhere in ``texts``: where a national id would be."""
    runs = (m.group() for text in texts for m in re.finditer(r"\d{13,}", text))
    return {run[i : i + 13] for run in runs for i in range(len(run) - 12)}


def test_an_anonymous_crawl_holds_no_national_id_and_no_personal_field(crawl, db: DatabaseUrls):
    ids, others = personal_values(db)
    assert len(ids) > 1000 and others
    published = set(strings(crawl))
    assert sorted(digit_windows(published) & ids) == []
    assert [v for v in others if any(v in text for text in published)] == []
    for item in crawl["projects"]:
        for party in item["parties"]:
            assert set(party) <= {"id", "name", "roles"}  # no identifier, address or contact


def test_filters_select_the_projects_sql_selects(anonymous: Gateway, db: DatabaseUrls):
    row = sql(
        db.finance,
        """SELECT p.fiscal_year, j.district_code, j.status, count(*) AS n
             FROM finance.projects j JOIN finance.processes p ON p.id = j.process_id
            GROUP BY 1, 2, 3 ORDER BY n DESC, 1, 2, 3 LIMIT 1""",
    )[0]
    expected = sql(
        db.finance,
        """SELECT j.id FROM finance.projects j JOIN finance.processes p ON p.id = j.process_id
            WHERE p.fiscal_year = $1 AND j.district_code = $2 AND j.status = $3 ORDER BY j.id""",
        row["fiscal_year"],
        row["district_code"],
        row["status"],
    )
    query = (
        f"/oc4ids/projects?fiscalYear={row['fiscal_year']}&district={row['district_code']}"
        f"&status={row['status']}"
    )
    projects = [p for page in walk(anonymous.client, query) for p in page["projects"]]
    assert [p["id"] for p in projects] == [PREFIX + r["id"] for r in expected]
    download = anonymous.client.get(query.replace("projects?", "projects.jsonl?"))
    assert [orjson.loads(x)["id"] for x in download.content.splitlines()] == [
        p["id"] for p in projects
    ]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/oc4ids/projects?fiscalYear=abc", 400, "BAD_REQUEST"),
        ("/oc4ids/projects?fiscalYear=99999", 400, "BAD_REQUEST"),
        ("/oc4ids/projects?district=9999", 400, "BAD_REQUEST"),
        ("/oc4ids/projects?status=done", 400, "BAD_REQUEST"),
        ("/oc4ids/projects?cursor=bm90LWEtY3Vyc29y", 400, "BAD_REQUEST"),
        ("/oc4ids/projects?first=5", 400, "BAD_REQUEST"),
        ("/oc4ids/projects.jsonl?district=x", 400, "BAD_REQUEST"),
        ("/oc4ids/projects?fiscalYear=2500", 404, "NOT_FOUND"),  # none: a package holds one
        ("/oc4ids/projects/BKK-INF-2566-0001", 404, "NOT_FOUND"),  # not an OC4IDS id
        ("/oc4ids/projects/oc4ids-bq4ldt-NO-SUCH", 404, "NOT_FOUND"),
        ("/oc4ids/projects/oc4ids-bq4ldt-%00", 404, "NOT_FOUND"),
    ],
)
def test_bad_input_is_refused_with_a_code(anonymous: Gateway, path: str, status: int, code: str):
    response = anonymous.client.get(path)
    assert response.status_code == status, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == code


class FailingProjects:
    """Fault injection: the finance source answers ``good`` pages of projects, then is down."""

    def __init__(self, search: Any, good: int) -> None:
        self.search, self.good, self.calls = search, good, 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls > self.good:
            raise UpstreamUnavailable("finance", "connection refused")
        return await self.search(*args, **kwargs)


@pytest.fixture
def failing(db: DatabaseUrls, traffy_url: str) -> Iterator[tuple[Gateway, FailingProjects]]:
    settings = settings_for(db, traffy_url)
    connectors = connectors_from(settings)
    fault = FailingProjects(connectors.finance.search_projects, good=0)
    connectors.finance.search_projects = fault  # type: ignore[method-assign]
    server, gw = start_gateway(settings, connectors)
    yield gw, fault
    gw.client.close()
    server.stop()


def test_a_source_down_is_a_503_never_a_short_package(failing):
    gw, fault = failing
    for path in ("/oc4ids/projects?fiscalYear=2566", "/oc4ids/projects.jsonl?fiscalYear=2566"):
        response = gw.client.get(path)
        assert response.status_code == 503, path
        assert response.json()["errors"][0]["extensions"]["code"] == "DATASET_UNAVAILABLE"
    assert fault.calls == 2


def test_a_source_failing_mid_download_breaks_the_transfer(failing):
    gw, fault = failing
    fault.good = 2  # two pages, then the source fails
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        with gw.client.stream("GET", "/oc4ids/projects.jsonl?fiscalYear=2567") as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                received.extend(chunk)
    assert fault.calls == 3
    assert received.count(b"\n") == 50  # the two pages sent before the failure, whole lines
