"""The catalogue in a real browser: headless Chromium (the system's, driven by Playwright)
opens a real gateway on loopback, searches, opens a dataset and follows a download link.

Every request for anything but the gateway's own address is refused, so the pages must work
on a closed network (no CDN, no external font or script); the pages must raise no error
(a Content-Security-Policy refusal is logged as one). Skipped, with its reason, where no
Chromium or no Playwright is installed; in CI (``.ci/run`` installs Chromium) that is a
failure instead.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from gateway.publishing.dictionary import data_dictionary
from policies.catalog import load_catalog
from schema import graphql_schema
from support import LoopbackPage

CATALOG = load_catalog()


def test_search_open_a_dataset_and_download_it(
    loopback_page: LoopbackPage, anonymous, tmp_path: Path
):
    page, refused, errors = loopback_page.page, loopback_page.refused, loopback_page.errors
    dataset = next(iter(CATALOG.datasets.values()))
    resource = next(r for r in dataset.resources if "csv" in r.formats)

    page.goto(anonymous.url + "/")  # the front door redirects to the catalogue
    assert urlsplit(page.url).path == "/catalog"
    # The style sheet shipped in the package is applied.
    assert page.eval_on_selector("header.site", "e => getComputedStyle(e).display") == "flex"

    page.fill("#q", dataset.title_en)
    page.click("form.search button[type=submit]")
    page.wait_for_url("**/catalog?*")
    listed = page.eval_on_selector_all("li.dataset", "items => items.map(i => i.dataset.dataset)")
    assert dataset.id in listed
    page.fill("#q", dataset.title_en + " zzz-no-such-word")
    page.click("form.search button[type=submit]")
    page.wait_for_selector("p.empty")
    page.go_back()

    page.click(f'li.dataset[data-dataset="{dataset.id}"] h2 a')
    page.wait_for_url(f"**/catalog/{dataset.id}")
    assert page.text_content("h1") == dataset.title_th

    with page.expect_download() as download_info:
        page.click(f'section[data-resource="{resource.id}"] a.download[data-format="csv"]')
    download = download_info.value
    assert download.failure() is None, f"the download failed: {download.url}"
    assert download.suggested_filename.endswith(".csv")
    saved = tmp_path / "download.csv"
    download.save_as(saved)
    with saved.open(encoding="utf-8-sig", newline="") as f:
        header = f.readline().rstrip("\r\n").split(",")
    assert header == [e.column for e in data_dictionary(resource, graphql_schema())]

    assert refused == [], "the pages asked for something beyond the gateway"
    assert errors == [], errors
