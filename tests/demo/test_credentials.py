"""gateway/demo/credentials.py: the demo's API key, kept in a private file and reused while
valid, replaced once revoked."""

from __future__ import annotations

from pathlib import Path

from gateway.auth.api_keys import revoke_key
from gateway.demo.credentials import ensure_demo_key
from support import run, sql, with_conn


def test_the_demo_key_is_reused_while_valid(db, tmp_path: Path):
    path = tmp_path / "demo-api-key"
    first = ensure_demo_key(db.gateway, path)
    assert ensure_demo_key(db.gateway, path) == first
    assert path.read_text().strip() == first and path.stat().st_mode & 0o077 == 0
    key_id = first.split("_")[1]
    run(with_conn(db.gateway, lambda conn: revoke_key(conn, key_id)))
    replaced = ensure_demo_key(db.gateway, path)
    assert replaced != first and path.read_text().strip() == replaced
    [row] = sql(
        db.gateway, "SELECT name FROM gateway.api_keys WHERE id = $1", replaced.split("_")[1]
    )
    assert row["name"] == "demo"
