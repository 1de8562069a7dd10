"""Evidence that survives truncation: signed checkpoints of the audit chain's head.

The chain alone cannot show the newest records deleted with the head moved back to match
(docs/audit.md). Here the gateway signs its head into a checkpoint file, at an interval and
at shutdown, and ``audit verify --checkpoints`` finds that truncation — and a chain rewritten
with its own key — and refuses a checkpoint file someone edited.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from gateway.audit.checkpoints import Checkpointer, load_signing_key
from gateway.audit.store import canonical, chain_hash
from gateway.audit.writer import AuditWriter
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.embedded import DatabaseUrls
from gateway.settings import ConfigError, Settings
from support import (
    CHAIN_KEY,
    CHAIN_LENGTH,
    REQUIRED_ENV,
    Chain,
    CliRun,
    audit_cli,
    audit_entry,
    bearer,
    finance_officer_token,
    fresh_database,
    record_at,
    run,
    settings_for,
    sql,
    start_gateway,
    wait_until,
)

PARCEL_READ = "{ parcels(first: 2) { edges { node { id appraisedValue } } } }"


@pytest.fixture
def signing_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    made = audit_cli(capsys, "audit", "checkpoint-keygen", str(tmp_path / "checkpoint.key"))
    assert made.code == 0, made
    assert (tmp_path / "checkpoint.key.pub").is_file()
    return tmp_path / "checkpoint.key"


def checkpoint_now(chain: Chain, signing_key: Path, file: Path) -> None:
    """What the gateway does at an interval: sign the head its writer finds, into ``file``."""

    async def sign() -> None:
        checkpointer = Checkpointer(
            AuditWriter(chain.url, CHAIN_KEY), load_signing_key(signing_key), file, 3600
        )
        assert await checkpointer.checkpoint() is not None

    run(sign())


def verify_with(
    chain: Chain, capsys: pytest.CaptureFixture[str], file: Path, public: Path
) -> CliRun:
    return audit_cli(
        capsys,
        "audit",
        "verify",
        "--database-url",
        chain.url,
        "--key-file",
        str(chain.key_file),
        "--checkpoints",
        str(file),
        "--checkpoint-key",
        str(public),
    )


def truncate_to(chain: Chain, last: int) -> None:
    """A superuser deletes the records after ``last`` and moves the head back to match."""
    chain.tamper(
        f"DELETE FROM audit.records WHERE seq > {last}",
        ("UPDATE audit.chain_head SET seq = $1, hash = $2", last, chain.hash_of(last)),
    )


def test_a_tail_truncation_before_the_last_checkpoint_is_found_and_counted(
    make_chain: Callable[[str], Chain], signing_key: Path, tmp_path: Path, capsys
):
    chain = make_chain("checkpointed")
    file, public = tmp_path / "checkpoints.jsonl", Path(f"{signing_key}.pub")
    checkpoint_now(chain, signing_key, file)
    [line] = [orjson.loads(line) for line in file.read_text().splitlines()]
    assert (line["seq"], line["hash"]) == (CHAIN_LENGTH, chain.hash_of(CHAIN_LENGTH).hex())
    assert verify_with(chain, capsys, file, public).code == 0

    truncate_to(chain, 15)

    assert chain.cli_verify(capsys).code == 0  # the blind spot: what is left still holds
    found = verify_with(chain, capsys, file, public)
    assert found.code == 1, found
    assert found.out.startswith(
        "audit chain BROKEN at record 16: records 16 to 20 are missing (5 records): "
        f"the checkpoint of {line['at']} names record 20, the log ends at record 15"
    ), found


def test_a_chain_rewritten_with_its_own_key_differs_from_the_checkpoint(
    make_chain: Callable[[str], Chain], signing_key: Path, tmp_path: Path, capsys
):
    """Whoever holds the chain key (every gateway replica does) can rewrite the chain so it
    verifies; the checkpoint, signed with a key the database never sees, still tells."""
    chain = make_chain("rewritten")
    file = tmp_path / "checkpoints.jsonl"
    checkpoint_now(chain, signing_key, file)
    prev = chain.hash_of(17)
    statements = []
    for seq in range(18, CHAIN_LENGTH + 1):
        entry = {**audit_entry(seq), "subject": "someone-else"}
        digest = chain_hash(CHAIN_KEY, prev, seq, record_at(seq), entry)
        statements.append(
            (
                "UPDATE audit.records SET entry = $2::jsonb, prev_hash = $3, hash = $4 "
                "WHERE seq = $1",
                seq,
                canonical(entry).decode(),
                prev,
                digest,
            )
        )
        prev = digest
    statements.append(("UPDATE audit.chain_head SET hash = $1", prev))
    chain.tamper(*statements)

    assert chain.cli_verify(capsys).code == 0
    found = verify_with(chain, capsys, file, Path(f"{signing_key}.pub"))
    assert found.code == 1
    assert "audit chain BROKEN at record 20: record 20 differs from the checkpoint of" in found.out


def test_a_checkpoint_file_someone_edited_is_refused(
    make_chain: Callable[[str], Chain], signing_key: Path, tmp_path: Path, capsys
):
    chain = make_chain("forged_checkpoint")
    file, public = tmp_path / "checkpoints.jsonl", Path(f"{signing_key}.pub")
    checkpoint_now(chain, signing_key, file)
    signed = orjson.loads(file.read_text())
    file.write_bytes(orjson.dumps({**signed, "seq": 15, "hash": chain.hash_of(15).hex()}) + b"\n")
    edited = verify_with(chain, capsys, file, public)
    assert edited.code == 2
    assert f"{file}:1: the checkpoint's signature does not verify with this key" in edited.err

    other = tmp_path / "other.key"
    assert audit_cli(capsys, "audit", "checkpoint-keygen", str(other)).code == 0
    file.write_bytes(orjson.dumps(signed) + b"\n")
    assert verify_with(chain, capsys, file, public).code == 0
    assert verify_with(chain, capsys, file, Path(f"{other}.pub")).code == 2
    unusable = verify_with(chain, capsys, file, signing_key)  # the private key, not the .pub
    assert unusable.code == 2 and "cannot read the checkpoint key from" in unusable.err


# ---------------------------------------------------------------------------- the gateway


def checkpoints_in(file: Path) -> list[dict[str, object]]:
    if not file.exists():
        return []
    return [orjson.loads(line) for line in file.read_text().splitlines()]


def head_of(store: str) -> tuple[int, str]:
    [row] = sql(store, "SELECT seq, hash FROM audit.chain_head")
    return row["seq"], bytes(row["hash"]).hex()


@pytest.mark.parametrize("interval", [1.0, 3600.0], ids=["at-the-interval", "at-shutdown"])
def test_the_gateway_signs_its_head_to_the_file_and_the_log_stream(
    db: DatabaseUrls,
    traffy_url: str,
    server_url: str,
    issuer: EmbeddedIssuer,
    signing_key: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    interval: float,
):
    store = fresh_database(server_url, f"bmatest_checkpoints_{int(interval)}")
    file = tmp_path / "checkpoints.jsonl"
    settings = settings_for(
        db,
        traffy_url,
        audit_database_url=store,
        audit_checkpoint_key_file=signing_key,
        audit_checkpoint_file=file,
        audit_checkpoint_interval=interval,
    )
    caplog.set_level(logging.INFO, logger="bma.audit")
    server, gw = start_gateway(settings)
    try:
        for _ in range(3):
            response = gw.post(PARCEL_READ, headers=bearer(finance_officer_token(issuer)))
            assert response.status_code == 200 and "errors" not in response.json()
        head = head_of(store)
        assert head[0] == 3
        if interval == 1.0:
            wait_until(lambda: checkpoints_in(file), what="a checkpoint at the interval")
        else:
            assert checkpoints_in(file) == []  # not yet: the interval is an hour
    finally:
        gw.client.close()
        server.stop()
    # Once per head: the one the interval signed is not signed again at shutdown.
    [written] = checkpoints_in(file)
    assert (written["seq"], written["hash"]) == head
    logged = [r.auditCheckpoint for r in caplog.records if hasattr(r, "auditCheckpoint")]
    assert logged == [written]


def test_a_checkpoint_key_that_is_not_one_stops_the_gateway_before_it_starts(tmp_path: Path):
    not_a_key = tmp_path / "checkpoint.key"
    not_a_key.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    env = {**REQUIRED_ENV, "PATH": "/usr/bin:/bin", "BMA_AUDIT_CHECKPOINT_KEY_FILE": str(not_a_key)}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "config", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert (
        f"configuration error: BMA_AUDIT_CHECKPOINT_KEY_FILE: cannot read the checkpoint key from {not_a_key}"
        in done.stderr
    )
    assert "Traceback" not in done.stderr
    with pytest.raises(ConfigError, match="audit checkpoint-keygen"):
        Settings.from_env({**REQUIRED_ENV, "BMA_AUDIT_CHECKPOINT_KEY_FILE": str(tmp_path / "no")})


def test_a_checkpoint_is_skipped_while_the_store_cannot_be_read(
    signing_key: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    file = tmp_path / "checkpoints.jsonl"
    nowhere = AuditWriter("postgresql://bma@127.0.0.1:9/none", CHAIN_KEY, timeout=2)
    checkpointer = Checkpointer(nowhere, load_signing_key(signing_key), file, 3600)
    assert run(checkpointer.checkpoint()) is None
    assert not file.exists()
    assert "audit checkpoint skipped: the chain head cannot be read" in caplog.text
