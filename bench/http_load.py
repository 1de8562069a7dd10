"""A closed-loop HTTP/1.1 load client light enough not to be the bottleneck.

Each of ``concurrency`` connections sends a request, reads the whole response, checks it and
sends the next, for ``seconds``. Requests are encoded once, before the clock starts, and a
response is read by its Content-Length: measured against a one-line endpoint, the client
spends ~1/15 of the CPU httpx spends per request — on a small machine shared with the server,
that difference decides whether the server or the client is measured.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

from gateway.http.media_types import CLIENT_ACCEPT


@dataclass
class Result:
    requests: int  # answers received, error answers included
    seconds: float
    latencies: list[float]  # of every answer
    errors: Counter[str] = field(default_factory=Counter)  # error answers by code
    failed: int = 0  # answers that carried at least one error

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    @property
    def good_throughput(self) -> float:
        """Answers without an error, per second."""
        return (self.requests - self.failed) / self.seconds

    def percentile(self, p: float) -> float:
        """The latency below which a fraction ``p`` of the requests fell, in milliseconds
        (nearest rank; NaN when nothing was answered)."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(len(ordered) * p) - 1))] * 1000


class BadResponse(Exception):
    pass


def encode_get(url: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    return _encode("GET", url, path, b"", headers or {})


def encode_graphql(
    url: str, query: str, variables: dict | None = None, headers: dict[str, str] | None = None
) -> bytes:
    body = orjson.dumps({"query": query, "variables": variables})
    # A GraphQL-over-HTTP client's Accept: a request error is a 4xx, which stops the load.
    sent = {"content-type": "application/json", "accept": CLIENT_ACCEPT, **(headers or {})}
    return _encode("POST", url, "/graphql", body, sent)


def encode_post(url: str, payload: object, path: str = "/graphql") -> bytes:
    """A POST of ``payload`` as JSON (any GraphQL request body: ``documentId`` instead of
    ``query``, extensions...)."""
    return _encode("POST", url, path, orjson.dumps(payload), {"content-type": "application/json"})


def _encode(method: str, url: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    host = urlsplit(url).netloc
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line[15:])
    if length is None:
        raise BadResponse(f"no content-length in {head[:200]!r}")
    return status, await reader.readexactly(length)


def graphql_ok(status: int, body: bytes) -> bool:
    return status == 200 and b'"errors"' not in body


def graphql_error_codes(status: int, body: bytes) -> list[str]:
    """The distinct ``extensions.code`` values of an answer's errors, sorted; empty for a
    clean answer. An error without a code counts as ``NO_CODE``; a failed answer without
    GraphQL errors (or not JSON at all) as ``HTTP <status>``."""
    if graphql_ok(status, body):
        return []
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [f"HTTP {status}"]
    errors = document.get("errors") if isinstance(document, dict) else None
    if not errors:
        return [] if status == 200 else [f"HTTP {status}"]
    return sorted({(e.get("extensions") or {}).get("code") or "NO_CODE" for e in errors})


Tally = Callable[[int, bytes], list[str]]


async def load(
    url: str,
    requests: Sequence[bytes],
    seconds: float,
    concurrency: int,
    ok=lambda status, body: status == 200,
    tally: Tally | None = None,
) -> Result:
    """Run the closed loop; the requests are sent in turn, each connection taking the next.

    Without ``tally`` a wrong answer (``ok`` false) stops the run with ``BadResponse``; with
    it, every answer counts and ``tally`` names its error codes (``graphql_error_codes``),
    counted in ``Result.errors``: for loads where some error answers are the finding."""
    target = urlsplit(url)
    turn = itertools.count()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    failed = 0
    stop_at = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection(target.hostname, target.port)
        try:
            while time.perf_counter() < stop_at:
                began = time.perf_counter()
                writer.write(requests[next(turn) % len(requests)])
                status, body = await read_response(reader)
                if tally is not None:
                    codes = tally(status, body)
                    failed += bool(codes)
                    errors.update(codes)
                elif not ok(status, body):
                    raise BadResponse(f"{status}: {body[:200]!r}")
                latencies.append(time.perf_counter() - began)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return Result(len(latencies), time.perf_counter() - began, latencies, errors, failed)
