"""The one small protocol every upstream connector follows, and its error types.

A connector knows nothing about GraphQL: it returns plain records (dicts) and raises
``UpstreamError`` subclasses naming the source that failed. The schema layer turns those into
partial results; the gateway gives each error class its code (``gateway.errors``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from connectors.observer import QUIET, UpstreamObserver
from connectors.text import not_text

T = TypeVar("T")

Record = dict[str, Any]


class UpstreamError(Exception):
    """An upstream source could not answer. ``source`` names it (e.g. ``registry:1039``)."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
        self.district: str | None = None  # set when the source is one district's registry


class UpstreamUnavailable(UpstreamError):
    """Refused, failed, or answered something we cannot read."""


class UpstreamTimeout(UpstreamError):
    """No answer within the call's time limit."""


class InvalidCursor(ValueError):
    """A pagination cursor that this gateway did not issue."""


@dataclass(frozen=True)
class PageRequest:
    """At most ``first`` rows after the opaque position ``after`` (a key or an offset), and
    the total matching the filter when ``count`` (a SQL source skips its ``count(*)``
    otherwise; a source whose answer carries the total anyway gives it either way)."""

    first: int
    after: str | None = None
    count: bool = True


@dataclass
class Page:
    """One page of records, the total matching the filter (None: not counted, as asked),
    and whether more follow."""

    rows: list[Record]
    total: int | None
    has_next: bool
    # Sources that failed while building a fan-out page; the rows are from the others.
    failures: list[UpstreamError] = field(default_factory=list)


@dataclass(frozen=True)
class SourceHealth:
    """One source's answer to a health check, and its circuit breaker's state."""

    source: str
    ok: bool
    detail: str = ""
    breaker: str = "closed"  # "closed", "open" or "half_open" (connectors/resilience.py)


class CallCounter:
    """Counts upstream calls per source, here (tests read it) and to the observer."""

    def __init__(self, observer: UpstreamObserver = QUIET) -> None:
        self.calls: Counter[str] = Counter()
        self.observer = observer

    def record(self, source: str) -> None:
        self.calls[source] += 1
        self.observer.called(source)

    def reset(self) -> None:
        self.calls.clear()


class Connector(Protocol):
    """What the gateway needs from an upstream system."""

    name: str
    counter: CallCounter

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def health(self) -> list[SourceHealth]: ...


async def with_timeout(source: str, seconds: float, call: Awaitable[T]) -> T:
    """Await an upstream call, turning a timeout into ``UpstreamTimeout`` for ``source``."""
    try:
        return await asyncio.wait_for(call, timeout=seconds)
    except TimeoutError as exc:
        raise UpstreamTimeout(source, f"no answer within {seconds:g} s") from exc


_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def encode_cursor(kind: str, value: str | int) -> str:
    """An opaque cursor: base64url of ``kind:value`` so clients don't build their own.
    (binascii directly: base64's wrapper cost more than the rest of a row's cursor.)"""
    data = binascii.b2a_base64(f"{kind}:{value}".encode(), newline=False)
    return data.translate(_URL_SAFE).rstrip(b"=").decode("ascii")


def decode_cursor(kind: str, cursor: str) -> str:
    """The value inside a cursor of ``kind``; ``InvalidCursor`` for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidCursor("the cursor is not one this API issued") from exc
    prefix, sep, value = text.partition(":")
    # The value goes to a query as a key: only text (no NUL, which PostgreSQL refuses).
    if not sep or prefix != kind or not value or not_text(value):
        raise InvalidCursor(f"the cursor is not a {kind} cursor")
    return value


MAX_POSITION = 2**53  # larger than any row id or offset we issue; bounds what reaches SQL


def decode_position(kind: str, cursor: str | None) -> int:
    """The whole number inside a ``kind`` cursor (a row id or an offset); 0 without one."""
    if cursor is None:
        return 0
    value = decode_cursor(kind, cursor)
    if not (value.isascii() and value.isdigit() and len(value) <= 16):
        raise InvalidCursor(f"the cursor is not a {kind} cursor")
    position = int(value)
    if position > MAX_POSITION:
        raise InvalidCursor(f"the cursor is not a {kind} cursor")
    return position
