"""The audit guarantee under faults: with the audit store unreachable, restricted data is
refused (AUDIT_UNAVAILABLE) while public data is served; after SIGTERM under load, every
response that carried restricted data has its record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faults import TcpProxy
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.embedded import DatabaseUrls
from gateway.http.serving import free_port
from support import (
    Gateway,
    finance_officer_token,
    fresh_database,
    settings_for,
    sql,
    start_gateway,
    wait_until,
)

RESTRICTED = "query($id: ID!) { parcel(id: $id) { id appraisedValue owner { nationalId } } }"
PUBLIC = "query($id: ID!) { parcel(id: $id) { id landUse } districts { code } }"


@pytest.fixture(scope="module")
def finance(issuer: EmbeddedIssuer) -> dict[str, str]:
    token = finance_officer_token(issuer, "finance-faults")
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def parcels(db: DatabaseUrls) -> list[dict[str, Any]]:
    return sql(
        db.tax,
        "SELECT p.id, p.appraised_value, o.national_id FROM tax.parcels p "
        "JOIN tax.owners o ON o.id = p.owner_id ORDER BY p.id LIMIT 50",
    )


@pytest.fixture
def proxied_store(server_url: str) -> Iterator[tuple[TcpProxy, str]]:
    store = fresh_database(server_url, "bmatest_audit_faults")
    proxy = TcpProxy(server_url).start()
    yield proxy, store
    proxy.close()


def test_restricted_reads_fail_closed_while_the_audit_store_is_down(
    db: DatabaseUrls,
    traffy_url: str,
    proxied_store: tuple[TcpProxy, str],
    finance: dict[str, str],
    parcels: list[dict[str, Any]],
):
    proxy, store = proxied_store
    settings = settings_for(
        db, traffy_url, audit_database_url=proxy.url("bmatest_audit_faults"), audit_timeout=2.0
    )
    server, gw = start_gateway(settings)
    parcel = parcels[0]
    variables = {"id": str(parcel["id"])}
    try:
        assert _restricted(gw, finance, variables, "up-1").status_code == 200

        proxy.stop()
        down = _restricted(gw, finance, variables, "down-1")
        assert down.status_code == 503
        body = down.json()
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["AUDIT_UNAVAILABLE"]
        assert parcel["national_id"] not in down.text
        # Public data keeps flowing, for everyone.
        public = gw.post(PUBLIC, variables, headers=finance)
        assert public.status_code == 200 and public.json()["data"]["parcel"]["id"] == str(
            parcel["id"]
        )
        assert gw.post(PUBLIC, variables, headers={}).status_code == 200
        # A refusal reveals nothing: it is answered as usual even without its record.
        refused = gw.post("query($id: ID!) { parcel(id: $id) { owner { name } } }", variables)
        assert refused.status_code == 200
        assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

        proxy.start()
        back = _restricted(gw, finance, variables, "up-2")
        assert back.status_code == 200, back.text
        assert back.json()["data"]["parcel"]["owner"]["nationalId"] == parcel["national_id"]
    finally:
        gw.client.close()
        server.stop()
    logged = [
        r["id"]
        for r in sql(store, "SELECT entry ->> 'requestId' AS id FROM audit.records ORDER BY seq")
    ]
    assert logged == ["up-1", "up-2"]


def test_a_gateway_started_while_the_audit_store_is_down_serves_public_data_then_recovers(
    db: DatabaseUrls,
    traffy_url: str,
    proxied_store: tuple[TcpProxy, str],
    finance: dict[str, str],
    parcels: list[dict[str, Any]],
):
    proxy, store = proxied_store
    proxy.stop()
    settings = settings_for(
        db, traffy_url, audit_database_url=proxy.url("bmatest_audit_faults"), audit_timeout=2.0
    )
    server, gw = start_gateway(settings)
    variables = {"id": str(parcels[1]["id"])}
    try:
        assert gw.post(PUBLIC, variables, headers=finance).status_code == 200
        assert _restricted(gw, finance, variables, "early").status_code == 503
        proxy.start()
        assert _restricted(gw, finance, variables, "later").status_code == 200
    finally:
        gw.client.close()
        server.stop()
    assert [
        r["id"] for r in sql(store, "SELECT entry ->> 'requestId' AS id FROM audit.records")
    ] == ["later"]


def _restricted(
    gw: Gateway, headers: dict[str, str], variables: dict[str, Any], rid: str
) -> httpx.Response:
    return gw.post(RESTRICTED, variables, headers={**headers, "x-request-id": rid})


# ---------------------------------------------------------------------------- SIGTERM


def test_sigterm_under_load_loses_no_record_of_an_answered_request(
    db: DatabaseUrls,
    traffy_url: str,
    server_url: str,
    finance: dict[str, str],
    parcels: list[dict[str, Any]],
    tmp_path: Path,
):
    store = fresh_database(server_url, "bmatest_audit_sigterm")
    port = free_port()
    env = {
        **os.environ,
        **settings_for(
            db, traffy_url, audit_database_url=store, port=port, drain_seconds=1.0
        ).to_env(),
    }
    # Its log goes to a file: a pipe nobody reads while it runs would fill and stall it.
    log_file = tmp_path / "gateway.log"
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_file.open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, gateway, log_file)
        answered: list[str] = []
        failures: list[str] = []
        stop = threading.Event()
        workers = [
            threading.Thread(
                target=_load, args=(url, finance, parcels, n, answered, failures, stop)
            )
            for n in range(6)
        ]
        for w in workers:
            w.start()
        wait_until(lambda: len(answered) > 10, timeout=30, what="load under way")
        before_signal = len(answered)
        gateway.send_signal(signal.SIGTERM)
        # As a load balancer would: once /readyz says draining, send no new requests. Until
        # then, and for requests already sent, every one must be answered.
        _until_draining(url)
        stop.set()
        # uvicorn shuts down gracefully, then re-raises the signal to its caller.
        assert gateway.wait(30) in (0, -signal.SIGTERM)
        for w in workers:
            w.join(10)
    finally:
        if gateway.poll() is None:
            gateway.kill()
    log = log_file.read_text(encoding="utf-8")
    assert "Application shutdown complete" in log, log[-2000:]
    assert before_signal > 10, "the load did not get going"
    logged = {r["id"] for r in sql(store, "SELECT entry ->> 'requestId' AS id FROM audit.records")}
    missing = [rid for rid in answered if rid not in logged]
    assert not missing, f"{len(missing)} answered requests have no audit record"
    assert not failures, failures[:3]


def _load(
    url: str,
    headers: dict[str, str],
    parcels: list[dict[str, Any]],
    worker: int,
    answered: list[str],
    failures: list[str],
    stop: threading.Event,
) -> None:
    """Restricted reads until the gateway stops accepting; collects the ids of those answered
    with restricted data, and anything else — a connection reset mid-request included — as
    a failure. Each request opens its own connection: a server may close an idle kept-alive
    connection at any moment (RFC 9112), so only a refused connect means "stopped accepting"."""
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=url, timeout=10, limits=no_keepalive) as client:
        n = 0
        while not stop.is_set():
            rid = f"w{worker}-{n}"
            parcel = parcels[n % len(parcels)]
            try:
                response = client.post(
                    "/graphql",
                    json={"query": RESTRICTED, "variables": {"id": str(parcel["id"])}},
                    headers={**headers, "x-request-id": rid},
                )
            except httpx.ConnectError:
                return  # the gateway stopped accepting: fine, as long as what it answered is logged
            except httpx.TransportError as exc:  # accepted, then dropped: a lost answer
                failures.append(f"{rid}: {type(exc).__name__}: {exc}")
                return
            n += 1
            data = response.json().get("data") if response.status_code == 200 else None
            if data and data["parcel"]["owner"]["nationalId"] == parcel["national_id"]:
                answered.append(rid)
            else:
                failures.append(f"{rid}: {response.status_code} {response.text[:200]}")


def _until_draining(url: str, timeout: float = 10) -> None:
    wait_until(
        lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 503,
        timeout=timeout,
        what="report of the gateway draining",
    )


def _wait_until_up(
    url: str, process: subprocess.Popen[bytes], log_file: Path, timeout: float = 30
) -> None:
    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited: {log_file.read_text(encoding='utf-8')}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, timeout=timeout, what="gateway serving")
