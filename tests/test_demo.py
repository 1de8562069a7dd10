"""`bma-gateway demo` end to end: a process that seeds, serves, answers and stops on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.serving import free_port

QUERY = "{ districts { code nameTh complaintStats { total } taxRevenue(year: 2025) { collected } businessCount } }"


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "bma-gateway"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError("the demo did not come up")


def test_demo_serves_the_fifty_district_query_and_stops_cleanly(server_url):
    port = free_port()
    process = subprocess.Popen(
        [*_cli(), "demo", "--database-url", server_url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        response = httpx.post(url + "/graphql", json={"query": QUERY}, timeout=30)
        districts = response.json()["data"]["districts"]
        assert len(districts) == 50
        for d in districts:
            assert d["complaintStats"]["total"] > 0
            assert float(d["taxRevenue"]["collected"]) > 0
            assert d["businessCount"] > 0
        assert httpx.get(url + "/readyz", timeout=30).json()["status"] == "ready"
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traffy stand-in" in output and f"127.0.0.1:{port}/graphql" in output
    assert "Stopped." in output
    assert "Traceback" not in output
