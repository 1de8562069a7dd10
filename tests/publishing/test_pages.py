"""The catalogue's pages, over HTTP from a real gateway: every dataset of the catalogue has a
page with every resource's links and data dictionary (the cases come from the catalogue),
search and the organisation filter, the Schema.org JSON-LD, and escaping."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from gateway.publishing.dictionary import data_dictionary
from gateway.publishing.pages import CONTENT_SECURITY_POLICY, MEDIA_TYPES, search
from policies.catalog import DEFAULT_CATALOG, load_catalog
from schema import graphql_schema
from support import settings_for, start_gateway

CATALOG = load_catalog()
SCHEMA = graphql_schema()
DATASETS = sorted(CATALOG.datasets)


class Page(HTMLParser):
    """What a test reads of a page: its links, its text, its JSON-LD blocks, its scripts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.text: list[str] = []
        self.jsonld: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self._in_jsonld = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href"):
            self.links.append(str(attributes["href"]))
        if tag == "script":
            self.scripts.append(attributes)
            self._in_jsonld = attributes.get("type") == "application/ld+json"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_jsonld = False

    def handle_data(self, data: str) -> None:
        if self._in_jsonld:
            self.jsonld.append(data)
        elif data.strip():
            self.text.append(data.strip())

    @property
    def words(self) -> str:
        return "\n".join(self.text)


def get(anonymous, path: str, **params: str) -> httpx.Response:
    return anonymous.client.get(path, params=params)


def page_of(response: httpx.Response) -> Page:
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    return Page(response.text)


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_every_dataset_has_a_page_with_every_resources_links_and_dictionary(anonymous, dataset_id):
    dataset = CATALOG.datasets[dataset_id]
    page = page_of(get(anonymous, f"/catalog/{dataset_id}"))
    assert dataset.title_th in page.words and dataset.title_en in page.words
    assert "เปิดเผย" in page.words  # data_classification, computed from the policy
    for link in (
        f"/api/3/action/package_show?id={dataset_id}",
        f"/catalog/{dataset_id}.jsonld",
        f"/catalog/{dataset_id}.ttl",
    ):
        assert link in page.links
    tried = {
        parse_qs(urlsplit(link).query)["query"][0]
        for link in page.links
        if link.startswith("/graphql?query=")
    }
    for resource in dataset.resources:
        for fmt in resource.formats:
            assert f"/download/{dataset_id}/{resource.name}.{fmt}" in page.links
        assert resource.query.strip() in tried
        for entry in data_dictionary(resource, SCHEMA):
            assert entry.column in page.words
            for words in (entry.description_th, entry.description_en, entry.unit):
                assert not words or words in page.words, (resource.id, entry)
    for key in ("data_type", "objective", "geo_coverage", "license_id", "maintainer_email"):
        assert str(getattr(dataset, key)) in page.words


@pytest.mark.parametrize("dataset_id", [d for d in DATASETS if CATALOG.datasets[d].links])
def test_a_dataset_page_lists_its_files_in_the_standards(anonymous, dataset_id):
    page = page_of(get(anonymous, f"/catalog/{dataset_id}"))
    assert "มาตรฐาน" in page.words and "Standards" in page.words
    for link in CATALOG.datasets[dataset_id].links:
        assert link.path in page.links
        assert link.title_th in page.words and link.format in page.words
        assert not link.standard or link.standard in page.links


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_the_schema_org_json_ld_names_every_distribution(anonymous, dataset_id):
    dataset = CATALOG.datasets[dataset_id]
    page = page_of(get(anonymous, f"/catalog/{dataset_id}"))
    (block,) = page.jsonld
    document = json.loads(block)
    assert document["@context"] == "https://schema.org/" and document["@type"] == "Dataset"
    assert document["identifier"] == dataset_id
    assert document["url"] == f"{anonymous.url}/catalog/{dataset_id}"
    assert document["name"] == dataset.title_th and document["alternateName"] == dataset.title_en
    assert document["keywords"] == list(dataset.tags)
    assert document["isAccessibleForFree"] is True
    assert document["publisher"]["@type"] == "Organization"
    assert document["publisher"]["name"] == CATALOG.organisations[dataset.organisation].title_th
    first, last = (int(y) - 543 for y in (dataset.first_year_of_data, dataset.last_year_of_data))
    assert document["temporalCoverage"] == f"{first}/{last}"
    assert {(d["contentUrl"], d["encodingFormat"]) for d in document["distribution"]} == {
        (f"{anonymous.url}/download/{dataset_id}/{r.name}.{f}", MEDIA_TYPES[f])
        for r in dataset.resources
        for f in r.formats
    } | {(f"{anonymous.url}{link.path}", link.media_type) for link in dataset.links}
    assert all(d["@type"] == "DataDownload" for d in document["distribution"])


