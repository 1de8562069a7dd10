"""Content negotiation: the media type an answer is encoded in, and the status codes it carries.

GraphQL over HTTP (the spec's draft of May 2025, which the ``graphql-http`` audit checks)
answers in one of two media types, and each has its own use of HTTP status codes:

* ``application/graphql-response+json``: the status says how the request went. A request
  error — a document that does not parse or validate, variables that do not fit, an
  operation limit, a reject-mode denial — answers 4xx (400; 403 for a denial) with no
  ``data``; once execution began the answer is 200, partial data and field errors included.
* ``application/json`` (clients from before the spec): every answer to a well-formed
  request is 200 with its errors in the body, since a 4xx could have come from any proxy
  on the way. A request that is not a GraphQL request at all (invalid JSON, no ``query``,
  too large, the wrong content type) keeps its 4xx under both types; a server-side failure
  (5xx), authentication (401) and the rate limit (429) keep theirs too.

``Accept`` is read as RFC 9110 s.12.5.1 says: each media range with its ``q`` (a missing
one is 1, ``q=0`` refuses the type), the most specific range matching a type deciding its
``q`` (``application/json`` over ``application/*`` over ``*/*``). The type with the highest
``q`` is chosen; on a tie the more specific match, then the one listed first, then the
server's order of preference (``application/json`` for a bare ``*/*``, as clients that name
no GraphQL type expect). No ``Accept`` header means the server's first type; a header that
accepts none of them is answered 406 ``NOT_ACCEPTABLE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from gateway import errors

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = errors.JSON
# What the spec tells a client that does not know the server to send.
CLIENT_ACCEPT = f"{GRAPHQL_RESPONSE}, {JSON};q=0.9"


@dataclass(frozen=True)
class MediaRange:
    """One element of ``Accept``: ``type/subtype``, its ``q`` and its place in the header."""

    type: str
    subtype: str
    q: float
    position: int

    def specificity(self, media_type: str) -> int:
        """How closely this range names ``media_type``: 2 exactly, 1 ``type/*``, 0 ``*/*``;
        -1 when it does not match."""
        kind, _, sub = media_type.partition("/")
        if self.type == "*":
            return 0
        if self.type != kind:
            return -1
        if self.subtype == "*":
            return 1
        return 2 if self.subtype == sub else -1


def parse_accept(header: str) -> list[MediaRange]:
    """The media ranges of an ``Accept`` header; a malformed element is left out."""
    ranges = []
    for position, element in enumerate(header.split(",")):
        name, *params = (part.strip() for part in element.split(";"))
        kind, slash, sub = name.lower().partition("/")
        if not slash or not kind or not sub or (kind == "*" and sub != "*"):
            continue
        q = _q(params)
        if q is not None:
            ranges.append(MediaRange(kind, sub, q, position))
    return ranges


def _q(params: list[str]) -> float | None:
    """The ``q`` parameter (1 without one); None when it is not a qvalue (0 to 1)."""
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return None
            return q if 0 <= q <= 1 else None
    return 1.0


def negotiate(accept: str | None, offers: Sequence[str]) -> str | None:
    """The type of ``offers`` (in the server's order of preference) to answer ``accept``
    with; the first when there is no ``Accept``; None when the header accepts none."""
    if accept is None or not accept.strip():
        return offers[0]
    ranges = parse_accept(accept)
    best: tuple[Any, ...] | None = None
    chosen = None
    for preference, offer in enumerate(offers):
        matches = [(r.specificity(offer), r) for r in ranges if r.specificity(offer) >= 0]
        if not matches:
            continue
        specificity, match = max(matches, key=lambda m: (m[0], -m[1].position))
        if match.q <= 0:
            continue
        rank = (match.q, specificity, -match.position, -preference)
        if best is None or rank > best:
            best, chosen = rank, offer
    return chosen


@dataclass(frozen=True)
class Answer:
    """How a GraphQL answer is encoded: its media type, and the statuses that type uses."""

    media_type: str

    @property
    def content_type(self) -> str:
        if self.media_type == GRAPHQL_RESPONSE:
            return f"{GRAPHQL_RESPONSE}; charset=utf-8"
        return self.media_type

    def status(self, status: int) -> int:
        """The status of an operation's outcome (``status``, as the executor decided it,
        in the GraphQL response type's terms) under this media type."""
        if self.media_type == JSON and 400 <= status < 500:
            return 200
        return status

    def response(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        encoded = body if isinstance(body, bytes) else orjson.dumps(body)
        response = Response(encoded, status_code=status, headers=headers)
        response.headers["content-type"] = self.content_type
        return response

    def refusal(self, refusal: errors.GatewayError) -> Response:
        """A request refused before any operation ran: its own status under either type."""
        return self.response({"errors": [refusal.entry()]}, refusal.status, refusal.headers)


LEGACY = Answer(JSON)
GRAPHQL_ANSWERS = (JSON, GRAPHQL_RESPONSE)  # a bare */* gets the legacy type


def graphql_answer(accept: str | None) -> Answer:
    """The answer ``accept`` asks for; ``NotAcceptable`` (406) when it accepts neither type."""
    chosen = negotiate(accept, GRAPHQL_ANSWERS)
    if chosen is None:
        raise errors.NotAcceptable(
            f"answers are {GRAPHQL_RESPONSE} or {JSON}; Accept names neither",
            offered=list(GRAPHQL_ANSWERS),
        )
    return Answer(chosen)
