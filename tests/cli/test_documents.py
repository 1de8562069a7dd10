"""gateway/cli/documents.py: `bma-gateway documents add|list|remove` against a real database,
and what the gateway then runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from support import audit_cli, fresh_database

QUERY = "query Codes { districts { code } }"
OTHER = "query Names { districts { nameEn } }"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def url(server_url: str) -> str:
    return fresh_database(server_url, "bmatest_documents_cli")


def test_add_list_remove(url: str, tmp_path: Path, capsys):
    ops = tmp_path / "ops.graphql"
    ops.write_text(QUERY, encoding="utf-8")
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_bytes(orjson.dumps({f"sha256:{sha(OTHER)}": OTHER}))

    added = audit_cli(
        capsys, "documents", "add", "--client", "app-1", str(ops), "--database-url", url
    )
    assert added.code == 0, added.err
    assert added.out == f"sha256:{sha(QUERY)}\tCodes\n"
    assert "Registered 1 new document(s) for app-1 (0 already registered)" in added.err
    again = audit_cli(
        capsys, "documents", "add", "--client", "app-1", str(ops), "--database-url", url
    )
    assert "0 new document(s) for app-1 (1 already registered)" in again.err
    audit_cli(capsys, "documents", "add", "--client", "app-2", str(manifest), "--database-url", url)

    listed = audit_cli(capsys, "documents", "list", "--database-url", url)
    lines = listed.out.splitlines()
    assert lines[0].split() == ["client", "document", "operations", "added"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["app-1", f"sha256:{sha(QUERY)}", "Codes"],
        ["app-2", f"sha256:{sha(OTHER)}", "Names"],
    ]
    only = audit_cli(capsys, "documents", "list", "--client", "app-2", "--database-url", url)
    assert len(only.out.splitlines()) == 2

    removed = audit_cli(
        capsys, "documents", "remove", "--client", "app-1", f"sha256:{sha(QUERY)}",
        "--database-url", url,
    )  # fmt: skip
    assert removed.code == 0 and "Removed 1 document of app-1" in removed.out
    missing = audit_cli(
        capsys, "documents", "remove", "--client", "app-1", sha(QUERY), "--database-url", url
    )
    assert missing.code == 1 and "no document" in missing.err
    everything = audit_cli(
        capsys, "documents", "remove", "--client", "app-2", "--database-url", url
    )
    assert everything.code == 0
    assert audit_cli(capsys, "documents", "list", "--database-url", url).out.count("\n") == 1


def test_a_bad_manifest_registers_nothing_and_exits_2(url: str, tmp_path: Path, capsys):
    good = tmp_path / "good.graphql"
    good.write_text(QUERY, encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"0" * 64: OTHER}))
    refused = audit_cli(
        capsys, "documents", "add", "--client", "app", str(good), str(bad), "--database-url", url
    )
    assert refused.code == 2
    assert refused.err.startswith("bma-gateway: ") and "does not match" in refused.err
    assert "Traceback" not in refused.err
    assert audit_cli(capsys, "documents", "list", "--database-url", url).out.count("\n") == 1


def test_without_a_database_it_says_which_variable(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.delenv("BMA_GATEWAY_DATABASE_URL", raising=False)
    listed = audit_cli(capsys, "documents", "list")
    assert listed.code == 2 and "BMA_GATEWAY_DATABASE_URL" in listed.err
