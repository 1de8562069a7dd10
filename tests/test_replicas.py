"""Two gateway replicas — separate `bma-gateway serve` processes on different ports —
sharing one PostgreSQL and one Redis, as a deployment behind a load balancer runs them:
one rate limit across both, one response cache, and one audit chain written by both."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from connectors.cache import DEFAULT_TTLS
from gateway.audit.store import load_key, verify
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.embedded import DatabaseUrls
from gateway.http.serving import free_port
from support import (
    GatewayProcess,
    audit_key_file,
    finance_officer_token,
    fresh_database,
    partner_token,
    settings_for,
    sql,
)

REDIS_URL = os.environ.get("REDIS_URL")
pytestmark = pytest.mark.skipif(
    not REDIS_URL, reason="REDIS_URL not set: replicas share their caches and limits in Redis"
)

OPEN = "{ districts { code nameEn businessCount } }"
RESTRICTED = "query($id: ID!) { parcel(id: $id) { id appraisedValue owner { nationalId } } }"


@pytest.fixture(scope="module")
def replicas(
    db: DatabaseUrls, traffy_url: str, server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[GatewayProcess], str]]:
    store = fresh_database(server_url, "bmatest_replicas_audit")
    logs = tmp_path_factory.mktemp("replicas")
    # A fresh Redis namespace for this run's response cache: empty it first.
    asyncio.run(_clear_response_cache())
    processes = []
    for n in range(2):
        settings = settings_for(
            db,
            traffy_url,
            port=free_port(),
            audit_database_url=store,
            cache_ttls={**DEFAULT_TTLS, "response": 60},
        )
        processes.append(
            GatewayProcess(
                settings,
                logs / f"replica-{n}",
                REDIS_URL=REDIS_URL or "",
                BMA_RATE_LIMITS=json.dumps({"partner": {"rate": 0.01, "burst": 6}}),
            )
        )
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.wait_until_up()
        yield processes, store
    finally:
        for process in processes:
            process.stop()


async def _clear_response_cache() -> None:
    from connectors.cache import CacheSettings, CacheStore

    store = CacheStore(CacheSettings(redis_url=REDIS_URL))
    try:
        await store.clear(["response"], strict=True)
    finally:
        await store.close()


def _token(issuer: EmbeddedIssuer, subject: str) -> dict[str, str]:
    token = partner_token(issuer, subject)
    return {"authorization": f"Bearer {token}"}


def test_a_response_cached_by_one_replica_is_served_by_the_other(replicas):
    (first, second), _store = replicas
    stored = httpx.post(first.graphql, json={"query": OPEN}, timeout=30)
    assert stored.status_code == 200 and stored.headers["x-cache"] == "miss"
    served = httpx.post(second.graphql, json={"query": OPEN}, timeout=30)
    assert served.headers["x-cache"] == "hit"
    assert served.content == stored.content


def test_one_rate_limit_holds_across_both_replicas(replicas, issuer: EmbeddedIssuer):
    (first, second), _store = replicas
    # A subject of its own: Redis keeps a bucket until it would be full again (10 minutes).
    headers = _token(issuer, f"replica-rate-limit-{uuid.uuid4().hex}")
    codes = [
        httpx.post(
            (first, second)[n % 2].graphql, json={"query": OPEN}, headers=headers, timeout=30
        ).status_code
        for n in range(10)
    ]
    # Burst 6, almost no refill: six answers in all, then refusals — from both replicas.
    assert codes == [200] * 6 + [429] * 4, codes


def test_both_replicas_write_one_valid_audit_chain(replicas, issuer: EmbeddedIssuer, db):
    (first, second), store = replicas
    parcels = sql(db.tax, "SELECT id FROM tax.parcels ORDER BY id LIMIT 8")
    finance = finance_officer_token(issuer)
    for n, parcel in enumerate(parcels):
        replica = (first, second)[n % 2]
        response = httpx.post(
            replica.graphql,
            json={"query": RESTRICTED, "variables": {"id": str(parcel["id"])}},
            headers={"authorization": f"Bearer {finance}", "x-request-id": f"replica-{n}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
    rows = sql(store, "SELECT entry ->> 'requestId' AS id FROM audit.records ORDER BY seq")
    assert [r["id"] for r in rows] == [f"replica-{n}" for n in range(len(parcels))]

    async def check() -> None:
        conn = await asyncpg.connect(store)
        try:
            result = await verify(conn, load_key(audit_key_file()))
        finally:
            await conn.close()
        assert result.intact, result
        assert result.records == len(parcels)

    asyncio.run(check())


def test_each_replica_logs_its_own_requests_as_json(replicas):
    (first, second), _store = replicas
    for process in (first, second):
        lines = [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]
        requests = [line for line in lines if line["logger"] == "bma.request"]
        assert requests and all(line["request_id"] for line in requests)
        assert not any("Bearer" in line or "eyJ" in line for line in process.log().splitlines())
