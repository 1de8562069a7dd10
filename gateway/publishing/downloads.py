"""Bulk downloads: ``/download/<dataset>/<resource>.<csv|json|jsonl|geojson>``.

A file is the resource's rows (``Tables.rows``: the anonymous principal's plan, through the
executor, its limits and caches), encoded row by row and streamed, so a table of any size
passes through in the memory of one page. UTF-8 everywhere; CSV opens with a byte-order mark
(Excel then reads Thai correctly), a list value is its items joined by ``"; "``, no value an
empty cell. Gzip when the client accepts it, compressed as it streams.

Validators. A strong ``ETag`` is the SHA-256 of the file's bytes, known only once the whole
file has been produced, so it is sent only with a file served from a produced copy:

- a copy younger than the response cache's TTL (``BMA_CACHE_TTLS`` ``response``) is served
  from disk with its ``ETag`` and ``Last-Modified`` (when those bytes were first produced);
- with no fresh copy, a conditional request (``If-None-Match``/``If-Modified-Since``: a
  harvester's) has the file produced to disk first, then answered ``304`` if unchanged;
- any other request is streamed as it is produced, with ``Last-Modified`` the time its rows
  were read (no ``ETag``: the bytes are not known yet); the copy it leaves is served next.

Failures. A source failing before the first byte answers ``503 DATASET_UNAVAILABLE``; after
streaming started the connection is aborted (no closing chunk), so the client sees a broken
transfer, never a valid short file. A failed production leaves no copy.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import shutil
import tempfile
import time
import uuid
import weakref
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway import errors
from gateway.publishing.publication import Publication, requester
from gateway.publishing.tables import Row
from policies.catalog import Dataset, Resource

log = logging.getLogger("gateway.publishing.downloads")

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "jsonl": "application/jsonl; charset=utf-8",
    "geojson": "application/geo+json",
}
BOM = "\ufeff".encode()
LIST_SEPARATOR = "; "
CHUNK = 64 * 1024  # encoded rows are sent in chunks of about this size
GZIP_LEVEL = 6


class DownloadAborted(Exception):
    """Raised into the server after the first byte: it closes the connection unfinished."""


# ---------------------------------------------------------------------------- encoders


def csv_cell(value: Any) -> str:
    """A value as a CSV cell: lists joined by ``"; "``, booleans ``true``/``false``, no value
    empty, an object as its JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return LIST_SEPARATOR.join(csv_cell(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


def _csv(resource: Resource) -> Encoder:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: Iterable[Any]) -> bytes:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue().encode()

    names = resource.output_columns
    return Encoder(
        head=BOM + line(names),
        row=lambda row, _first: line(csv_cell(row.get(n)) for n in names),
        tail=b"",
    )


def _json(_resource: Resource) -> Encoder:
    return Encoder(
        head=b"[",
        row=lambda row, first: (b"\n" if first else b",\n") + orjson.dumps(row),
        tail=b"\n]\n",
    )


def _jsonl(_resource: Resource) -> Encoder:
    return Encoder(head=b"", row=lambda row, _first: orjson.dumps(row) + b"\n", tail=b"")


def _geojson(resource: Resource) -> Encoder:
    assert resource.geometry is not None  # the catalogue offers geojson only with it
    lat, lon = resource.geometry

    def feature(row: Row, first: bool) -> bytes:
        point = row.get(lat), row.get(lon)
        geometry = (
            {"type": "Point", "coordinates": [point[1], point[0]]} if None not in point else None
        )
        properties = {k: v for k, v in row.items() if k not in (lat, lon)}
        body = {"type": "Feature", "geometry": geometry, "properties": properties}
        return (b"\n" if first else b",\n") + orjson.dumps(body)

    return Encoder(head=b'{"type":"FeatureCollection","features":[', row=feature, tail=b"\n]}\n")


@dataclass(frozen=True)
class Encoder:
    head: bytes
    row: Callable[[Row, bool], bytes]  # a row's bytes (is it the first row?)
    tail: bytes


ENCODERS: dict[str, Callable[[Resource], Encoder]] = {
    "csv": _csv,
    "json": _json,
    "jsonl": _jsonl,
    "geojson": _geojson,
}


async def encode(
    resource: Resource, fmt: str, rows: AsyncIterator[Row], first: Row | None
) -> AsyncIterator[bytes]:
    """The file's bytes, in chunks of about CHUNK bytes, from ``first`` (already taken from
    ``rows``, so a failure before it is a refusal, not a broken file) and the rest."""
    encoder = ENCODERS[fmt](resource)
    parts = [encoder.head]
    size = len(encoder.head)
    if first is not None:
        parts.append(encoder.row(first, True))
        size += len(parts[-1])
        async for row in rows:
            parts.append(encoder.row(row, False))
            size += len(parts[-1])
            if size >= CHUNK:
                yield b"".join(parts)
                parts, size = [], 0
    parts.append(encoder.tail)
    yield b"".join(parts)


async def gzipped(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: the gzip container
    async for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


async def _file_chunks(file: BinaryIO) -> AsyncIterator[bytes]:
    with file:
        while chunk := file.read(CHUNK):
            yield chunk


# ---------------------------------------------------------------------------- produced copies


@dataclass(frozen=True)
class Produced:
    """A whole file produced once: where its bytes are (while fresh), their hash, when those
    bytes were first produced (Last-Modified) and when this copy was made."""

    path: Path | None
    digest: str
    first_seen: datetime
    made_at: float  # monotonic

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


class Copies:
    """The last produced copy of each file, on disk in a directory of the process's own."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.directory = Path(tempfile.mkdtemp(prefix="bma-downloads-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.directory, True)
        self._last: dict[str, Produced] = {}

    def fresh(self, key: str) -> Produced | None:
        found = self._last.get(key)
        if found is None or found.path is None or self.clock() - found.made_at >= self.ttl:
            return None
        return found

    def spool(self) -> Spool:
        return Spool(self.directory / f"part-{uuid.uuid4().hex}")

    def keep(self, key: str, spool: Spool, started: datetime) -> Produced:
        """Record a finished file: its bytes kept while fresh (or dropped when the TTL is 0),
        Last-Modified carried over when they equal the previous copy's."""
        digest = spool.digest()
        previous = self._last.get(key)
        first_seen = (
            previous.first_seen if previous is not None and previous.digest == digest else started
        )
        path = self.directory / f"{key}-{digest}"
        os.replace(spool.path, path)
        if previous is not None and previous.path is not None and previous.path != path:
            previous.path.unlink(missing_ok=True)
        produced = Produced(path, digest, first_seen, self.clock())
        self._last[key] = produced
        return produced

    def release(self, key: str) -> None:
        """Drop the bytes of a copy that is not to be served again (TTL 0), keep its hash."""
        found = self._last.get(key)
        if found is not None and found.path is not None and self.ttl <= 0:
            found.path.unlink(missing_ok=True)
            self._last[key] = Produced(None, found.digest, found.first_seen, found.made_at)


class Spool:
    """A file being produced: written and hashed as its chunks pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("wb")
        self._hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)

    def digest(self) -> str:
        self._file.close()
        return self._hash.hexdigest()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- the endpoint


class Downloads:
    def __init__(self, publication: Publication) -> None:
        self.publication = publication
        self.copies = Copies(publication.tables.executor.responses.ttl)

    def routes(self) -> list[BaseRoute]:
        return [Route("/download/{dataset}/{file}", self.handle, methods=["GET"])]

    async def handle(self, request: Request) -> Response:
        try:
            return await self._answer(request)
        except errors.GatewayError as refusal:  # NOT_FOUND, DATASET_UNAVAILABLE: nothing sent yet
            return refusal.response()

    async def _answer(self, request: Request) -> Response:
        params = request.path_params
        dataset, resource, fmt = self._find(params["dataset"], params["file"])
        key = f"{resource.id}.{fmt}"
        gzip = accepts_gzip(request.headers.get("accept-encoding", ""))
        produced = self.copies.fresh(key)
        if produced is None and _conditional(request):
            produced = await self._produce(resource, fmt, key, request)
        if produced is not None:
            return self._serve(dataset, resource, fmt, produced, request, gzip)
        return await self._stream(dataset, resource, fmt, key, request, gzip)

    def _find(self, dataset_id: str, file: str) -> tuple[Dataset, Resource, str]:
        name, _, fmt = file.rpartition(".")
        dataset = self.publication.catalog.datasets.get(dataset_id)
        if dataset is None:
            raise errors.NotFound(f"no dataset {dataset_id!r} in the catalogue")
        resource = next((r for r in dataset.resources if r.name == name), None)
        if resource is None:
            raise errors.NotFound(f"dataset {dataset_id!r} has no resource {name!r}")
        if fmt not in resource.formats:
            raise errors.NotFound(
                f"resource {name!r} is offered as {', '.join(resource.formats)}, not {fmt!r}"
            )
        return dataset, resource, fmt

    async def _first(
        self, resource: Resource, request: Request
    ) -> tuple[AsyncIterator[Row], Row | None]:
        """The rows, their first one already read: a failure here is still a clean 503."""
        rows = self.publication.tables.rows(resource, *requester(request, "download"))
        return rows, await anext(rows, None)

    async def _produce(self, resource: Resource, fmt: str, key: str, request: Request) -> Produced:
        """The whole file on disk before any byte is sent (a conditional request's)."""
        started = _now()
        rows, first = await self._first(resource, request)
        spool = self.copies.spool()
        try:
            async for chunk in encode(resource, fmt, rows, first):
                spool.write(chunk)
        except BaseException:
            spool.discard()
            raise
        return self.copies.keep(key, spool, started)

    def _serve(
        self,
        dataset: Dataset,
        resource: Resource,
        fmt: str,
        produced: Produced,
        request: Request,
        gzip: bool,
    ) -> Response:
        variant = produced.etag[:-1] + '-gzip"' if gzip else produced.etag
        headers = {
            **_headers(dataset, resource, fmt, produced.first_seen, gzip),
            "etag": variant,
            "cache-control": f"public, max-age={max(0, int(self.copies.ttl))}",
        }
        if _not_modified(request, produced):
            self.copies.release(f"{resource.id}.{fmt}")
            for name in ("content-type", "content-disposition", "content-encoding"):
                headers.pop(name, None)
            return Response(status_code=304, headers=headers)
        assert produced.path is not None
        # Opened now: a newer copy may replace this one on disk while it is being sent.
        chunks = _file_chunks(produced.path.open("rb"))
        self.copies.release(f"{resource.id}.{fmt}")
        return StreamingResponse(gzipped(chunks) if gzip else chunks, headers=headers)

    async def _stream(
        self, dataset: Dataset, resource: Resource, fmt: str, key: str, request: Request, gzip: bool
    ) -> Response:
        started = _now()
        rows, first = await self._first(resource, request)  # DatasetUnavailable: a 503
        body = self._teed(resource, fmt, key, rows, first, started)
        headers = _headers(dataset, resource, fmt, started, gzip)
        headers["cache-control"] = "public, max-age=0, must-revalidate"
        return StreamingResponse(gzipped(body) if gzip else body, headers=headers)

    async def _teed(
        self,
        resource: Resource,
        fmt: str,
        key: str,
        rows: AsyncIterator[Row],
        first: Row | None,
        started: datetime,
    ) -> AsyncIterator[bytes]:
        """The file as it is produced, written beside to become the next served copy; a
        failure aborts the transfer (and leaves no copy)."""
        spool = self.copies.spool()
        try:
            async for chunk in encode(resource, fmt, rows, first):
                spool.write(chunk)
                yield chunk
        except errors.DatasetUnavailable as exc:
            spool.discard()
            log.warning("download of %s.%s aborted: %s", resource.id, fmt, exc.message)
            raise DownloadAborted(f"{resource.id}.{fmt}: {exc.message}") from None
        except BaseException:
            spool.discard()
            raise
        self.copies.keep(key, spool, started)
        self.copies.release(key)


def routes(publication: Publication) -> list[BaseRoute]:
    return Downloads(publication).routes()


# ---------------------------------------------------------------------------- HTTP details


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether ``Accept-Encoding`` admits gzip (``gzip`` or ``*``, not at ``q=0``)."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if "q=" in params else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def _conditional(request: Request) -> bool:
    return "if-none-match" in request.headers or "if-modified-since" in request.headers


def _not_modified(request: Request, produced: Produced) -> bool:
    """RFC 9110: If-None-Match (weak comparison, either encoding's tag) decides when given;
    otherwise If-Modified-Since against when these bytes were first produced."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or bool(tags & {produced.etag, produced.etag[:-1] + '-gzip"'})
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False  # an unreadable date is ignored, as RFC 9110 says
    if when.tzinfo is None:
        return False
    return produced.first_seen.replace(microsecond=0) <= when


def _headers(
    dataset: Dataset, resource: Resource, fmt: str, modified: datetime, gzip: bool
) -> dict[str, str]:
    headers = {
        "content-type": MEDIA_TYPES[fmt],
        "content-disposition": f'attachment; filename="{dataset.id}-{resource.name}.{fmt}"',
        "last-modified": format_datetime(modified, usegmt=True),
        "vary": "Accept-Encoding",
    }
    if gzip:
        headers["content-encoding"] = "gzip"
    return headers


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
