"""The CKAN-compatible API, called over HTTP on loopback as CKAN's own clients call it: the
``ckanapi`` client unmodified, and the harvester's paging of ``package_search``."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import ckanapi
import httpx
import pytest

from gateway.publishing.package import package_id
from policies.catalog import load_catalog
from published_rows import published_rows
from support import Gateway, settings_for, start_gateway

CATALOG = load_catalog()
COMPLAINTS = "traffy-complaints-complaints"


@pytest.fixture(scope="module")
def ckan(anonymous: Gateway) -> Iterator[ckanapi.RemoteCKAN]:
    with ckanapi.RemoteCKAN(anonymous.url, user_agent="bma-gateway-tests") as remote:
        yield remote


def _complaints(gateway: Gateway) -> list[dict[str, Any]]:
    """The complaints table as the anonymous GraphQL answer holds it."""
    _dataset, resource = CATALOG.resource(COMPLAINTS) or (None, None)
    assert resource is not None
    return published_rows(gateway, resource)


# ---------------------------------------------------------------------------- ckanapi


def test_ckanapi_lists_shows_and_searches_what_the_catalogue_holds(ckan):
    assert ckan.action.package_list() == sorted(CATALOG.datasets)
    for name, dataset in CATALOG.datasets.items():
        by_name = ckan.action.package_show(id=name)
        assert by_name == ckan.action.package_show(id=package_id(dataset))
        assert by_name["title"] == dataset.title_th
        assert by_name["organization"]["name"] == dataset.organisation
        assert [t["name"] for t in by_name["tags"]] == list(dataset.tags)
        assert by_name["data_classification"] == "เปิดเผย"
        tables = sum(len(r.formats) for r in dataset.resources)
        assert by_name["num_resources"] == tables + len(dataset.links)
        urls = {r["url"].removeprefix(ckan.address) for r in by_name["resources"]}
        assert urls == {
            f"/download/{name}/{r.name}.{f}" for r in dataset.resources for f in r.formats
        } | {link.path for link in dataset.links}
    organisation = next(iter(CATALOG.datasets.values())).organisation
    found = ckan.action.package_search(fq=f"organization:{organisation}", rows=1, start=0)
    expected = sorted(n for n, d in CATALOG.datasets.items() if d.organisation == organisation)
    assert found["count"] == len(expected)
    assert [p["name"] for p in found["results"]] == expected[:1]
    assert ckan.action.package_search(fq="organization:nobody")["count"] == 0
    by_title = sorted(CATALOG.organisations.values(), key=lambda o: o.title_th)
    assert ckan.action.organization_list() == [o.id for o in by_title]  # CKAN's default
    assert ckan.action.organization_list(sort="name desc") == sorted(CATALOG.organisations)[::-1]
    whole = ckan.action.organization_list(all_fields=True)
    assert {o["name"]: o["package_count"] for o in whole} == {
        o: sum(d.organisation == o for d in CATALOG.datasets.values())
        for o in CATALOG.organisations
    }
    shown = ckan.action.organization_show(id=organisation, include_datasets=True)
    assert [p["name"] for p in shown["packages"]] == expected
    assert ckan.action.status_show()["extensions"] == ["datastore", "scheming_datasets", "thai_gdc"]


def test_a_resource_per_format_and_the_first_is_the_datastore(ckan):
    _dataset, resource = CATALOG.resource(COMPLAINTS) or (None, None)
    assert resource is not None
    package = ckan.action.package_show(id="traffy-complaints")
    offered = [r for r in package["resources"] if r["id"].startswith(COMPLAINTS)]
    assert [r["format"].lower() for r in offered] == list(resource.formats)
    assert [r["datastore_active"] for r in offered] == [True] + [False] * (len(offered) - 1)
    shown = ckan.action.resource_show(id=f"{COMPLAINTS}-json")
    assert shown == next(r for r in offered if r["id"] == f"{COMPLAINTS}-json")
    assert shown["package_id"] == package["id"]
    assert [f["id"] for f in shown["data_dictionary"]] == [c.name for c in resource.columns]


def test_datastore_search_pages_equal_the_anonymous_graphql_answer(ckan, anonymous, tickets):
    page = ckan.action.datastore_search(resource_id=COMPLAINTS, limit=25, offset=10)
    expected = _complaints(anonymous)[10:35]
    assert [{k: v for k, v in r.items() if k != "_id"} for r in page["records"]] == expected
    assert [r["_id"] for r in page["records"]] == list(range(11, 36))
    assert page["total"] == len(tickets)
    assert [f["id"] for f in page["fields"]] == ["_id", *expected[0]]
    assert page["fields"][1]["info"]["notes"]  # the dictionary's words, from the schema
    assert page["_links"]["next"].endswith(f"resource_id={COMPLAINTS}&offset=35&limit=25")


def test_datastore_filters_sort_fields_and_q(ckan, anonymous, tickets):
    first = _complaints(anonymous)[0]
    district = first["district_code"]
    found = ckan.action.datastore_search(
        resource_id=COMPLAINTS,
        filters={"district_code": district},
        fields=["ticket_id", "reported_at", "district_code"],
        sort="reported_at asc, ticket_id desc",
        limit=5,
    )
    assert found["total"] > 5
    records = found["records"]
    assert all(r["district_code"] == district for r in records)
    assert list(records[0]) == ["ticket_id", "reported_at", "district_code"]
    keys = [(r["reported_at"], r["ticket_id"]) for r in records]
    assert keys == sorted(keys, key=lambda k: (k[0], [-ord(c) for c in k[1]]))
    # The same rows, found by the row's own words: q looks in every column.
    again = ckan.action.datastore_search(resource_id=COMPLAINTS, q=records[0]["ticket_id"])
    assert [r["ticket_id"] for r in again["records"]] == [records[0]["ticket_id"]]


@pytest.mark.parametrize("resource_id", [r.id for _d, r in CATALOG.resources()])
def test_every_resource_answers_the_anonymous_rows_whatever_the_credential(
    anonymous, gateway, resource_id
):
    """A cleared caller (the data protection officer, who reads every field) gets the same
    DataStore rows as nobody: the table is the anonymous principal's, so nothing non-public
    can come out; and those rows are the anonymous GraphQL answer's."""
    params = {"resource_id": resource_id, "limit": "20"}
    nobody = anonymous.client.get("/api/3/action/datastore_search", params=params)
    cleared = gateway.client.get(
        "/api/3/action/datastore_search", params=params, headers=gateway.headers
    )
    assert nobody.status_code == cleared.status_code == 200, cleared.text
    assert cleared.json()["result"] == nobody.json()["result"]
    records = [
        {k: v for k, v in r.items() if k != "_id"} for r in nobody.json()["result"]["records"]
    ]
    _dataset, resource = CATALOG.resource(resource_id) or (None, None)
    assert resource is not None
    assert records == published_rows(anonymous, resource)[:20]


