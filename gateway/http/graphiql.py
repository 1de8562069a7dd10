"""GraphiQL, the in-browser IDE, served at ``/graphql`` to browsers that ask for HTML, with
the Content-Security-Policy that lets exactly this page run.

The page loads its scripts and style sheets from unpkg (pinned versions, each with its
subresource-integrity hash) and has one inline script: the policy allows it by its SHA-256, so no other inline
script runs; the page talks only to this
origin and may not be framed.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache

from starlette.responses import HTMLResponse
from strawberry.http.ides import get_graphql_ide_html

ASSETS = "https://unpkg.com"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
# The page fills its editor from the ``q`` URL parameter (which it rewrites as one edits);
# links elsewhere (the catalogue's "try it in GraphiQL") give the operation as ``query``,
# the GraphQL-over-HTTP name, so the editor takes that too.
_EDITOR_QUERY = "parameters.q || EXAMPLE_QUERY"
_EDITOR_QUERY_OR_LINKED = "parameters.q || parameters.query || EXAMPLE_QUERY"


@cache
def graphiql_page() -> str:
    page = get_graphql_ide_html(graphql_ide="graphiql")
    if page.count(_EDITOR_QUERY) != 1:  # strawberry changed its page: look again
        raise RuntimeError("GraphiQL page: cannot find where its editor reads the URL")
    return page.replace(_EDITOR_QUERY, _EDITOR_QUERY_OR_LINKED)


@cache
def graphiql_content_security_policy() -> str:
    page = graphiql_page()
    scripts = " ".join(_hashes(_INLINE_SCRIPT.findall(page)))
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {ASSETS} {scripts}",
            # Inline styles (the page's own, and any the editor adds as it draws): a style
            # cannot run code. A hash here would switch 'unsafe-inline' off.
            f"style-src {ASSETS} 'unsafe-inline'",
            f"font-src {ASSETS} data:",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def graphiql_response() -> HTMLResponse:
    return HTMLResponse(
        graphiql_page(), headers={"content-security-policy": graphiql_content_security_policy()}
    )


def _hashes(blocks: list[str]) -> list[str]:
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks
    ]
