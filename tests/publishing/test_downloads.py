"""Bulk downloads over HTTP: every format of every resource in the catalogue equals the
anonymous GraphQL answer row for row; CSV with a BOM; gzip; validators and 304; a failing
source is a 503 before the first byte and a broken transfer after it; the 20,000-ticket CSV
streams in bounded memory."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from connectors.base import UpstreamUnavailable
from connectors.cache import DEFAULT_TTLS
from gateway.http.app import connectors_from
from gateway.http.serving import free_port
from policies.catalog import Resource, load_catalog
from published_rows import published_rows
from support import Gateway, GatewayProcess, settings_for, start_gateway

CATALOG = load_catalog()
# Every (dataset, resource, format) the catalogue offers: a new one is covered unedited.
FILES = [
    pytest.param(d.id, r, fmt, id=f"{d.id}/{r.name}.{fmt}")
    for d, r in CATALOG.resources()
    for fmt in r.formats
]


def cell(value: Any) -> str:
    """A value as docs/catalog.md says a CSV cell holds it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "; ".join(cell(v) for v in value)
    return str(value)


def parsed(resource: Resource, fmt: str, body: bytes) -> list[dict[str, Any]]:
    """The rows a file holds, as its format's reader sees them."""
    if fmt == "csv":
        assert body.startswith(b"\xef\xbb\xbf"), "no byte-order mark"
        return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    if fmt == "json":
        return orjson.loads(body)
    if fmt == "jsonl":
        assert body.endswith(b"\n")
        return [orjson.loads(line) for line in body.splitlines()]
    collection = orjson.loads(body)
    assert collection["type"] == "FeatureCollection"
    assert resource.geometry is not None
    lat, lon = resource.geometry
    rows = []
    for feature in collection["features"]:
        assert feature["type"] == "Feature"
        point = feature["geometry"]
        coordinates = point["coordinates"] if point is not None else [None, None]
        if point is not None:
            assert point["type"] == "Point"
        rows.append({**feature["properties"], lat: coordinates[1], lon: coordinates[0]})
    return rows


def _resource(dataset: str, name: str) -> Resource:
    return next(r for r in CATALOG.datasets[dataset].resources if r.name == name)


@pytest.mark.parametrize(("dataset", "resource", "fmt"), FILES)
def test_every_file_equals_the_graphql_answer_row_for_row(anonymous, dataset, resource, fmt):
    response = anonymous.client.get(f"/download/{dataset}/{resource.name}.{fmt}")
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].endswith(f'{resource.name}.{fmt}"')
    assert "utf-8" in response.headers["content-type"] or fmt != "csv"
    assert parsedate_to_datetime(response.headers["last-modified"]) <= datetime.now(UTC)
    got = parsed(resource, fmt, response.content)
    want = published_rows(anonymous, resource)
    if fmt == "csv":
        columns = list(want[0]) if want else []
        assert list(got[0]) == columns
        want = [{k: cell(v) for k, v in row.items()} for row in want]
    if fmt == "geojson":
        # Property order aside (the geometry's columns come back last), the same values.
        assert all(set(row) == set(columns) for row in got for columns in want[:1])
    assert len(got) == len(want)
    for n, (row, want_row) in enumerate(zip(got, want, strict=True)):
        assert row == want_row, f"row {n}"


def test_the_complaints_csv_holds_every_ticket_and_thai_text(anonymous, tickets):
    body = anonymous.client.get("/download/traffy-complaints/complaints.csv").content
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert len(rows) == len(tickets) == 20_000
    assert {r["ticket_id"] for r in rows} == {t["ticket_id"] for t in tickets}
    assert any("เสร็จสิ้น" == r["state_th"] for r in rows)