def test_the_readme_ckanapi_command_and_a_dump_of_every_dataset(anonymous, tmp_path):
    """The tour's command, as written, against this gateway; and ``ckanapi dump``, which
    reads every package through package_list and package_show."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    line = next(x for x in readme.splitlines() if x.startswith("ckanapi action"))
    command = shlex.split(line.replace("http://127.0.0.1:8000", anonymous.url))
    cli = str(Path(sys.executable).with_name("ckanapi"))
    found = subprocess.run([cli, *command[1:]], capture_output=True, check=True, timeout=60)
    answer = json.loads(found.stdout)
    expected = sorted(n for n, d in CATALOG.datasets.items() if d.organisation == "traffy-fondue")
    assert sorted(p["name"] for p in answer["results"]) == expected
    dump = tmp_path / "datasets.jsonl"
    dumping = subprocess.run(
        [cli, "dump", "datasets", "--all", "-q", "-O", str(dump), "-r", anonymous.url],
        capture_output=True,
        timeout=60,
        # its workers are `ckanapi` processes found on the PATH
        env={**os.environ, "PATH": f"{Path(cli).parent}{os.pathsep}{os.environ['PATH']}"},
    )
    assert dumping.returncode == 0, dumping.stderr.decode()
    dumped = [json.loads(x) for x in dump.read_text(encoding="utf-8").splitlines()]
    assert sorted(p["name"] for p in dumped) == sorted(CATALOG.datasets)


# ---------------------------------------------------------------------------- errors


def _call(gateway: Gateway, action: str, **params: Any) -> httpx.Response:
    return gateway.client.get(f"/api/3/action/{action}", params=params)


def test_errors_have_ckans_shapes_and_statuses(anonymous, ckan):
    missing = _call(anonymous, "package_show", id="no-such-dataset")
    assert missing.status_code == 404
    body = missing.json()
    assert body["success"] is False and body["help"].endswith("help_show?name=package_show")
    assert body["error"]["__type"] == "Not Found Error"
    assert "no-such-dataset" in body["error"]["message"]
    with pytest.raises(ckanapi.NotFound):
        ckan.action.resource_show(id="no-such-resource")
    with pytest.raises(ckanapi.NotFound):
        ckan.action.datastore_search(resource_id="no-such-resource")
    unknown = _call(anonymous, "package_create")
    assert unknown.status_code == 400
    assert unknown.json() == "Bad request - Action name not known: package_create"
    not_json = anonymous.client.post(
        "/api/3/action/package_search",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert not_json.status_code == 400 and "JSON Error" in not_json.json()
    query = _call(anonymous, "package_search", fq="organization:(")
    assert query.status_code == 400
    assert query.json()["error"]["__type"] == "Search Query Error"
    sort = _call(anonymous, "package_search", sort="nonsense asc")
    assert sort.status_code == 409 and sort.json()["error"]["__type"] == "Search Error"


@pytest.mark.parametrize(
    ("action", "params", "field"),
    [
        ("package_search", {"rows": "-1"}, "rows"),
        ("package_search", {"rows": "ten"}, "rows"),
        ("package_search", {"start": "-5"}, "start"),
        ("package_search", {"facet.field": "[1, 2]"}, "facet.field"),
        ("package_show", {}, "id"),
        ("organization_list", {"all_fields": "maybe"}, "all_fields"),
        ("datastore_search", {}, "resource_id"),
        ("datastore_search", {"resource_id": COMPLAINTS, "limit": "-1"}, "limit"),
        ("datastore_search", {"resource_id": COMPLAINTS, "fields": "nope"}, "fields"),
        ("datastore_search", {"resource_id": COMPLAINTS, "filters": "{bad"}, "filters"),
        ("datastore_search", {"resource_id": COMPLAINTS, "filters": '{"nope": 1}'}, "filters"),
        ("datastore_search", {"resource_id": COMPLAINTS, "sort": "nope desc"}, "sort"),
    ],
)
def test_bad_parameters_are_validation_errors_naming_the_parameter(
    anonymous, action, params, field
):
    answer = _call(anonymous, action, **params)
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["__type"] == "Validation Error"
    assert isinstance(error[field], list) and error[field]


def test_a_table_that_cannot_be_produced_is_503_with_its_code(db, tmp_path):
    # Traffy unreachable: the metadata still answers, the table does not.
    server, gateway = start_gateway(settings_for(db, "http://127.0.0.1:9"))
    try:
        assert _call(gateway, "package_show", id="traffy-complaints").status_code == 200
        answer = _call(gateway, "datastore_search", resource_id=COMPLAINTS)
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert error["code"] == "DATASET_UNAVAILABLE" and answer.json()["success"] is False
    finally:
        gateway.client.close()
        server.stop()


# ---------------------------------------------------------------------------- harvesting

MANY = 250
SINCE = date(2026, 6, 1)


def _many_datasets(path: Path) -> dict[str, tuple[str, date]]:
    """A catalogue of MANY small datasets over three organisations, modified on days either
    side of SINCE; returns each dataset's organisation and modification day."""
    made: dict[str, tuple[str, date]] = {}
    parts = ["version = 1\n"]
    for organisation in CATALOG.organisations.values():
        parts.append(f"[organisations.{organisation.id}]")
        parts.append(
            f"title_th = {_s(organisation.title_th)}\ntitle_en = {_s(organisation.title_en)}"
        )
    for number in range(MANY):
        name = f"dataset-{number:03d}"
        organisation = sorted(CATALOG.organisations)[number % 3]
        modified = SINCE + timedelta(days=number % 7 - 3)
        made[name] = (organisation, modified)
        parts.append(_dataset_toml(name, organisation, modified))
    path.write_text("\n".join(parts), encoding="utf-8")
    return made


