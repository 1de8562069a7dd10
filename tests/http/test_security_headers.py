"""Every answer of every route carries the security headers; the route list comes from the
app itself, so a new route is covered without editing this file.

Each route is asked with each of its methods, by an anonymous caller, by a caller whose
token is refused (a 401 made before any route runs) and, for GraphQL, as a browser (the
GraphiQL page) and with a refused document. Unknown paths and methods are asked too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from gateway.demo.embedded import DatabaseUrls
from gateway.http.app import create_app
from gateway.http.serving import BackgroundServer
from gateway.ratelimit.config import RateLimit, RateLimits
from policies.catalog import load_catalog
from support import settings_for

FORGED = {"authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}
# A value for each path parameter a route may take: a dataset of the shipped catalogue, a
# file of it, a CKAN action.
_DATASET = next(iter(load_catalog().datasets.values()))
PATH_VALUES = {
    "dataset": _DATASET.id,
    "file": f"{_DATASET.resources[0].name}.{_DATASET.resources[0].formats[0]}",
    "action": "status_show",
    "project": "oc4ids-bq4ldt-BKK-INF-2566-0001",
    "package": "budget",  # /fiscal/{package}/…
    "asset": "graphiql-3.8.3/graphiql.min.css",  # /graphql/assets/{asset}: GraphiQL's
}
# Answers that carry only public data and say themselves how long they may be kept.
PUBLICLY_CACHEABLE = {
    "/.well-known/jwks.json",
    "/download/{dataset}/{file}".format(**PATH_VALUES),
    "/graphql/assets/{asset}".format(**PATH_VALUES),
}


@pytest.fixture(scope="module")
def served(db: DatabaseUrls, traffy_url: str) -> Iterator[tuple[list[Route], httpx.Client]]:
    # A tight anonymous rate limit, so a 429 made by the rate limiter is among the answers.
    limits = RateLimits(anonymous=RateLimit(rate=0.001, burst=3))
    app = create_app(settings_for(db, traffy_url, rate_limits=limits))
    routes = [r for r in app.routes if isinstance(r, Route)]
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield routes, client


def requests_for(route: Route) -> list[dict[str, Any]]:
    """Every method of ``route``, anonymous and with a refused credential."""
    missing = set(route.param_convertors) - set(PATH_VALUES)
    assert not missing, f"{route.path}: give this test values for {missing} in PATH_VALUES"
    url = route.url_path_for(route.name, **{p: PATH_VALUES[p] for p in route.param_convertors})
    asks: list[dict[str, Any]] = []
    for method in sorted(route.methods or {"GET"}):
        body = {"json": {"query": "{ districts { code } }"}} if method == "POST" else {}
        asks.append({"method": method, "url": url, **body})
        asks.append({"method": method, "url": url, "headers": FORGED, **body})
    return asks


EXTRA_REQUESTS: list[dict[str, Any]] = [
    {"method": "GET", "url": "/graphql", "headers": {"accept": "text/html"}},  # GraphiQL
    {"method": "GET", "url": "/graphql?query=%7B%20nope%20%7D"},  # a refused document
    {"method": "POST", "url": "/graphql", "content": b"{", "headers": {"content-type": "x/y"}},
    {"method": "GET", "url": "/no-such-path"},  # 404
    {"method": "DELETE", "url": "/healthz"},  # 405
    *[{"method": "POST", "url": "/graphql", "json": {"query": "{ __typename }"}}] * 4,  # 429
]


def check(response: httpx.Response, path: str) -> None:
    where = f"{response.request.method} {response.request.url} -> {response.status_code}"
    headers = response.headers
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("x-frame-options") == "DENY", where
    policy = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy, where
    if path in PUBLICLY_CACHEABLE and response.status_code == 200:
        assert headers.get("cache-control", "").startswith("public"), where
    else:
        assert headers.get("cache-control") == "no-store", where


def test_every_answer_of_every_route_carries_the_security_headers(served):
    routes, client = served
    asks = [ask for route in routes for ask in requests_for(route)] + EXTRA_REQUESTS
    statuses = set()
    for ask in asks:
        # Headers only: a download's body (20,000 rows) is not this test's concern.
        with client.stream(**ask) as response:
            statuses.add(response.status_code)
            check(response, ask["url"])
    # The answers checked include refusals made outside any route.
    assert {200, 401, 404, 405, 429} <= statuses, statuses


def test_the_graphiql_page_may_run_only_its_own_script(db: DatabaseUrls, traffy_url: str):
    app = create_app(settings_for(db, traffy_url))
    with BackgroundServer(app) as server:
        page = httpx.get(f"{server.url}/graphql", headers={"accept": "text/html"}, timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in page.headers["content-security-policy"].split(";")
    )
    scripts = policy["script-src"].split()
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert sum(s.startswith("'sha256-") for s in scripts) == page.text.count("<script>")
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
