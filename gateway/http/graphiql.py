"""GraphiQL, the in-browser IDE, served at ``/graphql`` to browsers that ask for HTML."""

from __future__ import annotations

from functools import cache

from strawberry.http.ides import get_graphql_ide_html


@cache
def graphiql_page() -> str:
    return get_graphql_ide_html(graphql_ide="graphiql")
