"""Abusive requests: how long the gateway takes to refuse each, and what a flood of them
does to a normal query.

    python -m bench.abuse [--database-url URL] [--repeat 20] [--seconds 10] [--flooders 4]

Starts PostgreSQL (embedded unless ``--database-url``), seeds it, then the Traffy stand-in
and the gateway with its default settings, each in its own process. For every abusive
request (``ABUSES``, the same requests tests/test_abuse.py sends) it reads the server time
of ``--repeat`` refusals from the ``Server-Timing`` header — each request different, so no
cache answers it — and checks status, code and limit. Then a closed-loop client sends the
normal query (the 50 districts' codes and names) for ``--seconds`` alone, and again while
``--flooders`` clients send abusive requests as fast as they are refused, alternating the
two phases; the ratio of the two is the figure, in the same run. The table is written into
docs/benchmarks.md between the ABUSE markers.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from gateway import errors
from gateway.limits.config import DEFAULTS

ANONYMOUS = DEFAULTS["anonymous"]
GATEWAY_MAX_BATCH = 10  # BMA_MAX_BATCH's default: anonymous callers keep it
NORMAL_QUERY = "{ districts { code nameEn } }"
# The refusals are checked by status: asked for in the media type whose status says how the
# request went (application/json answers an operation's request errors with 200).
JSON_HEADERS = {"content-type": "application/json", "accept": "application/graphql-response+json"}


@dataclass(frozen=True)
class Abuse:
    name: str
    # The body of the n-th such request: each n differs, so no cache can answer it.
    body: Callable[[int], bytes]
    status: int
    code: str
    limit: int | None  # extensions.limit the refusal names (anonymous defaults)


def _operation(query: str, variables: dict[str, Any] | None = None) -> bytes:
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    return orjson.dumps(payload)


def _nested(n: int) -> bytes:
    # 250 x 4 = 1,000 levels, every field real: District.complaints.edges.node.district …
    inner = "complaints { edges { node { district { " * 250 + "code" + " } } } }" * 250
    return _operation(f"query Deep{n} {{ districts {{ {inner} }} }}")


def _nested_fragments(n: int) -> bytes:
    # 25 fragments, each 4 levels deeper than the one it spreads: 100 levels in all, though
    # no definition nests more than 5 (and 26 spreads stay under the anonymous 30).
    fragments = " ".join(
        f"fragment F{n}_{i} on District {{ complaints {{ edges {{ node {{ district "
        f"{{ ...F{n}_{i + 1} }} }} }} }} }}"
        for i in range(25)
    )
    last = f"fragment F{n}_25 on District {{ code }}"
    return _operation(f"{{ districts {{ ...F{n}_0 }} }} {fragments} {last}")


def _aliases(n: int) -> bytes:
    # 109 KB: within the anonymous body limit (128 KiB), as an attacker would write it.
    aliases = " ".join(f"a{i}:code" for i in range(10_000))
    return _operation(f"query A{n} {{ districts {{ {aliases} }} }}")


def _spreads(n: int) -> bytes:
    # Validation of spreads side by side grows faster than their number: 1,000 ~350 ms.
    spreads = " ".join(f"...S{n}" for _ in range(1000))
    return _operation(f"{{ districts {{ {spreads} }} }} fragment S{n} on District {{ code }}")


def _tokens(n: int) -> bytes:
    # 100 KB: one list field and 20,000 names in it.
    return _operation(f"query T{n} {{ districts {{ " + "code " * 20_000 + "} }")


def _fragment_cycle(n: int) -> bytes:
    return _operation(
        f"{{ districts {{ ...A{n} }} }} fragment A{n} on District {{ code ...B{n} }} "
        f"fragment B{n} on District {{ nameEn ...A{n} }}"
    )


def _batch(n: int) -> bytes:
    return orjson.dumps(
        [{"query": f"query B{n}_{i} {{ districts {{ code }} }}"} for i in range(1000)]
    )


def _body_10mb(n: int) -> bytes:
    return _operation(f"# {n}\n{{ districts {{ code }} }}" + " " * 10_000_000)


def _deep_json(depth: int) -> Callable[[int], bytes]:
    def body(n: int) -> bytes:
        query = f"query V{n}($v: [Int]) {{ districts {{ code }} }}".encode()
        value = b"[" * depth + b"1" + b"]" * depth
        return b'{"query": "' + query + b'", "variables": {"v": ' + value + b"}}"

    return body


def _costly(n: int) -> bytes:
    return _operation(
        f"query C{n} {{ districts {{ parcels(first: 1000) {{ edges {{ node {{ id "
        "nearbyComplaints(radiusMeters: 500, first: 100) { ticketId } } } } } }"
    )


def _directives(n: int) -> bytes:
    return _operation(f"query D{n} {{ districts {{ " + "code @include(if: true) " * 100 + "} }")


def _root_fields(n: int) -> bytes:
    return _operation(f"query R{n} {{ " + "__typename " * 200 + "}")


ABUSES: list[Abuse] = [
    Abuse("nesting 1,000 deep", _nested, 400, errors.QUERY_TOO_DEEP.code, ANONYMOUS.max_depth),
    Abuse(
        "nesting 100 deep through 25 fragments",
        _nested_fragments,
        400,
        errors.QUERY_TOO_DEEP.code,
        ANONYMOUS.max_depth,
    ),
    Abuse("10,000 aliases", _aliases, 400, errors.TOO_MANY_ALIASES.code, ANONYMOUS.max_aliases),
    Abuse(
        "1,000 fragment spreads side by side",
        _spreads,
        400,
        errors.TOO_MANY_FRAGMENT_SPREADS.code,
        ANONYMOUS.max_fragment_spreads,
    ),
    Abuse(
        "a 100 KB query of 20,000 fields",
        _tokens,
        400,
        errors.TOO_MANY_TOKENS.code,
        ANONYMOUS.max_tokens,
    ),
    Abuse("a fragment cycle", _fragment_cycle, 400, errors.GRAPHQL_VALIDATION_FAILED.code, None),
    Abuse("a 1,000-operation batch", _batch, 400, errors.BATCH_TOO_LARGE.code, GATEWAY_MAX_BATCH),
    Abuse("a 10 MB body", _body_10mb, 413, errors.PAYLOAD_TOO_LARGE.code, ANONYMOUS.max_body_bytes),
    Abuse(
        "variables nested 10,000 deep",
        _deep_json(10_000),
        400,
        errors.VARIABLES_TOO_DEEP.code,
        ANONYMOUS.max_variable_depth,
    ),
    Abuse(
        "variables nested 100 deep",
        _deep_json(100),
        400,
        errors.VARIABLES_TOO_DEEP.code,
        ANONYMOUS.max_variable_depth,
    ),
    Abuse(
        "50 districts x 1,000 parcels x 100 complaints",
        _costly,
        400,
        errors.QUERY_TOO_COSTLY.code,
        ANONYMOUS.max_cost,
    ),
    Abuse(
        "100 directives",
        _directives,
        400,
        errors.TOO_MANY_DIRECTIVES.code,
        ANONYMOUS.max_directives,
    ),
    Abuse(
        "200 root fields",
        _root_fields,
        400,
        errors.TOO_MANY_ROOT_FIELDS.code,
        ANONYMOUS.max_root_fields,
    ),
]


def server_ms(response: httpx.Response) -> float:
    """The gateway's own time for the request, from its ``Server-Timing: app;dur=`` header."""
    return float(response.headers["server-timing"].split("dur=", 1)[1].split(";")[0])