def test_the_pages_run_no_script_and_load_only_their_own_style_sheet(anonymous):
    for path in ("/catalog", f"/catalog/{DATASETS[0]}", "/catalog/no-such-dataset"):
        response = get(anonymous, path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert all(s.get("type") == "application/ld+json" for s in Page(response.text).scripts)
    assert "script-src" not in CONTENT_SECURITY_POLICY  # so default-src 'none' runs none
    css = get(anonymous, "/catalog/static/catalog.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "http" not in css.text  # no font or image from elsewhere


def test_the_list_shows_every_dataset_and_searches_titles_notes_and_tags(anonymous):
    everything = page_of(get(anonymous, "/catalog"))
    for dataset_id in DATASETS:
        assert f"/catalog/{dataset_id}" in everything.links
    dataset = CATALOG.datasets[DATASETS[0]]
    for words in (dataset.title_en.upper(), dataset.notes_th.split()[0], dataset.tags[-1]):
        found = page_of(get(anonymous, "/catalog", q=words))
        expected = search(CATALOG.datasets.values(), words)
        assert dataset in expected
        assert {link for link in found.links if _is_dataset_link(link)} == {
            f"/catalog/{d.id}" for d in expected
        }
    nothing = page_of(get(anonymous, "/catalog", q=f"{dataset.title_en} zzz-no-such-word"))
    assert not [link for link in nothing.links if _is_dataset_link(link)]
    assert "No dataset matches." in nothing.words


@pytest.mark.parametrize("organisation", sorted(CATALOG.organisations))
def test_the_organisation_filter_lists_that_organisations_datasets_only(anonymous, organisation):
    page = page_of(get(anonymous, "/catalog", organization=organisation))
    assert {link for link in page.links if _is_dataset_link(link)} == {
        f"/catalog/{d.id}" for d in CATALOG.datasets.values() if d.organisation == organisation
    }
    assert (
        f'<option value="{organisation}" selected>'
        in get(anonymous, "/catalog", organization=organisation).text
    )


def test_an_unknown_dataset_is_a_404_page_linking_back(anonymous):
    response = get(anonymous, "/catalog/no-such-dataset")
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = Page(response.text)
    assert "no-such-dataset" in page.words and "/catalog" in page.links


def test_the_root_goes_to_the_catalogue_which_links_to_graphiql(anonymous):
    response = anonymous.client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/catalog"
    assert "/graphql" in page_of(get(anonymous, "/catalog")).links


def test_graphiql_opens_with_the_linked_query_in_its_editor(anonymous):
    resource = CATALOG.datasets[DATASETS[0]].resources[0]
    link = next(
        link
        for link in page_of(get(anonymous, f"/catalog/{DATASETS[0]}")).links
        if link.startswith("/graphql?query=")
    )
    browser = anonymous.client.get(link, headers={"accept": "text/html,*/*;q=0.8"})
    assert browser.status_code == 200 and browser.headers["content-type"].startswith("text/html")
    # The page's script fills the editor from `query` (tests/http/test_graphiql.py follows
    # this link in a browser and reads the editor).
    assert 'parameters.get("query")' in browser.text
    assert unquote(link.split("=", 1)[1]) == resource.query.strip()
    # A client asking for JSON still gets the answer.
    answer = anonymous.client.get(link, headers={"accept": "text/html, application/json"})
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["data"] is not None


def test_a_title_holding_markup_is_shown_escaped(db, traffy_url, tmp_path: Path):
    hostile = '</script><script>alert("x")</script> & <b>bold</b>'
    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    dataset_id = DATASETS[0]
    original = CATALOG.datasets[dataset_id].title_en
    assert text.count(f'title_en = "{original}"') == 1
    catalog_file = tmp_path / "catalog.toml"
    catalog_file.write_text(
        text.replace(f'title_en = "{original}"', f"title_en = {json.dumps(hostile)}"),
        encoding="utf-8",
    )
    server, gateway = start_gateway(settings_for(db, traffy_url, catalog_file=str(catalog_file)))
    try:
        listing = gateway.client.get("/catalog").text
        page = gateway.client.get(f"/catalog/{dataset_id}").text
    finally:
        gateway.client.close()
        server.stop()
    escaped = "&lt;/script&gt;&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
    for html in (listing, page):
        assert escaped in html
        assert "<script>alert" not in html and "<b>bold" not in html
    parsed = Page(page)
    assert len(parsed.scripts) == 1  # the JSON-LD block, not broken out of
    assert json.loads(parsed.jsonld[0])["alternateName"] == hostile
    assert hostile in parsed.words


def _is_dataset_link(link: str) -> bool:
    path = urlsplit(link).path
    return path.startswith("/catalog/") and path.count("/") == 2 and "." not in path
