"""`bma-gateway catalog export --output DIR`: every resource file, byte for byte what the
gateway's downloads serve, and the CKAN metadata; a source down stops it without a file."""

from __future__ import annotations

import json

import pytest

from gateway.cli import main
from policies.catalog import load_catalog
from support import settings_for

CATALOG = load_catalog()


def _environment(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)


def test_export_writes_every_file_as_downloaded_and_the_metadata(
    anonymous, db, traffy_url, tmp_path, monkeypatch, capsys
):
    settings = settings_for(db, traffy_url)
    _environment(monkeypatch, settings)
    out = tmp_path / "export"
    assert main(["catalog", "export", "--output", str(out)]) == 0
    files = [(d, r, f) for d, r in CATALOG.resources() for f in r.formats]
    assert f"exported {len(files) + len(CATALOG.datasets) + 1} files" in capsys.readouterr().out

    for dataset, resource, fmt in files:
        written = (out / dataset.id / f"{resource.name}.{fmt}").read_bytes()
        served = anonymous.client.get(f"/download/{dataset.id}/{resource.name}.{fmt}")
        assert written == served.content, f"{dataset.id}/{resource.name}.{fmt}"
    assert not list(out.rglob("*.part"))

    catalogue = json.loads((out / "catalog.json").read_text(encoding="utf-8"))
    assert [p["name"] for p in catalogue["packages"]] == list(CATALOG.datasets)
    assert {o["name"] for o in catalogue["organizations"]} == set(CATALOG.organisations)
    for dataset in CATALOG.datasets.values():
        package = json.loads((out / dataset.id / "package.json").read_text(encoding="utf-8"))
        assert package in catalogue["packages"]
        assert package["title"] == dataset.title_th
        assert package["organization"]["name"] == dataset.organisation
        assert package["data_classification"] == "เปิดเผย"
        assert package["data_type"] == dataset.data_type
        assert [t["name"] for t in package["tags"]] == list(dataset.tags)
        tables = [r for r in package["resources"] if "upload" in r]
        uploads = sorted(r["upload"] for r in tables)
        assert uploads == sorted(f"{r.name}.{f}" for r in dataset.resources for f in r.formats)
        for resource in tables:
            assert (out / dataset.id / resource["upload"]).is_file()
            assert resource["data_dictionary"], resource["id"]
        # The dataset's files in the standards stay links to the gateway, not uploads.
        links = [r["url"] for r in package["resources"] if "upload" not in r]
        assert links == [settings.public_base_url + link.path for link in dataset.links]


def test_a_source_down_stops_the_export_and_leaves_no_short_file(db, tmp_path, monkeypatch, capsys):
    _environment(monkeypatch, settings_for(db, "http://127.0.0.1:9", upstream_timeout=1))
    out = tmp_path / "export"
    assert main(["catalog", "export", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "export stopped: resource traffy-complaints-complaints: cannot be produced" in err
    assert not [p for p in out.rglob("*") if p.is_file()]
