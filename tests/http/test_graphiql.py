"""GraphiQL on a closed network: the page and its assets as served, then the page in a real
browser (the system's headless Chromium, driven by Playwright) that may reach nothing but
the gateway on 127.0.0.1.

In the browser a user types a query, runs it and reads the answer; pastes a token into the
headers editor and reads what that token may see; finds the gateway's bilingual
descriptions in the docs pane and its fields in the explorer; and follows the catalogue's
"try it in GraphiQL" link. No request may leave for another host (each is refused and
counted) and the page may log no error (a Content-Security-Policy refusal is one). The
browser tests skip, with the reason, where no Chromium is installed (``tests/conftest.py``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest

from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.embedded import DatabaseUrls
from gateway.http.app import create_app
from gateway.http.graphiql import ASSET_CACHE, ASSETS_PATH, HERE, SCRIPTS, STATIC, STYLES
from schema import graphql_schema
from support import Gateway, LoopbackPage, bearer, settings_for

HTML = {"accept": "text/html"}
QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .CodeMirror:visible"  # the variables' is hidden
RESULT = ".result-window .CodeMirror"
EXECUTE = "button[aria-label^='Execute query']"
# One parcel's title-deed number: internal data, FORBIDDEN to anonymous callers, readable
# with a partner's token (tax:read, clearance internal).
PARCEL = '{ parcel(id: "1") { id titleDeedNumber } }'


def _page_assets(page: str) -> list[tuple[str, str]]:
    """(address, integrity) of every script and style sheet the page loads."""
    return re.findall(r'(?:src|href)="([^"]+)" integrity="([^"]+)"', page)


def _policy(response: httpx.Response) -> dict[str, list[str]]:
    return {
        name: values
        for name, *values in (
            d.split() for d in response.headers["content-security-policy"].split(";")
        )
    }


# ---------------------------------------------------------------------------- as served


def test_the_page_loads_only_assets_the_gateway_serves_itself(anonymous: Gateway):
    page = anonymous.client.get("/graphql", headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = _page_assets(page.text)
    assert [url for url, _ in assets] == [f"{ASSETS_PATH}/{name}" for name in STYLES + SCRIPTS], (
        "the page loads its style sheets, then its scripts, all from this gateway"
    )
    # No address of another host anywhere in the page (a CDN, a font service).
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page.text)
    for url, integrity in assets:
        served = anonymous.client.get(url)
        assert served.status_code == 200, url
        kind = "text/javascript" if url.endswith(".js") else "text/css"
        assert served.headers["content-type"] == f"{kind}; charset=utf-8", url
        assert served.headers["cache-control"] == ASSET_CACHE, url
        # What is served is what the page pins (subresource integrity) ...
        digest = base64.b64encode(hashlib.sha384(served.content).digest()).decode()
        assert integrity == f"sha384-{digest}", url
        # ... and what the package ships, byte for byte.
        assert served.content == (STATIC / url.removeprefix(f"{ASSETS_PATH}/")).read_bytes()


def test_assets_are_gzipped_for_browsers_that_accept_it(anonymous: Gateway):
    url = f"{ASSETS_PATH}/{SCRIPTS[2]}"  # GraphiQL's bundle, the largest
    with anonymous.client.stream("GET", url, headers={"accept-encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "accept-encoding"
    assert gzip.decompress(raw) == (STATIC / SCRIPTS[2]).read_bytes()
    assert len(raw) < len(gzip.decompress(raw)) / 3
    plain = anonymous.client.get(url, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == (STATIC / SCRIPTS[2]).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "graphiql-3.8.3/LICENSE",  # beside the assets, but not one the page loads
        "graphiql-9.9.9/graphiql.min.js",  # another version
        "build.sh",
        "..%2F..%2Fgraphiql.py",
        "../../../pyproject.toml",
    ],
)
def test_only_the_assets_the_page_names_are_served(anonymous: Gateway, path: str):
    response = anonymous.client.get(f"{ASSETS_PATH}/{path}")
    assert response.status_code == 404
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert response.headers["cache-control"] == "no-store"


def test_the_policy_allows_this_origin_only(anonymous: Gateway):
    policy = _policy(anonymous.client.get("/graphql", headers=HTML))
    sources = [source for values in policy.values() for source in values]
    assert not [s for s in sources if "." in s and not s.startswith("'sha256-")], (
        "no host other than this origin ('self') may be named"
    )
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"][0] == "'self'" and len(policy["script-src"]) == 2
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["connect-src"] == ["'self'"]


def test_each_shipped_package_carries_its_licence_and_is_named_in_the_notice():
    readme = (STATIC / "README.md").read_text(encoding="utf-8")
    for name in SCRIPTS + STYLES:
        folder = (STATIC / name).parent
        assert (folder / "LICENSE").read_text().startswith("MIT License"), folder.name
        package, version = folder.name.rsplit("-", 1)
        assert f"| {version} |" in readme and package in readme, folder.name


def test_a_wheel_carries_the_page_its_assets_and_their_licences():
    """Every file the page needs matches the package data of pyproject.toml (a non-editable
    install, checked by hand with ``pip install .`` into a fresh venv, carries them)."""
    pyproject = tomllib.loads((HERE.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["gateway.http"]
    needed = ["templates/graphiql.html", "static/graphiql/README.md"] + [
        f"static/graphiql/{name}" for name in SCRIPTS + STYLES
    ]
    needed += [f"static/graphiql/{Path(n).parent}/LICENSE" for n in SCRIPTS + STYLES]
    for name in needed:
        assert (HERE / name).is_file(), name
        assert any(fnmatch(name, p) for p in patterns), f"{name} is not package data"


def test_without_graphiql_no_asset_is_served(db: DatabaseUrls, traffy_url: str):
    app = create_app(settings_for(db, traffy_url, graphiql=False))
    assert not [r for r in app.routes if getattr(r, "path", "").startswith(ASSETS_PATH)]


# ---------------------------------------------------------------------------- in a browser


def _editor_value(browser: LoopbackPage, selector: str) -> str:
    value = browser.page.eval_on_selector(selector, "e => e.CodeMirror.getValue()")
    assert isinstance(value, str)
    return value


def _run(browser: LoopbackPage, marker: str) -> dict:
    """Presses the run button and reads the answer from the result pane, once it shows
    ``marker`` (no string is evaluated in the page: its policy forbids eval)."""
    page = browser.page
    page.click(EXECUTE)
    page.wait_for_selector(f"{RESULT} .CodeMirror-code:has-text('{marker}')")
    return json.loads(_editor_value(browser, RESULT))


def _open(browser: LoopbackPage, gateway: Gateway, path: str = "/graphql") -> None:
    browser.page.goto(gateway.url + path)
    browser.page.wait_for_selector(QUERY_EDITOR)


def _closed_network_and_no_errors(browser: LoopbackPage) -> None:
    assert browser.refused == [], "the page asked for something beyond the gateway"
    assert browser.errors == [], browser.errors


def test_a_typed_query_runs_and_its_answer_shows(loopback_page: LoopbackPage, anonymous):
    served: list[str] = []
    loopback_page.page.on("response", lambda r: served.append(f"{r.status} {urlsplit(r.url).path}"))
    _open(loopback_page, anonymous)
    page = loopback_page.page
    page.click(QUERY_EDITOR)
    page.keyboard.press("Control+A")
    # Typed key by key: the editor closes brackets and quotes itself, and types over them.
    page.keyboard.type('{ district(code: "1001") { code nameTh nameEn } }')
    assert _editor_value(loopback_page, QUERY_EDITOR) == (
        '{ district(code: "1001") { code nameTh nameEn } }'
    )
    answer = _run(loopback_page, "nameEn")
    expected = anonymous.query('{ district(code: "1001") { code nameTh nameEn } }')
    assert answer == {"data": expected}
    assert expected["district"]["nameEn"] == "Khet Phra Nakhon"
    # Every asset came from the gateway (the page's own address, with a query as it edits).
    assert {f"200 {ASSETS_PATH}/{name}" for name in SCRIPTS + STYLES} <= set(served)
    _closed_network_and_no_errors(loopback_page)


def test_a_token_pasted_in_the_headers_editor_is_sent(
    loopback_page: LoopbackPage, anonymous, issuer: EmbeddedIssuer
):
    token = issuer.issue("partner", "utility-partner", "tax:read", "internal", purpose="research")
    expected = anonymous.acting_as(bearer(token)).query(PARCEL)
    assert expected["parcel"]["titleDeedNumber"]
    _open(loopback_page, anonymous, "/graphql?query=" + quote(PARCEL))
    page = loopback_page.page
    anonymous_answer = _run(loopback_page, "FORBIDDEN")
    assert anonymous_answer["data"]["parcel"]["titleDeedNumber"] is None

    page.click("button:text-is('Headers')")
    page.click(HEADERS_EDITOR)
    page.keyboard.type('{"Authorization": "Bearer ')
    page.keyboard.insert_text(token)  # pasted
    page.keyboard.type('"}')
    assert json.loads(_editor_value(loopback_page, HEADERS_EDITOR)) == {
        "Authorization": f"Bearer {token}"
    }
    answer = _run(loopback_page, expected["parcel"]["titleDeedNumber"])
    assert answer == {"data": expected}
    # The token is neither in the address nor kept for the next visit.
    assert token not in page.url
    assert not any(token in v for v in page.evaluate("() => Object.values(localStorage)"))
    _closed_network_and_no_errors(loopback_page)


def test_the_docs_and_the_explorer_show_the_schema(loopback_page: LoopbackPage, anonymous):
    query_type = graphql_schema().query_type
    assert query_type is not None
    described = query_type.fields["districts"].description
    assert described and " / " in described  # Thai / English
    _open(loopback_page, anonymous, "/graphql?query=" + quote('{ parcel(id: "1") { id } }'))
    page = loopback_page.page

    page.click("button[aria-label='Show Documentation Explorer']")
    page.click(".graphiql-doc-explorer a:text-is('Query')")
    page.wait_for_selector(f".graphiql-doc-explorer :text-is('{described}')")

    page.click("button[aria-label='Show GraphiQL Explorer']")
    explorer = page.wait_for_selector(".graphiql-plugin .graphiql-explorer-root")
    assert explorer is not None
    listed = explorer.inner_text().split()
    assert {"districts", "parcels", "complaints"} <= set(listed)
    # The query's field is open, with the fields this caller's introspection shows: an
    # internal one is left out.
    assert "titleDeedType" in listed and "titleDeedNumber" not in listed
    _closed_network_and_no_errors(loopback_page)


def test_the_catalogues_link_opens_its_query_in_the_editor(loopback_page: LoopbackPage, anonymous):
    catalog = anonymous.client.get("/catalog").text
    dataset = re.findall(r'href="(/catalog/[a-z0-9-]+)"', catalog)[0]
    link = re.findall(r'href="(/graphql\?query=[^"]+)"', anonymous.client.get(dataset).text)[0]
    link = link.replace("&amp;", "&")
    _open(loopback_page, anonymous, link)
    linked = httpx.QueryParams(urlsplit(link).query)["query"]
    assert _editor_value(loopback_page, QUERY_EDITOR) == linked
    # An older link's `q` opens too.
    _open(loopback_page, anonymous, "/graphql?q=" + quote(PARCEL))
    assert _editor_value(loopback_page, QUERY_EDITOR) == PARCEL
    _closed_network_and_no_errors(loopback_page)


def test_the_build_script_names_the_versions_the_page_loads():
    script = (STATIC / "build.sh").read_text(encoding="utf-8")
    pinned = dict(re.findall(r"^([A-Z_]+)=([0-9.]+)", script, re.MULTILINE))
    folders = {Path(name).parent.name for name in SCRIPTS + STYLES}
    assert folders == {
        f"react-{pinned['REACT']}",
        f"react-dom-{pinned['REACT']}",
        f"graphiql-{pinned['GRAPHIQL']}",
        f"plugin-explorer-{pinned['EXPLORER']}",
    }
