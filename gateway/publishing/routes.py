"""Every publishing endpoint, in one list the app mounts (each module contributes its own)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.publishing import ckan, dcat, downloads, fiscal, oc4ids, ocds
from gateway.publishing.pages import Pages
from gateway.publishing.publication import Publication


def routes(publication: Publication) -> list[BaseRoute]:
    return [
        *dcat.routes(publication),  # before /catalog/{dataset}: its paths end .jsonld/.ttl
        *ckan.routes(publication),
        *downloads.routes(publication),
        *oc4ids.routes(publication),
        *Pages(publication).routes(),
        *fiscal.routes(publication),
        *ocds.routes(publication),
    ]
