"""Capacity: what one replica serves per core, and how many replicas a city-wide load needs.

    python -m bench.capacity [--seconds 10] [--rounds 3] [--connections 16]
                             [--peak 500] [--mix cached=0.7,uncached=0.2,restricted=0.1]
                             [--database-url URL]

Starts PostgreSQL (embedded unless ``--database-url``), seeds it, then the Traffy stand-in
and two gateway replicas as `bma-gateway serve` runs them (one process, one event loop: one
core each): one with the default caches, one with every cache off. Redis when ``REDIS_URL``
is set, as a deployment shares it. Three workloads, each at saturation (closed loop,
``--connections`` keep-alive connections), in alternating rounds:

- open, cached: the 50-district query, answered from the response cache;
- open, uncached: a district and its first 20 parcels, the district varying (caches off);
- restricted, audited: one parcel with its appraised value and owner, as a finance officer,
  the parcel varying; every answer writes an audit record.

Per workload: the gateway's CPU per request (user + system time of its process over the
round, divided by its answers), hence requests per second per core; PostgreSQL's CPU per
request (the postmaster and its backends); and the most PostgreSQL connections the replica
held at once (sampled from ``pg_stat_activity``). From these and a stated peak and mix, the
sizing rule's figures go into docs/operations.md between the CAPACITY markers.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.audit_http import fresh_store, requests_for
from bench.common import (
    CACHES_OFF,
    ROOT,
    cpu_seconds,
    publish,
    seeded_databases,
    served_settings,
    start,
)
from bench.http_load import encode_graphql, load
from bench.run import DISTRICTS, ONE_PARCEL, issue_tokens
from gateway.audit.store import create_key
from gateway.settings import Settings

OPERATIONS = ROOT / "docs" / "operations.md"
DISTRICT_PAGE = (
    "query($code: String!) { district(code: $code) { code nameTh nameEn businessCount } "
    "parcels(filter: {district: $code}, first: 20) { edges { node { id landUse areaSqm "
    "location { lat lon } } } } }"
)
CODES = [str(code) for code in range(1001, 1051)]
WORKLOADS = {
    "cached": "open, cached: the 50-district query (response cache)",
    "uncached": "open, uncached: a district and its first 20 parcels (caches off)",
    "restricted": "restricted, audited: one parcel with appraised value and owner",
}
TARGET_UTILISATION = 0.6  # of a replica's core at peak: headroom for bursts and GC pauses


@dataclass
class Workload:
    name: str
    replica: str  # its application_name's tail
    url: str
    pid: int  # the gateway process serving it
    requests: list[bytes]
    rps: list[float] = field(default_factory=list)
    gateway_ms: list[float] = field(default_factory=list)  # gateway CPU per request
    postgres_ms: list[float] = field(default_factory=list)  # PostgreSQL CPU per request
    connections: int = 0  # the most PostgreSQL connections seen from this replica

    def per_core(self) -> float:
        return 1000 / statistics.median(self.gateway_ms)


class PostgresCpu:
    """CPU time of one PostgreSQL server: its postmaster, the backends it has reaped, and
    those alive (Linux /proc; the server must run on this machine)."""

    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster

    def seconds(self) -> float:
        total = _proc_cpu(self.postmaster, children=True)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _parent(entry) == self.postmaster:
                total += _proc_cpu(int(entry.name), children=False)
        return total


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _parent(entry: Path) -> int:
    try:
        return int(_stat(int(entry.name))[1])
    except (OSError, ValueError):  # gone meanwhile
        return -1


def _proc_cpu(pid: int, children: bool) -> float:
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:  # reaped children's time: backends that ended during the round
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


async def postmaster_pid(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        data = await conn.fetchval("SHOW data_directory")
    finally:
        await conn.close()
    return int((Path(data) / "postmaster.pid").read_text().split()[0])


def tagged(url: str, replica: str) -> str:
    """``url`` with an ``application_name`` naming the replica: its backends are told apart
    in ``pg_stat_activity`` (asyncpg sends unknown URL parameters as server settings)."""
    return f"{url}{'&' if '?' in url else '?'}application_name=bma-{replica}"


def replica_settings(settings: Settings, replica: str) -> Settings:
    urls = ("tax_database_url", "registry_database_url", "finance_database_url")
    urls += ("gateway_database_url",)
    return settings.model_copy(update={u: tagged(getattr(settings, u), replica) for u in urls})


async def held_connections(url: str, replica: str, stop: asyncio.Event) -> int:
    """Sample the replica's backends until ``stop``; the most seen at once."""
    conn = await asyncpg.connect(url)
    most = 0
    try:
        while not stop.is_set():
            n = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                f"bma-{replica}",
            )
            most = max(most, n)
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return most


async def one_round(
    w: Workload, seconds: float, connections: int, pg: PostgresCpu, url: str
) -> None:
    stop = asyncio.Event()
    sampler = asyncio.create_task(held_connections(url, w.replica, stop))
    gw, pg_began = cpu_seconds(w.pid), pg.seconds()
    result = await load(w.url, w.requests, seconds, connections)
    gw_used, pg_used = cpu_seconds(w.pid) - gw, pg.seconds() - pg_began
    stop.set()
    w.connections = max(w.connections, await sampler)
    w.rps.append(result.throughput)
    w.gateway_ms.append(gw_used / result.requests * 1000)
    w.postgres_ms.append(pg_used / result.requests * 1000)


