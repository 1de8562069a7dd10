"""Every publishing endpoint, in one list the app mounts (each module contributes its own)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.publishing import dcat, ocds
from gateway.publishing.publication import Publication


def routes(publication: Publication) -> list[BaseRoute]:
    return [
        *dcat.routes(publication),  # before /catalog/{dataset}: its paths end .jsonld/.ttl
        *ocds.routes(publication),
    ]