def check(abuse: Abuse, response: httpx.Response) -> dict[str, Any]:
    """The refusal's error, after checking it is the one expected."""
    assert response.status_code == abuse.status, (
        abuse.name,
        response.status_code,
        response.text[:300],
    )
    body = response.json()
    errors = body["errors"] if isinstance(body, dict) else None
    assert errors, (abuse.name, body)
    error = errors[0]
    assert error["extensions"]["code"] == abuse.code, (abuse.name, error)
    if abuse.limit is not None:
        assert error["extensions"]["limit"] == abuse.limit, (abuse.name, error)
    return error


# ---------------------------------------------------------------------------- the benchmark


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def time_refusals(url: str, repeat: int) -> list[tuple[Abuse, list[float], list[float]]]:
    """Per abuse: server ms and client ms of ``repeat`` refusals (after one warm-up)."""
    rows = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for abuse in ABUSES:
            server, client_ms = [], []
            for n in range(repeat + 1):
                body = abuse.body(n + 1_000_000)
                began = time.perf_counter()
                response = client.post("/graphql", content=body, headers=JSON_HEADERS)
                elapsed = (time.perf_counter() - began) * 1000
                check(abuse, response)
                if n:  # the first of each kind warms up
                    server.append(server_ms(response))
                    client_ms.append(elapsed)
            rows.append((abuse, server, client_ms))
    return rows


