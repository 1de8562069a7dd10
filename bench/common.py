"""What the benchmarks share: a seeded PostgreSQL, the servers' processes and their CPU
time, and writing figures into the docs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from connectors.cache import DEFAULT_TTLS
from gateway.demo.embedded import DatabaseUrls, start_embedded
from gateway.demo.run import prepare_databases
from gateway.http.serving import free_port
from gateway.settings import Settings

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
# Every cache off: an uncached gateway asks its upstreams for every request.
CACHES_OFF = json.dumps(dict.fromkeys(DEFAULT_TTLS, 0))


class NullAudit:
    """Stands in for the audit writer where a benchmark measures something else: takes every
    entry and returns at once, writing nothing (same ``record`` as ``AuditWriter``)."""

    async def start(self) -> None:
        pass

    async def record(self, entry: dict[str, Any]) -> int:
        return 0

    async def stop(self) -> None:
        pass


def seeded_databases(database_url: str | None) -> tuple[DatabaseUrls, Any]:
    """The seeded upstream databases on ``database_url``, or on a fresh embedded server
    (keep the returned handle: the embedded server stops when it is collected)."""
    handle = None
    if not database_url:
        database_url, handle = start_embedded(
            Path(tempfile.mkdtemp(prefix="bma-bench-")) / "pgdata"
        )
    return prepare_databases(database_url)[0], handle


def served_settings(urls: DatabaseUrls, traffy_url: str, store_url: str, keys: Path) -> Settings:
    """The settings of a benchmarked `serve` process: the seeded upstreams, a fresh audit
    store, the keys in ``keys`` (``audit.key``, ``issuer.pem``), and no rate limits (one
    client address sends everything: not the abuse the limits stop)."""
    return Settings(
        tax_database_url=urls.tax,
        registry_database_url=urls.registry,
        finance_database_url=urls.finance,
        traffy_base_url=traffy_url,
        gateway_database_url=store_url,
        audit_key_file=keys / "audit.key",
        issuer_key_file=keys / "issuer.pem",
        rate_limits=None,
    )


def write_section(marker: str, table: str, doc: Path = DOC) -> None:
    """Replace what stands between ``<!-- MARKER:START -->`` and ``<!-- MARKER:END -->``."""
    start, end = f"<!-- {marker}:START -->", f"<!-- {marker}:END -->"
    head, _, rest = doc.read_text(encoding="utf-8").partition(start)
    _, _, tail = rest.partition(end)
    doc.write_text(f"{head}{start}\n{table}\n{end}{tail}", encoding="utf-8")


def publish(
    marker: str, script: str, argv: list[str], table: str, write: bool, doc: Path = DOC
) -> None:
    """Print the figures with the command that produced them, and put them in the docs."""
    shown = [a for a in argv if "://" not in a and not a.startswith("--database-url")]
    command = " ".join(["python -m", script, *shown])
    text = f"Command: `{command}`  \n{table}"
    print(text)
    if write:
        write_section(marker, text, doc)


def start(kind: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """``python -m bench.serve KIND PORT`` on a free port; waits until it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.serve", kind, str(port)], env=env, cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{kind} did not start")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(
    database_url: str | None,
    cache_ttls: dict[str, float],
    measure: Callable[[Any], Awaitable[T]],
) -> T:
    """``measure(connectors)`` in this process over the seeded data: the Traffy stand-in in
    its own process, the connectors started around it and stopped after."""
    from gateway.http.app import connectors_from

    urls, handle = seeded_databases(database_url)
    env = {**os.environ, "BMA_TRAFFY_DATABASE_URL": urls.traffy}
    traffy, traffy_url = start("traffy", env)
    try:
        connectors = connectors_from(
            Settings(
                tax_database_url=urls.tax,
                registry_database_url=urls.registry,
                finance_database_url=urls.finance,
                traffy_base_url=traffy_url,
                cache_ttls=cache_ttls,
            )
        )

        async def go() -> T:
            await asyncio.gather(*(c.start() for c in connectors.all()))
            try:
                return await measure(connectors)
            finally:
                await asyncio.gather(*(c.stop() for c in connectors.all()))

        return asyncio.run(go())
    finally:
        traffy.terminate()
        traffy.wait(10)
        del handle
