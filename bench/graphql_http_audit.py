"""The GraphQL-over-HTTP audit (the ``graphql-http`` package's ``auditServer``) of the gateway.

    python -m bench.graphql_http_audit [--url URL] [--database-url URL] [--no-write]

Without ``--url`` it starts PostgreSQL (embedded unless ``--database-url``), seeds it, and
runs the Traffy stand-in and a gateway, each in its own process, the gateway with a rate
limit the audit's burst of requests does not trip (it fires them all at once, and would
count the 429s as failures). ``graphql-http`` is installed with npm, at the version pinned
here, into a cache directory outside the repository (``$XDG_CACHE_HOME/bma-gateway``), and
run with Node by ``bench/graphql_http_audit.mjs``. The tallies are printed and, for a gateway
this script started, written into docs/errors.md between the GRAPHQL_HTTP_AUDIT markers.
Exits 1 when a MUST or SHOULD audit fails; 2 when Node or npm is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, publish, seeded_databases

GRAPHQL_HTTP = "1.23.1"  # the audit's version: its checks change between releases
GRAPHQL_JS = "16.11.0"  # graphql-http's peer dependency (its handler, not the audit, uses it)
RUNNER = ROOT / "bench" / "graphql_http_audit.mjs"
# Far above the audit's ~60 requests at once, yet a limit: the middleware stays in the path.
RATE_LIMITS = json.dumps({"anonymous": {"rate": 100, "burst": 500}})


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bma-gateway" / f"graphql-http-{GRAPHQL_HTTP}"


def installed() -> Path:
    """The directory holding node_modules/graphql-http at the pinned version."""
    where = cache_dir()
    package = where / "node_modules" / "graphql-http" / "package.json"
    if package.exists() and json.loads(package.read_text())["version"] == GRAPHQL_HTTP:
        return where
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(where),
            "--no-audit",
            "--no-fund",
            "--no-save",
            f"graphql-http@{GRAPHQL_HTTP}",
            f"graphql@{GRAPHQL_JS}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return where


def audit(url: str, modules: Path) -> tuple[int, str]:
    """The runner's exit status and report."""
    done = subprocess.run(
        ["node", str(RUNNER), url, str(modules)], capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 1):
        raise RuntimeError(f"the audit runner failed: {done.stderr or done.stdout}")
    return done.returncode, done.stdout.strip()


def audit_started_gateway(database_url: str | None) -> tuple[int, str]:
    from bench.run import start

    urls, handle = seeded_databases(database_url)
    env = {
        **os.environ,
        "BMA_TAX_DATABASE_URL": urls.tax,
        "BMA_REGISTRY_DATABASE_URL": urls.registry,
        "BMA_FINANCE_DATABASE_URL": urls.finance,
        "BMA_TRAFFY_DATABASE_URL": urls.traffy,
        "BMA_RATE_LIMITS": RATE_LIMITS,
    }
    processes = []
    try:
        traffy, env["BMA_TRAFFY_BASE_URL"] = start("traffy", env)
        processes.append(traffy)
        gateway, gateway_url = start("gateway", env)
        processes.append(gateway)
        url = f"{gateway_url}/graphql"
        status, report = audit(url, installed())
        return status, report.replace(f" of {url}", "")  # the port is new every run
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        del handle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running gateway's /graphql (default: start one)")
    parser.add_argument("--database-url")
    parser.add_argument("--no-write", action="store_true", help="print, don't update the docs")
    args = parser.parse_args()
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        print(f"graphql_http_audit: needs {' and '.join(missing)} on PATH", file=sys.stderr)
        return 2
    if args.url:
        status, report = audit(args.url, installed())
        print(report)
        return status
    status, report = audit_started_gateway(args.database_url)
    table = "\n".join(f"    {line}" for line in report.splitlines())
    table = f"Run {time.strftime('%Y-%m-%d')} against a gateway the script started.\n\n{table}"
    publish(
        "GRAPHQL_HTTP_AUDIT",
        "bench.graphql_http_audit",
        sys.argv[1:],
        table,
        not args.no_write,
        doc=ROOT / "docs" / "errors.md",
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
