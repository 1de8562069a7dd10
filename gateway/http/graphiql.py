"""GraphiQL, the in-browser IDE, served at ``/graphql`` to browsers that ask for HTML, with
its scripts and style sheets served by the gateway itself, so it works on a closed network.

The assets (React, ReactDOM, GraphiQL, its explorer plugin) are the npm packages' own
browser bundles at pinned versions, shipped in the package under ``static/graphiql/`` with
their licences (``static/graphiql/README.md``; ``build.sh`` there reproduces them). Each is
served at ``/graphql/assets/<package>-<version>/<file>``: a new version is a new address,
so a browser may keep one for a year. The page names each with its subresource-integrity
hash, and its Content-Security-Policy lets scripts and style sheets come from this origin
only, plus the page's one inline script by its SHA-256; the page talks only to this origin
and may not be framed.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway import errors

HERE = Path(__file__).parent
STATIC = HERE / "static" / "graphiql"
ASSETS_PATH = "/graphql/assets"
# In the order the page loads them: React first, the plugin after GraphiQL (it reads
# window.React and window.GraphiQL).
SCRIPTS = (
    "react-18.2.0/react.production.min.js",
    "react-dom-18.2.0/react-dom.production.min.js",
    "graphiql-3.8.3/graphiql.min.js",
    "plugin-explorer-1.0.2/index.umd.js",
)
STYLES = ("graphiql-3.8.3/graphiql.min.css", "plugin-explorer-1.0.2/style.css")
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# Versioned addresses never change what they hold.
ASSET_CACHE = "public, max-age=31536000, immutable"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


@dataclass(frozen=True)
class Asset:
    name: str  # its path under static/graphiql/, and under /graphql/assets/
    body: bytes
    media_type: str

    @property
    def url(self) -> str:
        return f"{ASSETS_PATH}/{self.name}"

    @property
    def integrity(self) -> str:
        return "sha384-" + base64.b64encode(hashlib.sha384(self.body).digest()).decode()

    @property
    def gzipped(self) -> bytes:
        return _gzipped(self.name)


def asset(name: str) -> Asset | None:
    """The shipped asset called ``name``, or None: only the files the page names are served
    (not the licences, nor any other file beside them)."""
    return _read(name) if name in SCRIPTS + STYLES else None


@cache
def _read(name: str) -> Asset:
    path = STATIC / name
    return Asset(name, path.read_bytes(), MEDIA_TYPES[path.suffix])


@cache
def _gzipped(name: str) -> bytes:
    # Once per process: GraphiQL's bundle is 3.5 MB, 0.7 MB gzipped.
    return gzip.compress(_read(name).body, compresslevel=6, mtime=0)


async def graphiql_asset(request: Request) -> Response:
    item = asset(request.path_params["asset"])
    if item is None:
        return errors.NotFound(f"no GraphiQL asset at {request.url.path}").response()
    headers = {"cache-control": ASSET_CACHE, "vary": "accept-encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = await asyncio.to_thread(lambda: item.gzipped)
        headers["content-encoding"] = "gzip"
    else:
        body = item.body
    return Response(body, media_type=item.media_type, headers=headers)


@cache
def graphiql_page() -> str:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
    )
    return environment.get_template("graphiql.html").render(
        scripts=[_read(n) for n in SCRIPTS], styles=[_read(n) for n in STYLES]
    )


@cache
def graphiql_content_security_policy() -> str:
    inline = " ".join(_hashes(_INLINE_SCRIPT.findall(graphiql_page())))
    return "; ".join(
        (
            "default-src 'none'",
            # The shipped scripts (each also pinned by its integrity hash in the page) and
            # the page's own inline script; nothing from another origin.
            f"script-src 'self' {inline}",
            # Inline styles: the editor sets element styles as it draws (a style cannot run
            # code). GraphiQL's fonts are data: URLs inside its style sheet.
            "style-src 'self' 'unsafe-inline'",
            "font-src data:",
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
