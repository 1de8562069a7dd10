"""`bma-gateway demo` end to end: a process that prepares its databases, serves, answers and
stops on Ctrl-C, its gateway logged in to PostgreSQL as a role that may not write upstream
data or change audit records. (Its upstream databases are seeded, or reused when their seed is current: in
a test session with the embedded server, conftest.py has copied the test seed for it.)"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.cli import main
from gateway.demo.embedded import database_url
from gateway.demo.roles import LOGIN_ROLE, gateway_password, login_url
from gateway.http.serving import free_port
from support import run, wait_until

QUERY = "{ districts { code nameTh complaintStats { total } taxRevenue(year: 2025) { collected } businessCount } }"


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "bma-gateway"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


class _Output:
    """The demo's output, read as it comes (the credentials are needed while it runs)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def rest(self) -> str:
        self._thread.join(30)
        return self.text


def _wait_ready(url: str, process: subprocess.Popen, output: _Output, timeout: float = 120) -> None:
    def ready() -> bool:
        assert process.poll() is None, output.rest()
        try:
            up = httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            up = False
        return up and "Ctrl-C stops everything." in output.text

    try:
        wait_until(ready, timeout=timeout, what="demo serving")
    except AssertionError:
        raise AssertionError(f"the demo did not come up: {output.text}") from None


def _exported(output: str) -> dict[str, str]:
    return dict(re.findall(r"export (BMA_[A-Z_]+)='([^']+)'", output))


def test_demo_serves_the_fifty_district_query_and_stops_cleanly(
    server_url, db, tmp_path, monkeypatch, capsys
):
    """``db`` first: it leaves the demo its databases (conftest's _demo_copies)."""
    port = free_port()
    process = subprocess.Popen(
        [
            *_cli(),
            "demo",
            "--database-url",
            server_url,
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            # Read as `serve` reads it; the demo's own wiring is not taken from it.
            "BMA_RATE_LIMITS": '{"anonymous": {"rate": 1000, "burst": 777}}',
            "BMA_TAX_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/elsewhere",
        },
    )
    output = _Output(process)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, output)
        response = httpx.post(url + "/graphql", json={"query": QUERY}, timeout=30)
        assert response.headers["ratelimit-limit"] == "777"
        assert "BMA_TAX_DATABASE_URL is ignored: the demo sets it itself" in output.text
        districts = response.json()["data"]["districts"]
        assert len(districts) == 50
        for d in districts:
            assert d["complaintStats"]["total"] > 0
            assert float(d["taxRevenue"]["collected"]) > 0
            assert d["businessCount"] > 0
        assert httpx.get(url + "/readyz", timeout=30).json()["status"] == "ready"
        _check_credentials(url, _exported(output.text), tmp_path)
        _check_audit(url, _exported(output.text), output.text, monkeypatch, capsys)
        _send_a_query_string(url)
        run(_check_roles(server_url, tmp_path))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    output = output.rest()
    assert process.returncode == 0, output
    assert "Traffy stand-in" in output and f"127.0.0.1:{port}/graphql" in output
    assert "Stopped." in output
    assert "Traceback" not in output
    # No access log: a GET's query string (query text, a token) is written nowhere.
    for marker in (QUERY_STRING_MARKER, TOKEN_MARKER, VARIABLE_MARKER):
        assert marker not in output, output
    _check_checkpoints(output, capsys)


