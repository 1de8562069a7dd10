"""Every publishing endpoint, in one list the app mounts (each module contributes its own)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.publishing import downloads
from gateway.publishing.publication import Publication


def routes(publication: Publication) -> list[BaseRoute]:
    return [*downloads.routes(publication)]
