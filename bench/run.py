"""Benchmarks: the gateway against the endpoints and the peer a user would pick instead, in
one run.

    python -m bench.run [--only parcels,complaints,...] [--seconds 5] [--rounds 5]
                        [--connections 8] [--levels 1,8,32,128] [--database-url URL]

Starts PostgreSQL (embedded unless ``--database-url``), seeds it, then each server in its
own process: the Traffy stand-in; the gateway with every cache off (auditing to a fresh
store), the same gateway with an audit writer that writes nothing, the gateway with its
default caches; the hand-written Starlette endpoints (bench/baseline.py); and PostGraphile 5
over the tax database (bench/postgraphile.py; skipped, with the reason, when npm cannot
install it). It checks that the arms of each scenario answer the same rows, then loads them
with the same closed-loop client (bench/http_load.py) in alternating rounds: in each round
every arm of every scenario runs once, in an order that rotates from round to round, so
drift on this shared machine hits every arm alike. Per arm: the median over the rounds of
req/s, p50 and p99 latency and the server process's CPU time per request (from /proc), and
the error answers by ``extensions.code``; per comparison, the median (and range) of the
rounds' throughput ratios. The tables go into docs/benchmarks.md between markers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import postgraphile
from bench.audit_http import fresh_store, requests_for
from bench.common import CACHES_OFF, cpu_seconds, publish, seeded_databases, served_settings, start
from bench.http_load import Result, encode_get, encode_graphql, graphql_error_codes, load
from gateway.audit.store import create_key
from gateway.auth.issuer import EmbeddedIssuer
from gateway.http.serving import free_port

DISTRICTS = (
    "{ districts { code nameTh complaintStats { total } taxRevenue(year: 2025) { collected } "
    "businessCount } }"
)
COMPLAINTS = (
    "{ complaints(first: 1000) { totalCount edges { node { ticketId type state description "
    "address location { lat lon } reportedAt lastActivityAt photoUrl district { code } } } } }"
)
# 10 fields per row (node and 9 below it) over 7 public columns of tax.parcels.
PARCELS = (
    "{ parcels(first: 1000) { totalCount edges { node { id titleDeedType landUse areaSqm "
    "location { lat lon } district { code } } } } }"
)
RESTRICTED_PARCELS = (
    "{ parcels(first: 1000) { edges { node { id appraisedValue owner { name nationalId } } } } }"
)
PUBLIC_PARCELS = (
    "{ parcels(first: 1000) { edges { node { id landUse areaSqm location { lat lon } } } } }"
)
ONE_PARCEL = "query($id: ID!) { parcel(id: $id) { id appraisedValue owner { name nationalId } } }"
SCENARIOS = ("districts", "parcels", "complaints", "restricted", "audit", "cache", "connections")


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    pid: int


@dataclass
class Arm:
    """One server under one load: its requests and each round's figures."""

    label: str
    server: Server
    requests: list[bytes]
    results: list[Result] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # the server's CPU per request

    def run(self, seconds: float, connections: int) -> Result:
        return asyncio.run(
            load(self.server.url, self.requests, seconds, connections, tally=graphql_error_codes)
        )

    def round(self, seconds: float, connections: int) -> None:
        began = cpu_seconds(self.server.pid)
        result = self.run(seconds, connections)
        used = cpu_seconds(self.server.pid) - began
        self.cpu_ms.append(used / max(result.requests, 1) * 1000)
        self.results.append(result)

    def median(self, figure: Callable[[Result], float]) -> float:
        return statistics.median(figure(r) for r in self.results)

    def errors(self) -> Counter[str]:
        return sum((r.errors for r in self.results), Counter())


@dataclass
class Scenario:
    """Arms loaded alike; each comparison is (arm, reference arm), by their labels."""

    name: str
    connections: int
    arms: list[Arm]
    comparisons: list[tuple[str, str]]
    skipped: list[str] = field(default_factory=list)  # arms that could not run, and why

    def arm(self, label: str) -> Arm:
        return next(a for a in self.arms if a.label == label)

    def ratios(self, label: str, reference: str) -> list[float]:
        pairs = zip(self.arm(label).results, self.arm(reference).results, strict=True)
        return [a.good_throughput / b.good_throughput for a, b in pairs if b.good_throughput]