def test_gzip_when_asked_and_identical_once_inflated(anonymous):
    url = "/download/traffy-complaints/daily-counts.csv"
    plain = anonymous.client.get(url, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with anonymous.client.stream("GET", url, headers={"accept-encoding": "gzip"}) as response:
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["vary"] == "Accept-Encoding"
        raw = b"".join(response.iter_raw())
    assert raw[:2] == b"\x1f\x8b" and len(raw) < len(plain.content)
    assert gzip.decompress(raw) == plain.content


@pytest.fixture(scope="module")
def cached(db, traffy_url) -> Iterator[Gateway]:
    """A gateway whose response cache keeps answers (and so produced files) 300 s."""
    ttls = {**dict.fromkeys(DEFAULT_TTLS, 0), "response": 300}
    server, gw = start_gateway(settings_for(db, traffy_url, cache_ttls=ttls))
    yield gw
    gw.client.close()
    server.stop()


def test_a_produced_copy_carries_a_strong_etag_and_answers_304(cached):
    url = "/download/traffy-complaints/complaints.jsonl"
    streamed = cached.client.get(url)
    assert streamed.status_code == 200
    assert "etag" not in streamed.headers  # streamed as produced: its hash is not known yet
    modified = streamed.headers["last-modified"]

    copy = cached.client.get(url, headers={"accept-encoding": "identity"})
    assert copy.content == streamed.content
    etag = copy.headers["etag"]
    assert etag.strip('"') == hashlib.sha256(copy.content).hexdigest()
    assert copy.headers["last-modified"] == modified  # when these bytes were first produced

    for headers in (
        {"if-none-match": etag},
        {"if-none-match": f'"other", {etag}'},
        {"if-modified-since": modified},
        {"if-none-match": etag, "if-modified-since": "not a date"},
    ):
        again = cached.client.get(url, headers={**headers, "accept-encoding": "identity"})
        assert again.status_code == 304, headers
        assert again.content == b"" and again.headers["etag"] == etag

    zipped = cached.client.get(url, headers={"accept-encoding": "gzip"})
    assert zipped.headers["etag"] == etag[:-1] + '-gzip"'  # another representation
    assert zipped.content == copy.content
    assert (
        cached.client.get(url, headers={"if-none-match": zipped.headers["etag"]}).status_code == 304
    )

    earlier = format_datetime(parsedate_to_datetime(modified) - timedelta(days=1), usegmt=True)
    for headers in ({"if-none-match": '"other"'}, {"if-modified-since": earlier}):
        changed = cached.client.get(url, headers=headers)
        assert changed.status_code == 200 and changed.content == copy.content


def test_without_a_cache_a_conditional_request_is_produced_then_answered_304(anonymous):
    """Caches off: nothing is kept to serve, yet a harvester's If-Modified-Since after an
    unchanged table is a 304 (the file is produced first, then compared)."""
    url = "/download/traffy-complaints/daily-counts.json"
    first = anonymous.client.get(url)
    assert "etag" not in first.headers
    again = anonymous.client.get(url, headers={"if-modified-since": first.headers["last-modified"]})
    assert again.status_code == 304
    etag = again.headers["etag"]
    assert anonymous.client.get(url, headers={"if-none-match": etag}).status_code == 304
    fresh = anonymous.client.get(url, headers={"if-none-match": '"stale"'})
    assert fresh.status_code == 200 and fresh.headers["etag"] == etag
    assert fresh.content == first.content


@pytest.mark.parametrize(
    "path",
    [
        "/download/no-such-dataset/complaints.csv",
        "/download/traffy-complaints/no-such-resource.csv",
        "/download/traffy-complaints/daily-counts.geojson",  # not offered: no geometry
        "/download/traffy-complaints/complaints.xml",
        "/download/traffy-complaints/complaints",
    ],
)
def test_unknown_dataset_resource_or_format_is_not_found(anonymous, path):
    response = anonymous.client.get(path)
    assert response.status_code == 404
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND"


def test_downloads_are_rate_limited_like_graphql(db, traffy_url):
    limits = {"anonymous": {"rate": 0.001, "burst": 1}}
    server, gw = start_gateway(settings_for(db, traffy_url, rate_limits=limits))
    try:
        assert gw.client.get("/download/traffy-complaints/x.csv").status_code == 404
        refused = gw.client.get("/download/traffy-complaints/x.csv")
        assert refused.status_code == 429
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    finally:
        gw.client.close()
        server.stop()


class FailingSearch:
    """Fault injection: the Traffy search answers ``good`` pages, then its source is down."""

    def __init__(self, search: Any, good: int) -> None:
        self.search, self.good, self.calls = search, good, 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls > self.good:
            raise UpstreamUnavailable("traffy", "connection refused")
        return await self.search(*args, **kwargs)


@pytest.fixture
def failing(db, traffy_url) -> Iterator[tuple[Gateway, Any]]:
    settings = settings_for(db, traffy_url)
    connectors = connectors_from(settings)
    fault = FailingSearch(connectors.traffy.search, good=0)
    connectors.traffy.search = fault  # type: ignore[method-assign]
    server, gw = start_gateway(settings, connectors)
    yield gw, fault
    gw.client.close()
    server.stop()


def test_a_source_down_before_the_first_byte_is_a_503(failing):
    gw, fault = failing
    response = gw.client.get("/download/traffy-complaints/complaints.csv")
    assert response.status_code == 503
    assert response.json()["errors"][0]["extensions"]["code"] == "DATASET_UNAVAILABLE"
    assert fault.calls >= 1


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_a_source_failing_mid_stream_breaks_the_transfer(failing, encoding):
    gw, fault = failing
    fault.good = 3  # three pages, then the source fails
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        with gw.client.stream(
            "GET",
            "/download/traffy-complaints/complaints.json",
            headers={"accept-encoding": encoding},
        ) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                received.extend(chunk)
    assert fault.calls == 4
    assert received.startswith(b"[") and not received.rstrip().endswith(b"]")
    assert received.count(b'"ticket_id"') >= 2000  # pages had been sent before the failure


def _status(pid: int) -> dict[str, int]:
    """The kB figures of /proc/<pid>/status (VmRSS, VmHWM, …)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[name] = int(value.split()[0])
    return fields


def test_the_complaints_csv_streams_in_bounded_memory(db, traffy_url, tmp_path):
    """The gateway process's peak memory while it streams the 20,000-ticket CSV grows less
    than 50 MB over what it held after one page of the same query (its working size)."""
    settings = settings_for(db, traffy_url, port=free_port())
    gateway = GatewayProcess(settings, tmp_path)
    gateway.start()
    try:
        gateway.wait_until_up()
        assert gateway.process is not None
        pid = gateway.process.pid
        resource = _resource("traffy-complaints", "complaints")
        warm = httpx.post(
            gateway.graphql,
            json={"query": resource.query, "variables": {"first": 1000}},
            timeout=60,
        )
        assert warm.status_code == 200 and "errors" not in warm.json()
        # Reset the peak (VmHWM) to the current size: what follows is the download's.
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        before = _status(pid)
        records, last = 0, b""
        url = gateway.url + "/download/traffy-complaints/complaints.csv"
        with httpx.stream("GET", url, timeout=120) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                records += (last + chunk).count(b"\r\n") - last.count(b"\r\n")
                last = chunk[-1:]
        peak = _status(pid)["VmHWM"]
    finally:
        gateway.stop()
    assert records == 20_001  # the header and every ticket (CSV records end in CRLF)
    growth_mb = (peak - before["VmRSS"]) / 1024
    print(f"gateway RSS {before['VmRSS'] / 1024:.0f} MB, peak while streaming +{growth_mb:.1f} MB")
    assert growth_mb < 50