def _s(text: str) -> str:
    """A TOML string (a JSON string is one)."""
    return json.dumps(text, ensure_ascii=False)


def _dataset_toml(name: str, organisation: str, modified: date) -> str:
    return f"""
[datasets.{name}]
title_th = {_s("ชุดข้อมูล " + name)}
title_en = {_s("Dataset " + name)}
notes_th = "ข้อมูลเขต"
notes_en = "District codes."
organisation = {_s(organisation)}
maintainer = "ทีมข้อมูลเปิด"
maintainer_email = "opendata@bangkok.go.th"
tags = ["เขต", "districts"]
data_type = "ข้อมูลระเบียน"
objective = "พันธกิจหน่วยงาน"
update_frequency_unit = "ปี"
update_frequency_interval = 1
geo_coverage = "จังหวัด"
data_source = "สำนักงานเขต"
data_category = "ข้อมูลสาธารณะ"
license_id = "Open Data Common"
accessible_condition = "เปิดเผยได้ทั่วไป"
first_year_of_data = "2565"
last_year_of_data = "2569"
created_date = 2026-01-01
last_updated_date = {modified.isoformat()}

[datasets.{name}.resources.codes]
title_th = "รหัสเขต"
title_en = "District codes"
formats = ["csv", "json"]
rows = "districts"
query = "{{ districts {{ code }} }}"
columns = [{{ name = "code", path = "code" }}]
"""