GATEWAY = "gateway"
HAND = "hand-written Starlette + asyncpg, the connector's SQL"
PLAIN = "hand-written, plain SQL (no count(*))"
PEER = f"PostGraphile {postgraphile.POSTGRAPHILE_VERSION} (Node {postgraphile.NODE_VERSION})"


def graphql(server: Server, query: str, headers: dict[str, str] | None = None) -> list[bytes]:
    return [encode_graphql(server.url, query, None, headers)]


def get(server: Server, path: str) -> list[bytes]:
    return [encode_get(server.url, path)]


def answer(server: Server, query: str | None = None, path: str = "/graphql", **kw: Any) -> Any:
    if query is None:
        response = httpx.get(server.url + path, timeout=120)
    else:
        response = httpx.post(server.url + path, json={"query": query, **kw}, timeout=120)
    return orjson.loads(response.content)


def clean(document: Any, what: str) -> Any:
    if "errors" in document:
        raise AssertionError(f"{what}: {document['errors'][:2]}")
    return document


def scenarios(
    s: dict[str, Server],
    tokens: dict[str, str],
    ids: list[str],
    args: argparse.Namespace,
    peer_skipped: str = "",
) -> list[Scenario]:
    """The scenarios ``--only`` asks for, their answers checked alike before any load;
    ``peer_skipped`` says why PostGraphile is not among the servers."""
    only, n = args.only, args.connections
    built: list[Scenario] = []
    gw, base, peer = s["uncached"], s["baseline"], s.get("postgraphile")

    def parcels_arms() -> tuple[list[Arm], list[str]]:
        ours = clean(answer(gw, PARCELS), "gateway parcels")
        assert answer(base, path="/parcels") == ours, "parcels: gateway and hand-written differ"
        plain = answer(base, path="/parcels/plain")["data"]["parcels"]["edges"]
        assert plain == ours["data"]["parcels"]["edges"], "parcels: plain SQL differs"
        arms = [
            Arm(GATEWAY, gw, graphql(gw, PARCELS)),
            Arm(HAND, base, get(base, "/parcels")),
            Arm(PLAIN, base, get(base, "/parcels/plain")),
        ]
        if peer is None:
            return arms, [f"{PEER}: {peer_skipped}"]
        theirs = clean(answer(peer, postgraphile.QUERY), "PostGraphile parcels")
        assert postgraphile.same_rows(ours, theirs), "parcels: gateway and PostGraphile differ"
        return [*arms, Arm(PEER, peer, graphql(peer, postgraphile.QUERY))], []

    if "districts" in only:
        expected = clean(answer(gw, DISTRICTS), "gateway districts")
        assert answer(base, path="/districts") == expected, "districts: answers differ"
        built.append(
            Scenario(
                "50-district integrated query, uncached",
                n,
                [
                    Arm(GATEWAY, gw, graphql(gw, DISTRICTS)),
                    Arm(HAND, base, get(base, "/districts")),
                ],
                [(GATEWAY, HAND)],
            )
        )
    if "parcels" in only:
        arms, skipped = parcels_arms()
        refs = [a.label for a in arms[1:]]
        built.append(
            Scenario(
                "1,000 parcels x 10 public fields, uncached",
                n,
                arms,
                [(GATEWAY, r) for r in refs],
                skipped,
            )
        )
    if "complaints" in only:
        expected = clean(answer(gw, COMPLAINTS), "gateway complaints")
        assert answer(base, path="/complaints") == expected, "complaints: answers differ"
        built.append(
            Scenario(
                "1,000 complaints x 10 fields, uncached",
                n,
                [
                    Arm(GATEWAY, gw, graphql(gw, COMPLAINTS)),
                    Arm(HAND, base, get(base, "/complaints")),
                ],
                [(GATEWAY, HAND)],
            )
        )
    if "restricted" in only:
        officer = {"authorization": f"Bearer {tokens['officer']}"}
        partner = {"authorization": f"Bearer {tokens['partner']}"}
        clear = clean(answer_as(gw, RESTRICTED_PARCELS, officer), "finance officer")
        masked = clean(answer_as(gw, RESTRICTED_PARCELS, partner), "partner")
        assert clear != masked, "the partner's owners are not masked"
        clean(answer(gw, PUBLIC_PARCELS), "anonymous parcels")
        labels = (
            "gateway, finance officer (clear)",
            "gateway, partner (masked)",
            "gateway, anonymous: the same rows' public fields",
        )
        built.append(
            Scenario(
                "1,000 parcels with appraisedValue and owner { name nationalId }",
                n,
                [
                    Arm(labels[0], gw, graphql(gw, RESTRICTED_PARCELS, officer)),
                    Arm(labels[1], gw, graphql(gw, RESTRICTED_PARCELS, partner)),
                    Arm(labels[2], gw, graphql(gw, PUBLIC_PARCELS)),
                ],
                [(labels[0], labels[2]), (labels[1], labels[2])],
            )
        )
    if "audit" in only:
        on, off = s["uncached"], s["unaudited"]
        officer = {"authorization": f"Bearer {tokens['officer']}"}
        one = {"id": ids[0]}
        assert answer_as(on, ONE_PARCEL, officer, one) == answer_as(off, ONE_PARCEL, officer, one)
        labels = ("gateway, auditing on", "gateway, auditing off")
        built.append(
            Scenario(
                "one parcel with owner, finance officer (ids vary)",
                n,
                [
                    Arm(labels[0], on, requests_for(on.url, tokens["officer"], ONE_PARCEL, ids)),
                    Arm(labels[1], off, requests_for(off.url, tokens["officer"], ONE_PARCEL, ids)),
                ],
                [labels],
            )
        )
    if "cache" in only:
        cached = s["cached"]
        expected = clean(answer(cached, DISTRICTS), "cached districts")
        assert answer(base, path="/districts/saved") == expected, "cache: answers differ"
        labels = ("gateway, response cache", "hand-written, the saved bytes")
        built.append(
            Scenario(
                "50-district query, cached",
                n,
                [
                    Arm(labels[0], cached, graphql(cached, DISTRICTS)),
                    Arm(labels[1], base, get(base, "/districts/saved")),
                ],
                [labels],
            )
        )
    if "connections" in only:
        for level in args.levels:
            arms, skipped = parcels_arms()
            arms = [a for a in arms if a.label != PLAIN]
            built.append(
                Scenario(
                    "1,000 parcels x 10 public fields, uncached, by connections",
                    level,
                    arms,
                    [(GATEWAY, a.label) for a in arms[1:]],
                    skipped,
                )
            )
    return built