def _check_checkpoints(output: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo signed its head at stop, and the printed command verifies the chain against
    it (the database URL and chain key are still set by _check_audit)."""
    command = re.search(r"audit verify --checkpoints (\S+) --checkpoint-key (\S+)", output)
    assert command, output
    capsys.readouterr()
    returncode = main(
        ["audit", "verify", "--checkpoints", command[1], "--checkpoint-key", command[2]]
    )
    verify = capsys.readouterr()
    assert returncode == 0, verify.out + verify.err
    assert "checkpoints match the log" in verify.err


QUERY_STRING_MARKER = "DemoQueryStringMarker"
TOKEN_MARKER = "demo-token-in-a-query-string"
VARIABLE_MARKER = "DemoVariableMarker"


def _send_a_query_string(url: str) -> None:
    params = {
        "query": f"query {QUERY_STRING_MARKER}($c: String!) {{ district(code: $c) {{ code }} }}",
        "variables": f'{{"c": "{VARIABLE_MARKER}"}}',
        "access_token": TOKEN_MARKER,
    }
    response = httpx.get(url + "/graphql", params=params, timeout=30)
    assert response.status_code == 200, response.text


CREDENTIALS = (
    "BMA_API_KEY",
    "BMA_PARTNER_TOKEN",
    "BMA_DISTRICT_OFFICER_TOKEN",
    "BMA_FINANCE_OFFICER_TOKEN",
    "BMA_DPO_TOKEN",
)


def _check_credentials(url: str, exported: dict[str, str], state_dir: Path) -> None:
    """Every printed credential is accepted; a tampered one is not."""
    assert set(exported) == set(CREDENTIALS), exported
    assert exported["BMA_API_KEY"] == (state_dir / "demo-api-key").read_text().strip()
    query = {"query": '{ district(code: "1039") { nameEn businessCount } }'}
    for name, value in exported.items():
        header = (
            {"X-API-Key": value} if name == "BMA_API_KEY" else {"Authorization": f"Bearer {value}"}
        )
        response = httpx.post(url + "/graphql", json=query, headers=header, timeout=30)
        assert response.status_code == 200, (name, response.text)
        assert response.json()["data"]["district"]["nameEn"] == "Khet Watthana"
    header, payload, signature = exported["BMA_PARTNER_TOKEN"].split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    response = httpx.post(
        url + "/graphql", json=query, headers={"Authorization": f"Bearer {forged}"}, timeout=30
    )
    assert response.status_code == 401


def _check_audit(
    url: str,
    exported: dict[str, str],
    output: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A restricted read by the finance officer is in the log the DPO reads, and the chain
    verifies with the command the demo printed (run in this process: the demo's own process
    has shown the installed command starts)."""
    finance = {"Authorization": f"Bearer {exported['BMA_FINANCE_OFFICER_TOKEN']}"}
    read = {"query": "{ parcels(first: 2) { edges { node { id appraisedValue } } } }"}
    response = httpx.post(url + "/graphql", json=read, headers=finance, timeout=30)
    request_id = response.headers["x-request-id"]
    assert response.json()["data"]["parcels"]["edges"][0]["node"]["appraisedValue"]
    log = {
        "query": '{ accessLog(filter: {organisation: "bma-finance"}) { edges { node { requestId } } } }'
    }
    dpo = {"Authorization": f"Bearer {exported['BMA_DPO_TOKEN']}"}
    body = httpx.post(url + "/graphql", json=log, headers=dpo, timeout=30).json()
    assert request_id in [e["node"]["requestId"] for e in body["data"]["accessLog"]["edges"]]
    command = re.search(
        r"BMA_GATEWAY_DATABASE_URL='([^']+)' BMA_AUDIT_KEY_FILE=(\S+) bma-gateway audit verify",
        output,
    )
    assert command, output
    monkeypatch.setenv("BMA_GATEWAY_DATABASE_URL", command[1])
    monkeypatch.setenv("BMA_AUDIT_KEY_FILE", command[2])
    capsys.readouterr()
    returncode = main(["audit", "verify"])
    verify = capsys.readouterr()
    assert returncode == 0, verify.out + verify.err
    assert "audit chain intact" in verify.out


async def _check_roles(server_url: str, state_dir: Path) -> None:
    """Every connection the demo's gateway holds is its least-privileged login, and that
    login is refused a write to the upstream data and a change to the audit log."""
    databases = ["bma_tax", "bma_registry", "bma_gateway"]
    conn = await asyncpg.connect(server_url)
    try:
        users = await conn.fetch(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = ANY($1::text[])",
            databases,
        )
    finally:
        await conn.close()
    assert [r["usename"] for r in users] == [LOGIN_ROLE]
    password = gateway_password(state_dir)
    for database, statement in (
        ("bma_tax", "UPDATE tax.parcels SET appraised_value = 0"),
        ("bma_registry", "DELETE FROM d1039.commercial_registrations"),
        ("bma_gateway", "DELETE FROM audit.records"),
        ("bma_gateway", "UPDATE audit.records SET entry = '{}'"),
    ):
        conn = await asyncpg.connect(login_url(database_url(server_url, database), password))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute(statement)
        finally:
            await conn.close()
