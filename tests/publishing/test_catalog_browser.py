"""The catalogue in a real browser: headless Chromium (the system's, driven by Playwright)
opens a real gateway on loopback, searches, opens a dataset and follows a download link.

Every request for anything but the gateway's own address is refused, so the pages must work
on a closed network (no CDN, no external font or script); the pages must raise no error
(a Content-Security-Policy refusal is logged as one). Skipped, with its reason, where no
Chromium or no Playwright is installed; in CI (``.ci/run`` installs Chromium) that is a
failure instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gateway.publishing.dictionary import data_dictionary
from policies.catalog import load_catalog
from schema import graphql_schema

CATALOG = load_catalog()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: .ci/run installs it, so CI must run this test")
    pytest.skip(reason)


try:
    from playwright.sync_api import Browser, Page, Request, Route, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        _unavailable("Playwright is not installed (pip install -e '.[test]')")
    if CHROMIUM is None:
        _unavailable("no Chromium on this machine (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        # The system's browser: Playwright's own browser downloads are never used.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, anonymous) -> Iterator[tuple[Page, list[str], list[str]]]:
    """A page that may reach the gateway only; with the requests it refused and the
    errors the pages logged."""
    gateway_host = urlsplit(anonymous.url).hostname
    assert gateway_host == "127.0.0.1"
    refused: list[str] = []
    errors: list[str] = []
    context = browser.new_context(accept_downloads=True)

    def only_the_gateway(route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname == gateway_host:
            route.continue_()
        else:
            refused.append(request.url)
            route.abort()

    context.route("**/*", only_the_gateway)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page, refused, errors
    context.close()


def test_search_open_a_dataset_and_download_it(page, anonymous, tmp_path: Path):
    page, refused, errors = page
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