def answer_as(server: Server, query: str, headers: dict[str, str], variables: Any = None) -> Any:
    response = httpx.post(
        server.url + "/graphql",
        json={"query": query, "variables": variables},
        headers=headers,
        timeout=120,
    )
    return orjson.loads(response.content)


def measure(built: list[Scenario], args: argparse.Namespace) -> None:
    for scenario in built:  # warm pools, plans and caches
        for arm in scenario.arms:
            arm.run(min(1.0, args.seconds), scenario.connections)
    for round_ in range(args.rounds):
        for scenario in built:
            k = round_ % len(scenario.arms)
            for arm in scenario.arms[k:] + scenario.arms[:k]:
                arm.round(args.seconds, scenario.connections)
        print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr, flush=True)


def errors_text(errors: Counter[str]) -> str:
    return ", ".join(f"{code} {n}" for code, n in sorted(errors.items())) or "0"


def report(built: list[Scenario], args: argparse.Namespace) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} on {os.cpu_count()} cores, client, "
        "servers and PostgreSQL on one machine; closed-loop keep-alive connections, medians "
        f"of {args.rounds} alternating rounds of {args.seconds:g} s. req/s counts answers "
        "without errors; latencies are of every answer; server CPU is the server process's "
        "user and system time over a round divided by its answers (PostgreSQL's own work is "
        "not in it).",
        "",
        "| scenario | connections | server | req/s | p50 ms | p99 ms | server CPU ms per "
        "request | error answers (by code) |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for sc in built:
        for arm in sc.arms:
            lines.append(
                f"| {sc.name} | {sc.connections} | {arm.label} "
                f"| {arm.median(lambda r: r.good_throughput):.1f} "
                f"| {arm.median(lambda r: r.percentile(0.5)):.1f} "
                f"| {arm.median(lambda r: r.percentile(0.99)):.1f} "
                f"| {statistics.median(arm.cpu_ms):.2f} | {errors_text(arm.errors())} |"
            )
        for reason in sc.skipped:
            lines.append(f"| {sc.name} | {sc.connections} | skipped: {reason} | | | | | |")
    lines += [
        "",
        "| scenario | connections | gateway arm | reference | gateway / reference "
        "throughput, median (range over rounds) |",
        "|---|---:|---|---|---:|",
    ]
    for sc in built:
        for label, reference in sc.comparisons:
            ratios = sc.ratios(label, reference)
            figure = (
                f"{statistics.median(ratios):.0%} ({min(ratios):.0%}–{max(ratios):.0%})"
                if ratios
                else "no answers"
            )
            lines.append(f"| {sc.name} | {sc.connections} | {label} | {reference} | {figure} |")
    return "\n".join(lines)