@pytest.fixture(scope="module")
def harvested(db, traffy_url, tmp_path_factory) -> Iterator[tuple[Gateway, dict[str, Any]]]:
    path = tmp_path_factory.mktemp("catalog") / "many.toml"
    made = _many_datasets(path)
    server, gateway = start_gateway(settings_for(db, traffy_url, catalog_file=str(path)))
    try:
        yield gateway, made
    finally:
        gateway.client.close()
        server.stop()


def _harvest(gateway: Gateway, fq: str = "") -> list[dict[str, Any]]:
    """CKAN's harvester's gather stage: GET package_search, ``rows=100``, ``sort=id asc``,
    ``start`` moved on by ``rows`` until a page comes back empty."""
    found: list[dict[str, Any]] = []
    start = 0
    while True:
        params = {"rows": "100", "start": str(start), "sort": "id asc"}
        if fq:
            params["fq"] = fq
        answer = gateway.client.get("/api/3/action/package_search", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()["result"]["results"]
        if not page:
            return found
        found.extend(page)
        start += 100


def test_the_harvester_pages_every_dataset_exactly_once(harvested):
    gateway, made = harvested
    found = _harvest(gateway)
    assert sorted(p["name"] for p in found) == sorted(made)
    ids = [p["id"] for p in found]
    assert ids == sorted(ids) and len(set(ids)) == MANY


def test_the_harvester_fetches_only_what_changed_since_and_filters_organisations(harvested):
    gateway, made = harvested
    # As the harvester writes it: the last harvest's start, an hour back, isoformat + Z.
    last_harvest = datetime.combine(SINCE, time(0, 30, 0, 123456))
    since = f"{(last_harvest - timedelta(hours=1)).isoformat()}Z"
    changed = _harvest(gateway, f"metadata_modified:[{since} TO *]")
    expected = {n for n, (_o, day) in made.items() if day >= SINCE}
    assert {p["name"] for p in changed} == expected and len(changed) == len(expected)
    before = _harvest(gateway, f"metadata_modified:[* TO {SINCE.isoformat()}T00:00:00Z}}")
    assert {p["name"] for p in before} == set(made) - expected
    first, second, *_others = sorted(CATALOG.organisations)
    chosen = _harvest(
        gateway, f"organization:{first} OR organization:{second} metadata_modified:[{since} TO *]"
    )
    assert {p["name"] for p in chosen} == {n for n in expected if made[n][0] in (first, second)}
    left_out = _harvest(gateway, f"-organization:{first}")
    assert {p["name"] for p in left_out} == {n for n, (o, _d) in made.items() if o != first}


def test_ckanapi_searches_with_rows_start_sort_and_facets(harvested):
    gateway, made = harvested
    with ckanapi.RemoteCKAN(gateway.url) as remote:
        page = remote.action.package_search(
            q="dataset-01",
            rows=5,
            start=5,
            sort="name desc",
            **{"facet.field": ["organization", "res_format"]},
        )
        names = sorted((n for n in made if "dataset-01" in n), reverse=True)
        assert page["count"] == len(names)
        assert [p["name"] for p in page["results"]] == names[5:10]
        assert page["facets"]["res_format"] == {"CSV": len(names), "JSON": len(names)}
        items = page["search_facets"]["organization"]["items"]
        assert sum(i["count"] for i in items) == len(names)
        assert all(i["display_name"] == CATALOG.organisations[i["name"]].title_th for i in items)
        capped = remote.action.package_search(rows=5000)
        assert len(capped["results"]) == 250 and capped["count"] == MANY
        default = remote.action.package_search()
        assert len(default["results"]) == 10


@pytest.mark.parametrize("dataset_id", [d for d in CATALOG.datasets if CATALOG.datasets[d].links])
def test_each_link_of_a_dataset_is_a_resource_without_a_datastore_table(ckan, dataset_id):
    dataset = CATALOG.datasets[dataset_id]
    package = ckan.action.package_show(id=dataset_id)
    by_url = {r["url"]: r for r in package["resources"]}
    for link in dataset.links:
        found = by_url[ckan.address + link.path]
        assert found["format"] == link.format and found["mimetype"] == link.media_type
        assert found["name_translated"] == {"th": link.title_th, "en": link.title_en}
        assert found["datastore_active"] is False
        assert found["conforms_to"] == ([link.standard] if link.standard else [])
        assert ckan.action.resource_show(id=found["id"]) == found
    positions = [r["position"] for r in package["resources"]]
    assert positions == list(range(len(positions)))
