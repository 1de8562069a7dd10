"""gateway/ratelimit/middleware.py: rate limits, a token bucket per principal, in memory or
shared through Redis (the buckets on their own: tests/ratelimit/test_buckets.py).

Bucket keys: an API key, a token's subject, or the client address (an IPv6 host's /64). Over
real HTTP: a caller gets its burst, then 429 with Retry-After and RateLimit-* headers, then
tokens again as the bucket refills; principals have separate buckets; a refused credential
is still a 401 and is charged to the client address, never to the principal it names. With
Redis (REDIS_URL): the same, two gateway processes sharing one limit, and Redis failing under
a running gateway (a TCP proxy cut off or hanging) costs no request.

Time is moved, not waited for: memory buckets and the Redis fallback's retry interval run on
a ``ManualClock``; Redis buckets refill by the Redis server's clock, so there the test moves
each bucket's last update back instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis

from faults import TcpProxy
from gateway.auth.api_keys import create_key, ensure_schema
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.embedded import DatabaseUrls
from gateway.http.app import create_app
from gateway.http.serving import BackgroundServer, free_port
from gateway.ratelimit.buckets import Buckets, MemoryBuckets, RedisBuckets
from gateway.ratelimit.config import RateLimit, RateLimits
from gateway.ratelimit.middleware import bucket_key, client_address
from gateway.settings import Settings
from policies.principal import ANONYMOUS, Principal
from support import GatewayProcess, ManualClock, run, settings_for, start_gateway

REDIS_URL = os.environ.get("REDIS_URL", "")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="REDIS_URL not set: Redis-backed rate limits need a Redis server"
)

QUERY = "{ __typename }"
RATE = 0.5  # a token every 2 s: slow enough that a burst is never refilled mid-test
LOOPBACK = "127.0.0.1"  # the tests' gateways trust the test itself as their proxy

LIMITS = RateLimits(
    anonymous=RateLimit(rate=RATE, burst=3),
    app=RateLimit(rate=RATE, burst=4),
    partner=RateLimit(rate=RATE, burst=5),
    agency=None,  # unlimited
)
LOGGER = "bma.gateway.rate_limit"


# --- bucket keys ----------------------------------------------------------------------------


def test_buckets_are_keyed_by_api_key_by_token_subject_or_by_client_address():
    app = Principal(kind="app", subject="key:abc", credential_id="abc")
    partner = Principal(kind="partner", subject="alice", issuer="https://idp", credential_id="j1")
    assert bucket_key(app, "10.0.0.1") == "key:abc"
    assert bucket_key(partner, "10.0.0.1") == "sub:https://idp:alice"
    assert bucket_key(replace(partner, credential_id="j2"), "10.0.0.2") == "sub:https://idp:alice"
    assert bucket_key(ANONYMOUS, "10.0.0.1") == "ip:10.0.0.1"
    assert bucket_key(None, "10.0.0.1") == "ip:10.0.0.1"  # a refused credential
    # One IPv6 host usually holds a whole /64: its addresses share a bucket.
    assert client_address("2001:db8:1:2::5") == client_address("2001:db8:1:2:ffff::9")
    assert client_address("2001:db8:1:2::5") != client_address("2001:db8:1:3::5")
    assert client_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_address(None) == "unknown"


# --- over HTTP: memory and Redis ------------------------------------------------------------


@contextlib.contextmanager
def limited_gateway(
    settings: Settings, buckets: Buckets, limits: RateLimits = LIMITS
) -> Iterator[httpx.Client]:
    """A gateway over real HTTP whose /graphql is limited by ``limits`` in ``buckets``
    (``settings_for`` turns the app's own rate limiting off)."""
    app = create_app(settings.model_copy(update={"rate_limits": limits}), buckets=buckets)
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def redis_prefix() -> str:
    return f"bma:rl:test-{uuid.uuid4().hex[:12]}:"


def redis_keys(prefix: str) -> dict[str, dict[bytes, bytes]]:
    with redis.Redis.from_url(REDIS_URL) as client:
        return {
            k.decode().removeprefix(prefix): client.hgetall(k)
            for k in client.scan_iter(match=f"{prefix}*")
        }


def drop_redis_keys(prefix: str) -> None:
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def buckets(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[Buckets]:
    """Memory buckets on ``clock``, or Redis buckets in a key namespace of this test's own."""
    if request.param == "memory":
        yield MemoryBuckets(clock=clock)
        return
    prefix = redis_prefix()
    yield RedisBuckets(REDIS_URL, prefix=prefix)
    drop_redis_keys(prefix)


def let_pass(seconds: float, buckets: Buckets, clock: ManualClock) -> None:
    """``seconds`` pass for ``buckets``: memory buckets' clock moves on; a Redis bucket
    refills by the Redis server's clock, so its last update moves back by as much."""
    if isinstance(buckets, RedisBuckets):
        with redis.Redis.from_url(REDIS_URL) as client:
            for key in client.scan_iter(match=f"{buckets.prefix}*"):
                client.hincrbyfloat(key, "at", -seconds)
    else:
        clock.advance(seconds)


@pytest.fixture
def client(db: DatabaseUrls, traffy_url: str, buckets: Buckets) -> Iterator[httpx.Client]:
    with limited_gateway(settings_for(db, traffy_url, trusted_proxies=LOOPBACK), buckets) as client:
        yield client


def new_address() -> str:
    """A client address of this test's own, sent as X-Forwarded-For: the gateways here trust
    loopback as their proxy (``LOOPBACK``)."""
    return f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::1"


def post(
    client: httpx.Client, address: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.post(
        "/graphql", json={"query": QUERY}, headers={"x-forwarded-for": address, **(headers or {})}
    )


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def partner_token(issuer: EmbeddedIssuer, subject: str | None = None) -> str:
    return issuer.issue("partner", "rl-test", "", subject=subject or f"rl-{uuid.uuid4().hex}")


def api_key(db: DatabaseUrls) -> str:
    async def create() -> str:
        conn = await asyncpg.connect(db.gateway)
        try:
            await ensure_schema(conn)
            return (await create_key(conn, "rate-limited-app", "test-org"))[1]
        finally:
            await conn.close()

    return run(create())


def statuses(responses: list[httpx.Response]) -> list[int]:
    return [r.status_code for r in responses]


def test_a_caller_gets_its_burst_then_429_with_retry_after_then_a_refilled_token(
    client: httpx.Client, buckets: Buckets, clock: ManualClock
):
    address = new_address()
    allowed = [post(client, address) for _ in range(3)]
    assert statuses(allowed) == [200, 200, 200], allowed[-1].text
    assert [r.headers["ratelimit-remaining"] for r in allowed] == ["2", "1", "0"]
    for response in allowed:
        assert response.headers["ratelimit-limit"] == "3"
        assert response.headers["ratelimit-policy"] == "3;w=6"
        assert 1 <= int(response.headers["ratelimit-reset"]) <= 6
        assert response.json() == {"data": {"__typename": "Query"}}

    refused = post(client, address)
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= math.ceil(1 / RATE)
    [error] = refused.json()["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": retry_after}
    assert "rate limit" in error["message"]
    assert refused.headers["ratelimit-limit"] == "3"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert int(refused.headers["ratelimit-reset"]) >= retry_after
    assert refused.headers["x-request-id"]
    assert refused.headers["content-type"] == "application/json"

    let_pass(retry_after, buckets, clock)
    again = post(client, address)
    assert again.status_code == 200, again.text
    assert again.headers["ratelimit-remaining"] == "0"
    assert post(client, address).status_code == 429
    if isinstance(buckets, RedisBuckets):
        [(key, state)] = redis_keys(buckets.prefix).items()
        assert key == f"ip:{client_address(address)}"
        assert float(state[b"tokens"]) < 1


def test_principals_have_buckets_of_their_own(
    client: httpx.Client, db: DatabaseUrls, issuer: EmbeddedIssuer
):
    address = new_address()
    assert statuses([post(client, address) for _ in range(4)]) == [200, 200, 200, 429]
    # Another address in the same /64 is the same host; another /64 is someone else.
    assert post(client, address.replace("::1", "::2")).status_code == 429
    assert post(client, new_address()).status_code == 200

    # From the drained address, an API key and two JWT subjects have their own limits.
    key = {"x-api-key": api_key(db)}
    app_calls = [post(client, address, key) for _ in range(5)]
    assert statuses(app_calls) == [200, 200, 200, 200, 429], app_calls[-1].text
    assert app_calls[0].headers["ratelimit-limit"] == "4"
    first, second = partner_token(issuer), partner_token(issuer)
    assert statuses([post(client, address, bearer(first)) for _ in range(6)]) == [200] * 5 + [429]
    second_calls = [post(client, address, bearer(second)) for _ in range(6)]
    assert statuses(second_calls) == [200] * 5 + [429]
    assert second_calls[0].headers["ratelimit-limit"] == "5"
    # A new token for the same subject is the same caller: the bucket is the subject's.
    subject = f"rl-{uuid.uuid4().hex}"
    assert post(client, address, bearer(partner_token(issuer, subject))).status_code == 200
    assert statuses(
        [post(client, address, bearer(partner_token(issuer, subject))) for _ in range(5)]
    ) == [200] * 4 + [429]

    # An audience without a limit (agency here) is never refused and gets no headers.
    agency = bearer(issuer.issue("agency", "rl-test", "", subject=f"rl-{uuid.uuid4().hex}"))
    unlimited = [post(client, address, agency) for _ in range(8)]
    assert statuses(unlimited) == [200] * 8
    assert "ratelimit-limit" not in unlimited[-1].headers


def test_a_refused_credential_is_401_and_charged_to_the_address_not_the_principal_it_names(
    client: httpx.Client, issuer: EmbeddedIssuer, tmp_path: Path
):
    victim = f"rl-{uuid.uuid4().hex}"
    # Signed with a key this gateway does not know, naming the victim as its subject.
    forger = EmbeddedIssuer.open(tmp_path / "forger.pem")
    forged = bearer(forger.issue("partner", "rl-test", "", subject=victim))
    address = new_address()
    refused = [post(client, address, forged) for _ in range(3)]
    assert statuses(refused) == [401, 401, 401]
    assert refused[0].json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert refused[0].headers["www-authenticate"].startswith("Bearer")
    assert refused[0].headers["ratelimit-limit"] == "3"  # the anonymous limit of the address
    assert [r.headers["ratelimit-remaining"] for r in refused] == ["2", "1", "0"]
    # Guessing goes on at the anonymous rate only, whatever the credential ...
    assert post(client, address, forged).status_code == 429
    assert post(client, address, {"x-api-key": "bma_0000_guess"}).status_code == 429
    assert post(client, address, bearer("not-a-jwt")).status_code == 429
    assert post(client, address).status_code == 429
    # ... and the victim's own bucket is untouched.
    genuine = bearer(partner_token(issuer, victim))
    assert statuses([post(client, address, genuine) for _ in range(6)]) == [200] * 5 + [429]


def test_the_gateway_limits_requests_as_its_settings_say(db: DatabaseUrls, traffy_url: str):
    limits = RateLimits(anonymous=RateLimit(rate=RATE, burst=2))
    server, gateway = start_gateway(
        settings_for(db, traffy_url, rate_limits=limits, trusted_proxies=LOOPBACK)
    )
    try:
        address = new_address()
        answers = [post(gateway.client, address) for _ in range(3)]
    finally:
        gateway.client.close()
        server.stop()
    assert statuses(answers) == [200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "2"
    assert answers[-1].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def test_health_endpoints_and_other_paths_are_never_limited(client: httpx.Client):
    address = new_address()
    assert statuses([post(client, address) for _ in range(4)])[-1] == 429
    for path in ("/healthz", "/readyz", "/.well-known/jwks.json"):
        response = client.get(path, headers={"x-forwarded-for": address})
        assert response.status_code == 200, (path, response.text)
        assert "ratelimit-limit" not in response.headers


# --- Redis: two processes -------------------------------------------------------------------


@needs_redis
def test_two_gateway_processes_sharing_one_redis_hold_one_limit(
    db: DatabaseUrls, traffy_url: str, issuer: EmbeddedIssuer, tmp_path: Path
):
    burst, rate = 10, 0.05  # a token every 20 s
    subject = f"rl-two-{uuid.uuid4().hex}"
    headers = bearer(partner_token(issuer, subject))
    limits = json.dumps({"partner": {"rate": rate, "burst": burst}})
    gateways = [
        GatewayProcess(
            settings_for(db, traffy_url, port=free_port()),
            tmp_path / f"g{n}",
            REDIS_URL=REDIS_URL,
            BMA_RATE_LIMITS=limits,
        )
        for n in range(2)
    ]
    try:
        for gateway in gateways:
            gateway.start()
        for gateway in gateways:
            gateway.wait_until_up()
        answers: list[tuple[int, httpx.Response]] = []
        with httpx.Client(timeout=30) as client:
            started = time.monotonic()
            for n in range(3 * burst):
                gateway = gateways[n % 2]
                answers.append(
                    (n % 2, client.post(gateway.graphql, json={"query": QUERY}, headers=headers))
                )
            elapsed = time.monotonic() - started
    finally:
        for gateway in gateways:
            gateway.stop()
    codes = [r.status_code for _, r in answers]
    assert set(codes) <= {200, 429}, [r.text for _, r in answers if r.status_code >= 300]
    # The burst, alternately from each process, then refusals: the limit is one, not two.
    refills = math.floor(rate * elapsed)
    assert codes[:burst] == [200] * burst, codes
    assert burst <= codes.count(200) <= burst + refills, (codes, elapsed)
    for which in (0, 1):
        mine = [r.status_code for w, r in answers if w == which]
        assert 200 in mine and 429 in mine, (which, mine)
    for _, response in answers:
        assert response.headers["ratelimit-limit"] == str(burst)
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
    key = f"bma:rl:sub:bma-gateway-embedded:{subject}"
    try:
        assert redis_keys(key), "the bucket is not in Redis"
    finally:
        drop_redis_keys(key)


# --- Redis failing --------------------------------------------------------------------------


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(REDIS_URL)
    yield proxy
    proxy.close()


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING
    ]


@needs_redis
def test_with_redis_stopped_requests_are_limited_in_memory_with_one_warning_then_redis_again(
    db: DatabaseUrls, traffy_url: str, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger=LOGGER)
    prefix = redis_prefix()
    clock = ManualClock()  # the retry interval's
    buckets = RedisBuckets(
        proxy.start().target_url, prefix=prefix, timeout=0.5, retry_after=0.5, clock=clock
    )
    before, during, after = new_address(), new_address(), new_address()
    try:
        with limited_gateway(
            settings_for(db, traffy_url, trusted_proxies=LOOPBACK), buckets
        ) as client:
            assert post(client, before).status_code == 200
            assert set(redis_keys(prefix)) == {f"ip:{client_address(before)}"}

            proxy.stop()
            down = [post(client, during) for _ in range(5)]
            clock.advance(0.6)  # past the retry interval: Redis is tried, and fails, again
            down += [post(client, during) for _ in range(2)]
            # Still answered, still limited (by this replica's memory), never an error.
            assert statuses(down) == [200, 200, 200] + [429] * 4, [r.text for r in down]
            assert not buckets.shared
            [warning] = warnings_logged(caplog)
            assert "Redis" in warning and "memory" in warning
            assert set(redis_keys(prefix)) == {f"ip:{client_address(before)}"}

            proxy.start()
            clock.advance(0.6)
            assert post(client, after).status_code == 200
            assert buckets.shared
            assert f"ip:{client_address(after)}" in redis_keys(prefix)
            assert len(warnings_logged(caplog)) == 1
            assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        drop_redis_keys(prefix)


def test_a_gateway_whose_redis_is_unreachable_from_the_start_limits_in_memory(
    db: DatabaseUrls, traffy_url: str, caplog: pytest.LogCaptureFixture
):
    """No Redis server needed: nothing listens at the URL."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    buckets = RedisBuckets(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    address = new_address()
    with limited_gateway(settings_for(db, traffy_url, trusted_proxies=LOOPBACK), buckets) as client:
        assert statuses([post(client, address) for _ in range(5)]) == [200, 200, 200, 429, 429]
        assert len(buckets.fallback) == 1
    assert len(warnings_logged(caplog)) == 1
    assert len(buckets.fallback) == 0  # the buckets were closed with the app


@needs_redis
def test_a_hanging_redis_delays_a_request_by_its_timeout_at_most(
    db: DatabaseUrls, traffy_url: str, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger=LOGGER)
    timeout = 0.3
    buckets = RedisBuckets(proxy.hang().target_url, prefix=redis_prefix(), timeout=timeout)
    address = new_address()
    with limited_gateway(settings_for(db, traffy_url, trusted_proxies=LOOPBACK), buckets) as client:
        latencies, codes = [], []
        for _ in range(5):
            started = time.monotonic()
            codes.append(post(client, address).status_code)
            latencies.append(time.monotonic() - started)
    assert codes == [200, 200, 200, 429, 429]
    assert latencies[0] < 2 * timeout + 1.0, latencies  # connecting, then one answer
    assert max(latencies[1:]) < 0.5, latencies  # memory until the retry interval is over
    assert len(warnings_logged(caplog)) == 1