def issue_tokens(keys: Path) -> dict[str, str]:
    issuer = EmbeddedIssuer.open(keys / "issuer.pem")
    ttl = timedelta(hours=6)
    return {
        "officer": issuer.issue(
            "agency",
            "bma-finance",
            "tax:read tax:personal",
            "confidential",
            purpose="tax-collection",
            ttl=ttl,
        ),
        "partner": issuer.issue(
            "partner", "utility-partner", "tax:read", "internal", purpose="research", ttl=ttl
        ),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default=set(SCENARIOS),
        help=f"scenarios, comma-separated, of: {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--seconds", type=float, default=5, help="per arm and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8, help="except --levels' scenario")
    parser.add_argument(
        "--levels",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 8, 32, 128],
        help="connections of the 'connections' scenario, comma-separated",
    )
    parser.add_argument("--no-postgraphile", action="store_true", help="skip the peer arm")
    parser.add_argument("--section", default="BENCH", help="the docs' markers to write between")
    parser.add_argument("--note", default="", help="a line to print above the tables")
    parser.add_argument("--no-write", action="store_true", help="print, don't update the docs")
    args = parser.parse_args()
    if unknown := args.only - set(SCENARIOS):
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    return args


def main() -> None:
    args = parse_args()
    urls, handle = seeded_databases(args.database_url)
    store_url, ids = asyncio.run(fresh_store(urls.tax))
    keys = Path(tempfile.mkdtemp(prefix="bma-bench-keys-"))
    create_key(keys / "audit.key")
    tokens = issue_tokens(keys)
    env = {**os.environ, "BMA_TRAFFY_DATABASE_URL": urls.traffy}
    processes: list[subprocess.Popen] = []
    servers: dict[str, Server] = {}

    def serve(name: str, kind: str, extra: dict[str, str] | None = None) -> None:
        process, url = start(kind, {**env, **(extra or {})})
        processes.append(process)
        servers[name] = Server(name, url, process.pid)

    try:
        serve("traffy", "traffy")
        settings = served_settings(urls, servers["traffy"].url, store_url, keys)
        env.update(settings.to_env())
        serve("uncached", "gateway", {"BMA_CACHE_TTLS": CACHES_OFF})
        serve("unaudited", "gateway-unaudited", {"BMA_CACHE_TTLS": CACHES_OFF})
        serve("cached", "gateway")
        serve("baseline", "baseline")
        node = "--no-postgraphile given" if args.no_postgraphile else postgraphile.install()
        skipped = ""
        if isinstance(node, Path):
            process, url = postgraphile.start(node, urls.tax, free_port())
            processes.append(process)
            servers["postgraphile"] = Server("postgraphile", url, process.pid)
        else:
            skipped = node
            print(f"PostGraphile skipped: {node}", file=sys.stderr)
        built = scenarios(servers, tokens, ids, args, skipped)
        measure(built, args)
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        del handle
    text = "\n\n".join(filter(None, [args.note, report(built, args)]))
    publish(args.section, "bench.run", shown_argv(sys.argv[1:]), text, not args.no_write)


def shown_argv(argv: list[str]) -> list[str]:
    """The arguments that change the figures: without where they are written or labelled."""
    shown, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--section", "--note"):
            skip = True
        elif not a.startswith(("--section=", "--note=")):
            shown.append(a)
    return shown


if __name__ == "__main__":
    main()
