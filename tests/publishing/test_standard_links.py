"""Every link of the shipped catalogue (a dataset's files in the transparency standards) is a
path the gateway serves: asked over HTTP from a running gateway, each answers 200 with the
media type the catalogue gives. Cases are generated from the catalogue file."""

from __future__ import annotations

import pytest
from starlette.routing import Match

from gateway.http.app import create_app
from policies.catalog import load_catalog
from support import Gateway, settings_for

CATALOG = load_catalog()
LINKS = [(d, link) for d in CATALOG.datasets.values() for link in d.links]


@pytest.fixture(scope="module")
def served(db, traffy_url) -> set[str]:
    """The links the app has a route for (built, not started): tells a link to an endpoint
    this build has not got yet (skipped) from one to a path nothing serves (a failure)."""
    app = create_app(settings_for(db, traffy_url))
    return {
        link.path
        for _dataset, link in LINKS
        if any(
            route.matches({"type": "http", "path": link.path, "method": "GET"})[0] == Match.FULL
            for route in app.routes
        )
    }


def test_the_shipped_catalogue_links_to_every_standard():
    prefixes = {link.path.split("/")[1] for _dataset, link in LINKS}
    assert prefixes == {"ocds", "oc4ids", "fiscal"}


@pytest.mark.parametrize(("dataset", "link"), LINKS, ids=[link.path for _d, link in LINKS])
def test_each_link_answers_200_with_its_media_type(
    anonymous: Gateway, served: set[str], dataset, link
):
    if link.path.startswith("/ocds/") and link.path not in served:
        pytest.skip("the OCDS endpoints are not in this build")
    with anonymous.client.stream("GET", link.path, timeout=120) as response:
        assert response.status_code == 200, (dataset.id, link.path, response.read()[:300])
        assert response.headers["content-type"].split(";")[0] == link.media_type
