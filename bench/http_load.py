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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        """The latency below which a fraction ``p`` of the requests fell, in milliseconds."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


class BadResponse(Exception):
    pass


def encode_get(url: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    return _encode("GET", url, path, b"", headers or {})


def encode_graphql(
    url: str, query: str, variables: dict | None = None, headers: dict[str, str] | None = None
) -> bytes:
    body = orjson.dumps({"query": query, "variables": variables})
    return _encode(
        "POST", url, "/graphql", body, {"content-type": "application/json", **(headers or {})}
    )


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


async def load(
    url: str,
    requests: Sequence[bytes],
    seconds: float,
    concurrency: int,
    ok=lambda status, body: status == 200,
) -> Result:
    """Run the closed loop; the requests are sent in turn, each connection taking the next."""
    target = urlsplit(url)
    turn = itertools.count()
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(target.hostname, target.port)
        try:
            while time.perf_counter() < stop_at:
                began = time.perf_counter()
                writer.write(requests[next(turn) % len(requests)])
                status, body = await read_response(reader)
                if not ok(status, body):
                    raise BadResponse(f"{status}: {body[:200]!r}")
                latencies.append(time.perf_counter() - began)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return Result(len(latencies), time.perf_counter() - began, latencies)
