"""gateway/cli/catalog.py: `bma-gateway catalog check` and `catalog show`, on the shipped
catalogue and on broken ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.publishing.dictionary import data_dictionary
from policies.catalog import DEFAULT_CATALOG, load_catalog
from policies.model import DEFAULT_POLICY
from schema import graphql_schema

CATALOG = load_catalog()


def _broken(tmp_path: Path, old: str, new: str, source: Path = DEFAULT_CATALOG) -> Path:
    text = source.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / source.name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_check_passes_the_shipped_catalogue_and_lists_each_datasets_classification(capsys):
    assert main(["catalog", "check"]) == 0
    out = capsys.readouterr().out
    resources = sum(len(d.resources) for d in CATALOG.datasets.values())
    assert out.splitlines()[0] == (
        f"catalogue ok: {len(CATALOG.datasets)} datasets, {resources} resources"
    )
    for dataset in CATALOG.datasets.values():
        assert f"  {dataset.id}: เปิดเผย, {len(dataset.resources)} resource(s)" in out


def test_check_lists_every_problem_and_fails(tmp_path, capsys):
    path = _broken(
        tmp_path,
        "registrationNo name type address registeredOn status district",
        "owner { nationalId } registrationNo name type address registeredOn status district",
    )
    path = _broken(tmp_path, 'objective = "พันธกิจหน่วยงาน"', 'objective = "ไม่รู้"', path)
    assert main(["catalog", "check", "--file", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0] == "bma-gateway: 1 catalogue problem(s):"
    assert lines[1].startswith(
        "  dataset district-profiles: `objective` is 'ไม่รู้', not one of thai-gdc's values: "
    )
    # Loading stops at the metadata; once that is right, the check names the fields.
    fixed = _broken(tmp_path, 'objective = "ไม่รู้"', 'objective = "พันธกิจหน่วยงาน"', path)
    assert main(["catalog", "check", "--file", str(fixed)]) == 1
    where = "dataset commercial-registrations, resource registrations"
    assert capsys.readouterr().err.splitlines() == [
        "bma-gateway: 2 catalogue problem(s):",
        f"  {where}: reads Business.owner, which is internal, not open data",
        f"  {where}: reads BusinessOwner.nationalId, which is confidential and personal, "
        "not open data",
    ]


def test_check_against_a_policy_that_closes_a_field(tmp_path, capsys):
    policy = _broken(tmp_path, 'population = "public"', 'population = "internal"', DEFAULT_POLICY)
    assert main(["catalog", "check", "--policy", str(policy)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "bma-gateway: 1 catalogue problem(s):",
        "  dataset district-profiles, resource profiles: reads District.population, "
        "which is internal, not open data",
    ]


def test_show_json_holds_every_dataset_with_its_metadata_and_data_dictionary(capsys):
    assert main(["catalog", "show", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    schema = graphql_schema()
    assert [o["id"] for o in report["organisations"]] == list(CATALOG.organisations)
    assert [d["id"] for d in report["datasets"]] == list(CATALOG.datasets)
    for shown, dataset in zip(report["datasets"], CATALOG.datasets.values(), strict=True):
        assert shown["classification"] == "public"
        assert shown["metadata"] == dataset.gdc_fields("เปิดเผย")
        assert shown["organisation"] == dataset.organisation
        for shown_resource, resource in zip(shown["resources"], dataset.resources, strict=True):
            assert shown_resource["id"] == resource.id
            assert shown_resource["query"] == resource.query.strip()
            assert [c["column"] for c in shown_resource["columns"]] == [
                e.column for e in data_dictionary(resource, schema)
            ]
    revenue = next(d for d in report["datasets"] if d["id"] == "tax-revenue")
    land = next(r for r in revenue["resources"] if r["name"] == "land-and-building")
    assert land["variables"] == [{"year": 2023}, {"year": 2024}, {"year": 2025}]
    collected = next(c for c in land["columns"] if c["column"] == "collected")
    assert collected == {
        "column": "collected",
        "type": "numeric",
        "description_th": "ภาษีที่จัดเก็บได้",
        "description_en": "Tax paid, baht.",
        "unit": "บาท / baht",
    }


def test_show_markdown_is_one_section_per_dataset_with_its_columns(capsys):
    assert main(["catalog", "show"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Open-data catalogue / บัญชีข้อมูลเปิด\n")
    for dataset in CATALOG.datasets.values():
        assert f"## {dataset.title_th} / {dataset.title_en} (`{dataset.id}`)" in out
        for resource in dataset.resources:
            assert f"### {resource.title_th} / {resource.title_en} (`{resource.name}`)" in out
    assert "| `data_classification` | เปิดเผย |" in out
    assert "| `collected` | numeric | ภาษีที่จัดเก็บได้ | Tax paid, baht. | บาท / baht |" in out
    assert "| `tax-revenue` Land-and-building tax and signboard tax revenue" in out


@pytest.mark.parametrize("action", ["check", "show"])
def test_a_missing_catalogue_file_is_a_clear_error(tmp_path, capsys, action):
    missing = tmp_path / "nope.toml"
    assert main(["catalog", action, "--file", str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"cannot read {missing}" in err
    assert "Traceback" not in err


def test_config_check_checks_the_catalogue_the_settings_name(tmp_path, monkeypatch, capsys):
    for name, value in {
        "BMA_TAX_DATABASE_URL": "postgresql://unused",
        "BMA_REGISTRY_DATABASE_URL": "postgresql://unused",
        "BMA_FINANCE_DATABASE_URL": "postgresql://unused",
        "BMA_TRAFFY_BASE_URL": "http://unused",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BMA_CATALOG_FILE", str(DEFAULT_CATALOG))
    assert main(["config", "check"]) == 0
    assert f"catalogue {len(CATALOG.datasets)} datasets" in capsys.readouterr().out
    broken = _broken(tmp_path, 'geo_coverage = "จังหวัด"\n', "")
    monkeypatch.setenv("BMA_CATALOG_FILE", str(broken))
    assert main(["config", "check"]) == 2
    err = capsys.readouterr().err
    assert (
        f"configuration error: BMA_CATALOG_FILE {broken}: dataset traffy-complaints: "
        "`geo_coverage` is required" in err
    )
