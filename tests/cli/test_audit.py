"""gateway/cli/audit.py: `bma-gateway audit verify` reports an intact chain and names the
first broken record, with the wrong key or an unusable key file too; `audit export` writes
exactly a time range, as JSON lines or CSV; `audit keygen` writes an owner-only key and never
overwrites it. Each test builds its own chain in a fresh database (``make_chain``)."""

from __future__ import annotations

import csv
import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.audit import store as audit_store
from gateway.audit.store import load_key
from gateway.cli.audit import EXPORT_COLUMNS
from support import (
    CHAIN_LENGTH,
    OTHER_CHAIN_KEY,
    Chain,
    CliRun,
    audit_cli,
    audit_entry,
    record_at,
    write_key,
)


def test_audit_verify_reports_an_intact_chain(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("cli_intact")
    done = chain.cli_verify(capsys)
    assert done.code == 0, done
    assert "audit chain intact" in done.out
    assert (
        f"{CHAIN_LENGTH} records; head record {CHAIN_LENGTH}, hash {chain.hash_of(CHAIN_LENGTH).hex()}"
        in done.out
    )
    assert "BROKEN" not in done.out


def test_audit_verify_names_the_altered_record(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("cli_broken")
    chain.tamper(
        'UPDATE audit.records SET entry = entry || \'{"outcome": "denied"}\' WHERE seq = 7'
    )
    done = chain.cli_verify(capsys)
    assert done.code == 1, done
    assert "BROKEN at record 7" in done.out
    assert "intact" not in done.out


def test_audit_verify_with_the_wrong_key_says_the_key_does_not_match(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    """Not "record 1 was altered": no record verifies with another key, so it is the key."""
    chain = make_chain("cli_wrong_key")
    other = write_key(tmp_path / "other.key", OTHER_CHAIN_KEY)
    done = chain.cli_verify(capsys, other)
    assert done.code == 2, done
    assert done.out == ""
    [line] = done.err.splitlines()
    assert f"the key in {other} does not match the audit chain" in line, line
    assert "BMA_AUDIT_KEY_FILE" in line and "altered" not in line
    assert chain.verify(OTHER_CHAIN_KEY).wrong_key


def test_audit_verify_with_the_right_key_still_names_an_altered_first_record(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str]
):
    chain = make_chain("cli_first_altered")
    chain.tamper(
        'UPDATE audit.records SET entry = entry || \'{"outcome": "denied"}\' WHERE seq = 1'
    )
    done = chain.cli_verify(capsys)
    assert done.code == 1, done
    assert "BROKEN at record 1: record 1 was altered" in done.out
    assert not chain.verify().wrong_key


@pytest.mark.parametrize(
    ("case", "content", "message"),
    [
        ("missing", None, "cannot read the audit key"),
        ("not_hex", "not a key\n", "cannot read the audit key"),
        ("short", "ab" * 16 + "\n", "must be at least 32 bytes"),
    ],
)
def test_audit_verify_with_an_unusable_key_file_exits_2_without_a_traceback(
    server_url: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    case: str,
    content: str | None,
    message: str,
):
    path = tmp_path / f"{case}.key"
    if content is not None:
        path.write_text(content, "ascii")
    done = audit_cli(
        capsys, "audit", "verify", "--database-url", server_url, "--key-file", str(path)
    )
    assert done.code == 2, done
    assert done.err.startswith("bma-gateway: ") and message in done.err, done
    assert str(path) in done.err
    assert "Traceback" not in done.err + done.out


def export(
    chain: Chain, capsys: pytest.CaptureFixture[str], path: Path, form: str, *window: str
) -> CliRun:
    return audit_cli(
        capsys,
        "audit",
        "export",
        "--database-url",
        chain.url,
        "--format",
        form,
        *window,
        "--output",
        str(path),
    )


WINDOW = ("--since", "2026-01-01T05:00:00Z", "--until", "2026-01-01T09:00")  # naive means UTC


IN_WINDOW = [5, 6, 7, 8]  # since inclusive, until exclusive


def test_audit_export_jsonl_writes_exactly_the_records_of_the_time_range(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    chain = make_chain("export_jsonl")
    path = tmp_path / "audit.jsonl"
    done = export(chain, capsys, path, "jsonl", *WINDOW)
    assert done.code == 0, done
    assert f"{len(IN_WINDOW)} records exported" in done.err
    assert done.out == ""  # the records went to the file, not stdout
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert [line["seq"] for line in lines] == IN_WINDOW
    for n, line in zip(IN_WINDOW, lines, strict=True):
        assert line == {
            "seq": n,
            "at": record_at(n).isoformat(timespec="microseconds"),
            **audit_entry(n),
            "hash": chain.hash_of(n).hex(),
        }
    assert lines[0]["organisation"] == "สำนักงานเขตพระนคร"  # UTF-8, not escaped away


def test_audit_export_without_a_range_writes_every_record(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    chain = make_chain("export_all")
    path = tmp_path / "all.jsonl"
    assert export(chain, capsys, path, "jsonl").code == 0
    seqs = [json.loads(line)["seq"] for line in path.read_text("utf-8").splitlines()]
    assert seqs == list(range(1, CHAIN_LENGTH + 1))


def test_audit_export_csv_has_the_export_columns_and_lists_as_json(
    make_chain: Callable[[str], Chain], capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    chain = make_chain("export_csv")
    path = tmp_path / "audit.csv"
    done = export(chain, capsys, path, "csv", *WINDOW)
    assert done.code == 0, done
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == list(EXPORT_COLUMNS)
        rows = list(reader)
    assert [int(row["seq"]) for row in rows] == IN_WINDOW
    for n, row in zip(IN_WINDOW, rows, strict=True):
        expected = audit_entry(n)
        assert row["at"] == record_at(n).isoformat(timespec="microseconds")
        assert row["hash"] == chain.hash_of(n).hex()
        for column in ("fields", "records", "subjects"):
            assert json.loads(row[column]) == expected[column]
        assert row["organisation"] == expected["organisation"]
        assert row["lawfulBasis"] == expected["lawfulBasis"]
        assert row["credentialId"] == ""  # null is an empty cell


def test_audit_keygen_writes_an_owner_only_key_and_never_overwrites_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = tmp_path / "secrets" / "audit.key"  # the folder is made too
    done = audit_cli(capsys, "audit", "keygen", str(path))
    assert done.code == 0, done
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_key(path)
    assert len(key) == audit_store.KEY_BYTES
    written = path.read_bytes()

    again = audit_cli(capsys, "audit", "keygen", str(path))
    assert again.code == 2, again
    assert "never overwritten" in again.err
    assert "Traceback" not in again.err
    assert path.read_bytes() == written
    assert load_key(path) == key
