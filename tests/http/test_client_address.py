"""Whose address a request comes from: the TCP peer, unless the peer is a proxy the settings
trust (``BMA_TRUSTED_PROXIES``). The address picks an anonymous caller's rate-limit bucket
and is the audit record's ``clientAddress``, so a header the caller writes must not choose
either — not even from loopback, which uvicorn trusts by default."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.embedded import DatabaseUrls
from gateway.ratelimit.config import RateLimit, RateLimits
from support import Gateway, bearer, finance_officer_token, settings_for, sql, start_gateway

PUBLIC = "{ districts { code } }"
RESTRICTED = "query($id: ID!) { parcel(id: $id) { id appraisedValue } }"
ONE_REQUEST = RateLimits(anonymous=RateLimit(rate=0.001, burst=1))  # then 429 for 1,000 s


@pytest.fixture(scope="module")
def parcel(db: DatabaseUrls) -> str:
    return str(sql(db.tax, "SELECT min(id) AS id FROM tax.parcels")[0]["id"])


def gateway(db: DatabaseUrls, traffy_url: str, trusted_proxies: str) -> Iterator[Gateway]:
    settings = settings_for(
        db, traffy_url, rate_limits=ONE_REQUEST, trusted_proxies=trusted_proxies
    )
    server, gw = start_gateway(settings)
    yield gw
    gw.client.close()
    server.stop()


@pytest.fixture(scope="module")
def untrusting(db: DatabaseUrls, traffy_url: str) -> Iterator[Gateway]:
    """The default: no proxy trusted."""
    yield from gateway(db, traffy_url, "")


@pytest.fixture(scope="module")
def behind_proxy(db: DatabaseUrls, traffy_url: str) -> Iterator[Gateway]:
    """Loopback (this test) is the trusted proxy, as a load balancer would be."""
    yield from gateway(db, traffy_url, "127.0.0.1")


def forwarded(address: str, **headers: str) -> dict[str, str]:
    return {"x-forwarded-for": address, **headers}


def audited_address(
    gw: Gateway, db: DatabaseUrls, issuer: EmbeddedIssuer, parcel: str, xff: str
) -> str | None:
    """The clientAddress of the audit record of a restricted read sent with ``xff``."""
    request_id = f"client-address-{uuid.uuid4().hex}"
    headers = forwarded(
        xff, **bearer(finance_officer_token(issuer)), **{"x-request-id": request_id}
    )
    response = gw.post(RESTRICTED, {"id": parcel}, headers=headers)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    rows = sql(
        db.gateway,
        "SELECT entry ->> 'clientAddress' AS client FROM audit.records "
        "WHERE entry ->> 'requestId' = $1",
        request_id,
    )
    assert len(rows) == 1, rows
    address: str | None = rows[0]["client"]
    return address


def test_x_forwarded_for_from_loopback_does_not_pick_the_rate_limit_bucket(untrusting: Gateway):
    first = untrusting.post(PUBLIC, headers=forwarded("203.0.113.1"))
    assert first.status_code == 200, first.text
    # Another "address" in the header: still the peer's (127.0.0.1) bucket, now empty.
    second = untrusting.post(PUBLIC, headers=forwarded("203.0.113.2"))
    assert second.status_code == 429, second.text
    assert untrusting.post(PUBLIC).status_code == 429


def test_x_forwarded_for_from_loopback_is_not_the_audited_client_address(
    untrusting: Gateway, db: DatabaseUrls, issuer: EmbeddedIssuer, parcel: str
):
    assert audited_address(untrusting, db, issuer, parcel, "203.0.113.9") == "127.0.0.1"


def test_a_trusted_proxy_names_the_client_for_buckets_and_the_audit(
    behind_proxy: Gateway, db: DatabaseUrls, issuer: EmbeddedIssuer, parcel: str
):
    assert behind_proxy.post(PUBLIC, headers=forwarded("198.51.100.1")).status_code == 200
    assert behind_proxy.post(PUBLIC, headers=forwarded("198.51.100.1")).status_code == 429
    assert behind_proxy.post(PUBLIC, headers=forwarded("198.51.100.2")).status_code == 200
    assert audited_address(behind_proxy, db, issuer, parcel, "198.51.100.3") == "198.51.100.3"


def test_behind_a_trusted_proxy_the_address_the_client_wrote_is_ignored(
    behind_proxy: Gateway, db: DatabaseUrls, issuer: EmbeddedIssuer, parcel: str
):
    """The proxy appends the address it saw; what the client sent before it is its own
    invention: the right-most address no trusted proxy added is the client."""
    spoofed = "192.0.2.50, 198.51.100.20"  # the client wrote the first, the proxy the second
    assert audited_address(behind_proxy, db, issuer, parcel, spoofed) == "198.51.100.20"