def parse_mix(text: str) -> dict[str, float]:
    mix = {name: float(share) for name, share in (p.split("=") for p in text.split(","))}
    if set(mix) - set(WORKLOADS) or not math.isclose(sum(mix.values()), 1.0):
        raise argparse.ArgumentTypeError(f"shares of {', '.join(WORKLOADS)} summing to 1")
    return mix


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--seconds", type=float, default=10, help="per workload and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--peak", type=float, default=500, help="city-wide peak, req/s")
    parser.add_argument(
        "--mix", type=parse_mix, default=parse_mix("cached=0.7,uncached=0.2,restricted=0.1")
    )
    parser.add_argument("--no-write", action="store_true", help="print, don't update the docs")
    return parser.parse_args()


def report(ws: list[Workload], args: argparse.Namespace, pool_bound: int) -> str:
    lines = [
        "| workload | req/s, one replica at saturation | gateway CPU ms per request | "
        "req/s per core | PostgreSQL CPU ms per request | PostgreSQL connections held |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for w in ws:
        lines.append(
            f"| {WORKLOADS[w.name]} | {statistics.median(w.rps):.0f} "
            f"| {statistics.median(w.gateway_ms):.2f} | {w.per_core():.0f} "
            f"| {statistics.median(w.postgres_ms):.2f} | {w.connections} |"
        )
    by_name = {w.name: w for w in ws}
    mix = args.mix
    gateway_ms = sum(share * statistics.median(by_name[n].gateway_ms) for n, share in mix.items())
    postgres_ms = sum(share * statistics.median(by_name[n].postgres_ms) for n, share in mix.items())
    cores = args.peak * gateway_ms / 1000
    replicas = math.ceil(cores / TARGET_UTILISATION) + 1
    shown_mix = ", ".join(f"{share:.0%} {n}" for n, share in mix.items())
    held = max(w.connections for w in ws)
    lines += [
        "",
        f"Sizing for a peak of {args.peak:.0f} req/s of {shown_mix}: the mix costs "
        f"{gateway_ms:.2f} ms of gateway CPU per request, so {cores:.2f} cores at peak; at "
        f"{TARGET_UTILISATION:.0%} of a core per replica that is "
        f"{_replicas(math.ceil(cores / TARGET_UTILISATION))}, plus one for a rolling update or "
        f"a lost node: **{replicas} replicas** (one core each). PostgreSQL does "
        f"{postgres_ms:.2f} ms of CPU per request of the mix: {args.peak * postgres_ms / 1000:.2f} "
        f"cores at peak. Each replica held at most {held} PostgreSQL connections here and "
        f"may open up to {pool_bound} (its pools' bound, `BMA_DB_POOL_MAX` per pool, which a "
        "saturating load fills): "
        f"{replicas} replicas need up to {replicas * pool_bound} connections — within "
        "PostgreSQL's `max_connections` or through PgBouncer.",
    ]
    return "\n".join(lines)


def _replicas(n: int) -> str:
    return f"{n} replica" + ("" if n == 1 else "s")


def pool_bound(settings: Settings) -> int:
    """The most connections one replica may open: a pool per distinct upstream URL, plus the
    API keys', registered documents' and audit log reader's pools (2 each) and the audit
    writer's one."""
    urls = {settings.tax_database_url, settings.registry_database_url}
    urls |= {settings.finance_database_url, *settings.registry_district_urls.values()}
    return len(urls) * settings.db_pool_max + 2 + 2 + 2 + 1


def main() -> None:
    args = parse_args()
    urls, handle = seeded_databases(args.database_url)
    store_url, ids = asyncio.run(fresh_store(urls.tax))
    keys = Path(tempfile.mkdtemp(prefix="bma-capacity-keys-"))
    create_key(keys / "audit.key")
    officer = issue_tokens(keys)["officer"]
    env = {**os.environ, "BMA_TRAFFY_DATABASE_URL": urls.traffy}
    processes: list[subprocess.Popen] = []
    try:
        traffy, traffy_url = start("traffy", env)
        processes.append(traffy)
        settings = served_settings(urls, traffy_url, store_url, keys)
        cached, cached_url = start(
            "gateway", {**env, **replica_settings(settings, "cached").to_env()}
        )
        uncached_env = {**env, **replica_settings(settings, "uncached").to_env()}
        uncached, uncached_url = start("gateway", {**uncached_env, "BMA_CACHE_TTLS": CACHES_OFF})
        processes += [cached, uncached]
        page = [encode_graphql(uncached_url, DISTRICT_PAGE, {"code": c}) for c in CODES]
        workloads = [
            Workload(
                "cached", "cached", cached_url, cached.pid, [encode_graphql(cached_url, DISTRICTS)]
            ),
            Workload("uncached", "uncached", uncached_url, uncached.pid, page),
            Workload(
                "restricted",
                "uncached",
                uncached_url,
                uncached.pid,
                requests_for(uncached_url, officer, ONE_PARCEL, ids),
            ),
        ]
        asyncio.run(measure(workloads, args, urls.tax))
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        del handle
    text = (
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores with client, replicas "
        "and PostgreSQL on one "
        f"machine (Redis: {'yes' if os.environ.get('REDIS_URL') else 'no, memory'}); medians "
        f"of {args.rounds} alternating rounds of {args.seconds:g} s at {args.connections} "
        "connections.\n\n" + report(workloads, args, pool_bound(settings))
    )
    argv = [a for a in sys.argv[1:] if a != "--no-write"]
    publish("CAPACITY", "bench.capacity", argv, text, not args.no_write, OPERATIONS)


async def measure(ws: list[Workload], args: argparse.Namespace, tax: str) -> None:
    pg = PostgresCpu(await postmaster_pid(tax))
    for w in ws:  # warm pools, plans and the response cache
        await load(w.url, w.requests, 1.0, args.connections)
    for n in range(args.rounds):
        k = n % len(ws)
        for w in ws[k:] + ws[:k]:
            await one_round(w, args.seconds, args.connections, pg, tax)
        print(f"round {n + 1} of {args.rounds} done", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
