"""The PostgreSQL the demo and the tests use: embedded (pgserver) or an existing server.

Four databases stand for the four upstream systems (tax, registries, Traffy Fondue, finance
and procurement), a fifth is the gateway's own (API keys); they are created if missing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DATABASES = ("tax", "registry", "traffy", "gateway", "finance")


@dataclass(frozen=True)
class DatabaseUrls:
    tax: str
    registry: str
    traffy: str
    gateway: str  # the gateway's own: API keys
    finance: str  # finance and procurement (MIS2 and e-GP)


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "bma-gateway" / "pgdata"


def start_embedded(data_dir: Path) -> tuple[str, object]:
    """Start (or reuse) an embedded PostgreSQL in ``data_dir``; returns its URL and handle.

    The handle stops the server when it is garbage collected or at exit, so keep it.
    """
    import pgserver  # imported here: only the embedded mode needs the bundled binaries

    # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); pgserver then uses /tmp.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
    return server.get_uri(), server


def database_url(server_url: str, database: str) -> str:
    """``server_url`` with its database replaced, keeping host, socket and options."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def ensure_databases(server_url: str, prefix: str = "bma") -> DatabaseUrls:
    """Create ``{prefix}_tax``, ``{prefix}_registry``, ``{prefix}_traffy``,
    ``{prefix}_gateway`` and ``{prefix}_finance`` if missing."""
    conn = await asyncpg.connect(server_url)
    try:
        existing = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        for name in DATABASES:
            database = f"{prefix}_{name}"
            if database not in existing:
                await conn.execute(
                    f"CREATE DATABASE \"{database}\" ENCODING 'UTF8' TEMPLATE template0"
                )
    finally:
        await conn.close()
    return DatabaseUrls(*(database_url(server_url, f"{prefix}_{name}") for name in DATABASES))