@dataclass
class Phase:
    latencies: list[float]  # ms of each normal query
    seconds: float
    refused_server_ms: list[float] = field(default_factory=list)  # the flood's, meanwhile
    flood_seconds: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds


async def normal_load(url: str, seconds: float, clients: int, expected: Any) -> Phase:
    """The normal query in a closed loop of ``clients``, every answer checked."""
    stop_at = time.perf_counter() + seconds
    latencies: list[float] = []

    async def normal(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            response = await client.post("/graphql", json={"query": NORMAL_QUERY})
            latencies.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200 and response.json() == expected, response.text[:200]

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        began = time.perf_counter()
        await asyncio.gather(*(normal(client) for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return Phase(latencies, elapsed)


async def _flood(url: str, flooders: int, seed: int, stop: Any, started: Any) -> list[float]:
    """Abusive requests from ``flooders`` clients as fast as they are refused, until
    ``stop``: server ms of each refusal."""
    refused_ms: list[float] = []
    # Each request differs from the others (no cache answers it), except the 10 MB bodies:
    # refused from their Content-Length, they are built once.
    huge = {a.name: a.body(0) for a in ABUSES if a.status == 413}

    async def flood(client: httpx.AsyncClient, i: int) -> None:
        while not stop.is_set():
            abuse = ABUSES[i % len(ABUSES)]
            body = huge.get(abuse.name) or abuse.body(i)
            i += 1
            response = await client.post("/graphql", content=body, headers=JSON_HEADERS)
            check(abuse, response)
            refused_ms.append(server_ms(response))

    async with httpx.AsyncClient(
        base_url=url, limits=httpx.Limits(max_connections=flooders), timeout=60
    ) as client:
        started.set()
        await asyncio.gather(*(flood(client, seed + k * 1_000_000) for k in range(flooders)))
    return refused_ms


def _flood_process(url: str, flooders: int, seed: int, stop: Any, started: Any, out: Any) -> None:
    began = time.perf_counter()
    refused = asyncio.run(_flood(url, flooders, seed, stop, started))
    out.put((refused, time.perf_counter() - began))


def flooded_load(
    url: str, seconds: float, clients: int, flooders: int, seed: int, expected: Any
) -> Phase:
    """The normal load while another process floods the gateway: the flood's client work
    does not slow the normal client's event loop, only the gateway."""
    context = multiprocessing.get_context("spawn")
    stop, started, out = context.Event(), context.Event(), context.Queue()
    process = context.Process(target=_flood_process, args=(url, flooders, seed, stop, started, out))
    process.start()
    try:
        if not started.wait(60):
            raise RuntimeError("the flood did not start")
        time.sleep(0.2)  # under way
        phase = asyncio.run(normal_load(url, seconds, clients, expected))
    finally:
        stop.set()
    phase.refused_server_ms, phase.flood_seconds = out.get(timeout=120)
    process.join(30)
    return phase


def compare(
    url: str, seconds: float, flooders: int, clients: int, rounds: int
) -> tuple[Phase, Phase]:
    expected = httpx.post(url + "/graphql", json={"query": NORMAL_QUERY}, timeout=60).json()
    assert "errors" not in expected, expected
    asyncio.run(normal_load(url, 1, clients, expected))  # warm up
    quiet, flooded = Phase([], 0), Phase([], 0)
    for n in range(rounds):  # alternate, so drift hits both
        alone = asyncio.run(normal_load(url, seconds / rounds, clients, expected))
        quiet.latencies += alone.latencies
        quiet.seconds += alone.seconds
        during = flooded_load(url, seconds / rounds, clients, flooders, n * 10_000_000, expected)
        flooded.latencies += during.latencies
        flooded.seconds += during.seconds
        flooded.refused_server_ms += during.refused_server_ms
        flooded.flood_seconds += during.flood_seconds
    return quiet, flooded


def report(
    refusals: list[tuple[Abuse, list[float], list[float]]],
    quiet: Phase,
    flooded: Phase,
    flooders: int,
    clients: int,
) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores; client, gateway "
        "(default settings, anonymous caller) and PostgreSQL on one machine. Server time: the "
        "gateway's `Server-Timing: app;dur=` — from the request reaching the GraphQL handler "
        "to its response being ready; client time adds HTTP and sending the body.",
        "",
        "| abusive request | answer | limit | server ms, median (max) | client ms, median |",
        "|---|---|---:|---:|---:|",
    ]
    for abuse, server, client_ms in refusals:
        limit = f"{abuse.limit:,}" if abuse.limit is not None else ""
        lines.append(
            f"| {abuse.name} | {abuse.status} `{abuse.code}` | {limit} | "
            f"{statistics.median(server):.2f} ({max(server):.2f}) | "
            f"{statistics.median(client_ms):.1f} |"
        )
    ratio = flooded.throughput / quiet.throughput
    flood_ms = flooded.refused_server_ms or [0.0]
    rate = len(flooded.refused_server_ms) / flooded.flood_seconds if flooded.flood_seconds else 0
    lines += [
        "",
        f"The normal query (`{NORMAL_QUERY}`, {clients} clients in a closed loop), alone and "
        f"while {flooders} clients of another process send the abusive requests above in turn, "
        f"each one new, as fast as they are refused ({rate:.0f} refusals/s; their server time: "
        f"median {statistics.median(flood_ms):.2f} ms, p99 {percentile(flood_ms, 0.99):.2f} "
        "ms). Every normal answer was checked complete and correct; alone and flooded "
        "alternate, and the percentage is the flooded throughput over the one alone:",
        "",
        "| normal query | answers | req/s | p50 ms | p90 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, phase_ in (("alone", quiet), (f"during the flood ({ratio:.0%})", flooded)):
        lat = phase_.latencies
        lines.append(
            f"| {label} | {len(lat)} | {phase_.throughput:.1f} | {percentile(lat, 0.5):.1f} | "
            f"{percentile(lat, 0.9):.1f} | {percentile(lat, 0.99):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    from bench.common import publish, seeded_databases, start

    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--flooders", type=int, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--no-write", action="store_true", help="print, don't update the docs")
    args = parser.parse_args()

    urls, handle = seeded_databases(args.database_url)
    env = {
        **os.environ,
        "BMA_TAX_DATABASE_URL": urls.tax,
        "BMA_REGISTRY_DATABASE_URL": urls.registry,
        "BMA_FINANCE_DATABASE_URL": urls.finance,
        "BMA_TRAFFY_DATABASE_URL": urls.traffy,
        "BMA_RATE_LIMITS": "off",  # the flood comes from one address: measure the limits here
    }
    processes = []
    try:
        traffy, traffy_url = start("traffy", env)
        processes.append(traffy)
        env["BMA_TRAFFY_BASE_URL"] = traffy_url
        gateway, gateway_url = start("gateway", env)
        processes.append(gateway)
        refusals = time_refusals(gateway_url, args.repeat)
        quiet, flooded = compare(
            gateway_url, args.seconds, args.flooders, args.clients, args.rounds
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        del handle
    table = report(refusals, quiet, flooded, args.flooders, args.clients)
    publish("ABUSE", "bench.abuse", sys.argv[1:], table, not args.no_write)


if __name__ == "__main__":
    main()
