"""What a registered document saves: the same operation sent in full and named by hash.

    python -m bench.trusted_documents [--database-url URL] [--rounds 4] [--seconds 3]

Starts PostgreSQL (embedded unless ``--database-url``), seeds it, registers the documents
below in the gateway's database (as ``bma-gateway documents add`` does), then the Traffy
stand-in and two gateways in their own processes with ``BMA_TRUSTED_DOCUMENTS=allow``: one
with every cache off (the uncached path: parse-cache lookup, plan, execution, upstream
calls) and one with its default caches (the cached path: the response cache answers). Each
document is loaded, anonymously, with the same closed-loop client (bench/http_load.py),
alternately in full (``{"query": ...}``), by hash (``{"documentId": "sha256:..."}``) and
in full again (a control: the spread between two identical arms is the noise of the machine),
in rounds whose order swaps so that drift hits all three. Both answer the same bytes (checked
first). The figures are medians over the rounds and their ratios. Written into
docs/benchmarks.md between the TRUSTED markers.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time

import asyncpg
import httpx
import orjson

from bench.common import publish, seeded_databases
from bench.http_load import Result, encode_post, graphql_ok, load
from bench.run import start
from connectors.cache import DEFAULT_TTLS
from gateway.execution.document_registry import NewDocument, add_documents, ensure_schema
from gateway.execution.documents import CACHEABLE_LENGTH

ROW = "ticketId type state reportedAt district { code nameEn }"
# An app's list screen: one upstream call (Traffy) when nothing is cached.
SMALL = f"query RecentComplaints {{ complaints(first: 20) {{ edges {{ node {{ {ROW} }} }} }} }}"


def large_document() -> str:
    """The same operation as a 25 KB document (comments documenting the screen's fields, as a
    generated client's documents may carry): over the 20,000 characters whose parse and
    validation the gateway keeps by text, so sent in full it is parsed and validated on
    every request."""
    note = "# " + "เรื่องร้องเรียนล่าสุดสำหรับหน้าจอรายการ / recent complaints for the list screen " * 2
    lines = [
        "query RecentComplaintsDocumented {",
        "  complaints(first: 20) { edges { node { ...ComplaintRow } } }",
        "}",
        "fragment ComplaintRow on Complaint {",
    ]
    lines += [f"  {note}{n}" for n in range(140)]
    lines += [f"  {ROW}", "}"]
    text = "\n".join(lines) + "\n"
    assert len(text) > CACHEABLE_LENGTH, len(text)
    return text


CASES = {
    f"small document ({len(SMALL)} characters)": SMALL,
    "large document (over the 20,000-character text cache)": large_document(),
}
CACHES_OFF = json.dumps(dict.fromkeys(DEFAULT_TTLS, 0))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def register(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await ensure_schema(conn)
        documents = [NewDocument(sha(t), t, ()) for t in CASES.values()]
        await add_documents(conn, "bench", documents)
    finally:
        await conn.close()


# path, case, bytes in full, by hash; the results in full, by hash, in full again
Row = tuple[str, str, int, int, Result, Result, Result]
ARMS = ("full", "hash", "control")


def measure(gateways: dict[str, str], rounds: int, seconds: float, concurrency: int) -> list[Row]:
    rows = []
    for path, url in gateways.items():
        for name, text in CASES.items():
            full_payload = {"query": text}
            hashed_payload = {"documentId": f"sha256:{sha(text)}"}
            full = httpx.post(url + "/graphql", json=full_payload, timeout=60)
            hashed = httpx.post(url + "/graphql", json=hashed_payload, timeout=60)
            assert full.status_code == 200 and full.content == hashed.content, name
            full_request = encode_post(url, full_payload)
            arms = {
                "full": [full_request],
                "hash": [encode_post(url, hashed_payload)],
                "control": [full_request],
            }
            for arm in arms.values():  # warm pools, caches and the parse
                asyncio.run(load(url, arm, 1, concurrency, graphql_ok))
            results: dict[str, list[Result]] = {arm: [] for arm in ARMS}
            for n in range(rounds):
                order = ARMS if n % 2 == 0 else tuple(reversed(ARMS))
                for arm_name in order:
                    result = asyncio.run(
                        load(url, arms[arm_name], seconds, concurrency, graphql_ok)
                    )
                    results[arm_name].append(result)
            sizes = (len(orjson.dumps(full_payload)), len(orjson.dumps(hashed_payload)))
            medians = [median(results[arm]) for arm in ARMS]
            rows.append((path, name, *sizes, *medians))
    return rows


def median(results: list[Result]) -> Result:
    """The round of median throughput."""
    ordered = sorted(results, key=lambda r: r.throughput)
    return ordered[len(ordered) // 2]


def report(rows: list[Row], rounds: int, seconds: float) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, client, gateways and "
        f"PostgreSQL on one machine; the median of {rounds} alternating rounds of {seconds:g} s "
        "per arm.",
        "",
        "| path | document | body in full / by hash, bytes | in full req/s | by hash req/s "
        "| throughput by hash | p50 ms in full / by hash | control: in full again |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for path, name, full_bytes, hash_bytes, full, hashed, control in rows:
        gain = hashed.throughput / full.throughput - 1
        noise = control.throughput / full.throughput - 1
        lines.append(
            f"| {path} | {name} | {full_bytes:,} / {hash_bytes} | {full.throughput:.1f} | "
            f"{hashed.throughput:.1f} | {gain:+.1%} | {full.percentile(0.5):.2f} / "
            f"{hashed.percentile(0.5):.2f} | {noise:+.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-write", action="store_true", help="print, don't update the docs")
    args = parser.parse_args()

    urls, handle = seeded_databases(args.database_url)
    asyncio.run(register(urls.gateway))
    env = {
        **os.environ,
        "BMA_TAX_DATABASE_URL": urls.tax,
        "BMA_REGISTRY_DATABASE_URL": urls.registry,
        "BMA_FINANCE_DATABASE_URL": urls.finance,
        "BMA_TRAFFY_DATABASE_URL": urls.traffy,
        "BMA_GATEWAY_DATABASE_URL": urls.gateway,
        "BMA_TRUSTED_DOCUMENTS": "allow",
        "BMA_RATE_LIMITS": "off",  # one client address: the benchmark is not the abuse it stops
    }
    processes = []
    try:
        traffy, traffy_url = start("traffy", env)
        processes.append(traffy)
        env["BMA_TRAFFY_BASE_URL"] = traffy_url
        gateways = {}
        for path, ttls in (("uncached", CACHES_OFF), ("cached (response cache)", "")):
            gateway, gateways[path] = start("gateway", {**env, "BMA_CACHE_TTLS": ttls})
            processes.append(gateway)
        rows = measure(gateways, args.rounds, args.seconds, args.concurrency)
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        del handle
    table = report(rows, args.rounds, args.seconds)
    publish("TRUSTED", "bench.trusted_documents", sys.argv[1:], table, not args.no_write)


if __name__ == "__main__":
    main()
