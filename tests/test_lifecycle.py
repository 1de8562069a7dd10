"""The gateway's lifecycle: a start that names the sources it could not reach, and several
uvicorn workers writing one audit chain."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.audit.store import load_key, verify
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.embedded import DatabaseUrls
from gateway.http.serving import free_port
from support import (
    GatewayProcess,
    audit_key_file,
    finance_officer_token,
    fresh_database,
    settings_for,
    sql,
    start_gateway,
)

RESTRICTED = "query($id: ID!) { parcel(id: $id) { id appraisedValue } }"
SPOOFED = "203.0.113.66"


def test_start_waits_for_sources_then_names_the_missing_ones(
    db: DatabaseUrls, caplog: pytest.LogCaptureFixture
):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: Traffy is down
    settings = settings_for(db, dead, startup_wait_seconds=0.5)
    with caplog.at_level(logging.INFO, logger="bma.gateway"):
        server, gw = start_gateway(settings)
    try:
        warnings = [r.getMessage() for r in caplog.records if r.name == "bma.gateway"]
        assert any(m.startswith("starting without 1 source(s): traffy") for m in warnings), warnings
        ready = gw.client.get("/readyz").json()
        assert ready["status"] == "degraded" and ready["sources"]["traffy"]["state"] != "ok"
        # Started anyway: the other sources answer.
        assert gw.post('{ district(code: "1039") { businessCount } }').status_code == 200
    finally:
        gw.client.close()
        server.stop()


def test_several_workers_serve_and_write_one_audit_chain(
    db: DatabaseUrls,
    traffy_url: str,
    server_url: str,
    issuer: EmbeddedIssuer,
    tmp_path: Path,
):
    store = fresh_database(server_url, "bmatest_workers_audit")
    settings = settings_for(db, traffy_url, port=free_port(), workers=2, audit_database_url=store)
    gateway = GatewayProcess(settings, tmp_path)
    gateway.start()
    token = finance_officer_token(issuer)
    parcels = sql(db.tax, "SELECT id FROM tax.parcels ORDER BY id LIMIT 12")
    try:
        gateway.wait_until_up()
        no_keepalive = httpx.Limits(max_keepalive_connections=0)  # spread over the workers
        with httpx.Client(timeout=30, limits=no_keepalive) as client:
            for n, parcel in enumerate(parcels):
                response = client.post(
                    gateway.graphql,
                    json={"query": RESTRICTED, "variables": {"id": str(parcel["id"])}},
                    headers={
                        "authorization": f"Bearer {token}",
                        "x-request-id": f"worker-{n}",
                        # No proxy is trusted (BMA_TRUSTED_PROXIES): not even from loopback.
                        "x-forwarded-for": SPOOFED,
                    },
                )
                assert response.status_code == 200, response.text
            marked = {"query": "query ServeQueryStringMarker { __typename }"}
            assert client.get(gateway.graphql, params=marked).status_code == 200
    finally:
        gateway.stop()
    assert "Started parent process" in gateway.log()
    assert "ServeQueryStringMarker" not in gateway.log()  # no access log
    addresses = sql(store, "SELECT DISTINCT entry ->> 'clientAddress' AS a FROM audit.records")
    assert addresses == [{"a": "127.0.0.1"}]

    async def check() -> None:
        conn = await asyncpg.connect(store)
        try:
            result = await verify(conn, load_key(audit_key_file()))
        finally:
            await conn.close()
        assert result.intact and result.records == len(parcels), result

    asyncio.run(check())


# ---------------------------------------------------------------------------- the config file


def test_a_config_file_gives_settings_and_the_environment_overrides_it(tmp_path: Path):
    from gateway.settings import Settings

    path = tmp_path / "gateway.env"
    path.write_text(
        "# the gateway's settings\n"
        "BMA_TAX_DATABASE_URL=postgresql://db/tax\n"
        "BMA_REGISTRY_DATABASE_URL='postgresql://db/registry'\n"
        "BMA_FINANCE_DATABASE_URL=postgresql://db/finance\n"
        'BMA_TRAFFY_BASE_URL="http://traffy.test"\n'
        "\n"
        "BMA_PORT=8100\n"
        "REDIS_URL=redis://cache:6379/0\n",
        encoding="utf-8",
    )
    settings = Settings.from_env({"BMA_CONFIG_FILE": str(path), "BMA_PORT": "8200"})
    assert settings.tax_database_url == "postgresql://db/tax"
    assert settings.registry_database_url == "postgresql://db/registry"
    assert settings.traffy_base_url == "http://traffy.test"
    assert settings.port == 8200  # the environment wins
    assert settings.redis_url == "redis://cache:6379/0"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("BMA_PORT 8000\n", ":1: expected"),
        ("# ok\nPATH=/usr/bin\n", ":2: expected"),
        ("BMA_CONFIG_FILE=/etc/other\n", "cannot name another"),
        ("BMA_PORT=99999\n", "BMA_PORT must be 1..65535"),
    ],
)
def test_a_bad_config_file_names_the_line_or_setting(tmp_path: Path, content: str, message: str):
    from gateway.settings import ConfigError, Settings

    path = tmp_path / "gateway.env"
    path.write_text(content, encoding="utf-8")
    env = {
        "BMA_CONFIG_FILE": str(path),
        "BMA_TAX_DATABASE_URL": "x",
        "BMA_REGISTRY_DATABASE_URL": "y",
        "BMA_FINANCE_DATABASE_URL": "f",
        "BMA_TRAFFY_BASE_URL": "z",
    }
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.from_env({**env, "BMA_CONFIG_FILE": str(tmp_path / "missing.env")})


# ---------------------------------------------------------------------------- the collector

GC_STATE = (
    "import gc; from gateway.http.app import create_app_from_env; create_app_from_env(); "
    "print(gc.get_threshold()[0], gc.get_freeze_count() > 1000)"
)


@pytest.mark.parametrize(("setting", "state"), [("4321", "4321 True"), ("0", "700 False")])
def test_serving_freezes_start_up_and_sets_the_collectors_threshold(
    db: DatabaseUrls, traffy_url: str, setting: str, state: str
):
    """What each serving process (one per worker) builds at start is frozen out of the
    collector's walks, and generation 0 gets BMA_GC_THRESHOLD; 0 leaves Python's defaults."""
    env = {**os.environ, **settings_for(db, traffy_url).to_env(), "BMA_GC_THRESHOLD": setting}
    shown = subprocess.run(
        [sys.executable, "-c", GC_STATE], env=env, capture_output=True, text=True, check=True
    )
    assert shown.stdout.split("\n")[-2] == state, shown.stderr
