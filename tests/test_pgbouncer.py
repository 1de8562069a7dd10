"""The gateway behind a real PgBouncer in transaction pooling mode (``BMA_PGBOUNCER=transaction``):
every connector's reads, API keys, registered documents, restricted reads audited by
concurrent requests into one intact chain, the signed checkpoint of its head — and no
session state left on the server connections that PgBouncer shares between clients.

(The two concurrent writers of tests/audit/test_writer.py run behind PgBouncer too.)
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pgbouncer import DatabaseRoute, PgBouncer, server_sessions

from gateway.audit.checkpoints import create_signing_key
from gateway.audit.store import load_key
from gateway.audit.writer import AuditWriter
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.embedded import DatabaseUrls
from gateway.execution.document_registry import (
    DocumentRegistry,
    NewDocument,
    add_documents,
    ensure_schema,
)
from support import (
    Gateway,
    audit_cli,
    audit_key_file,
    bearer,
    finance_officer_token,
    fresh_database,
    new_key,
    run,
    settings_for,
    sql,
    start_gateway,
    with_conn,
)

# One query over every SQL-backed connector: tax, the district registries, finance.
EVERY_SOURCE = """{
  parcels(first: 3) { totalCount edges { node { id landUse } } }
  businesses(first: 3) { totalCount edges { node { name } } }
  procurementProcesses(first: 3) { totalCount }
  budgetLines(first: 3) { totalCount }
  district(code: "1039") { nameEn businessCount }
}"""
RESTRICTED = "query($id: ID!) { parcel(id: $id) { id appraisedValue owner { nationalId } } }"
ACCESS_LOG = "{ accessLog(first: 100) { totalCount edges { node { seq subject } } } }"
READS = 24  # restricted reads, eight at a time: more clients than PgBouncer's server connections


def test_the_gateway_behind_pgbouncer_reads_every_source_and_audits_into_one_chain(
    db: DatabaseUrls,
    traffy_url: str,
    server_url: str,
    pgbouncer: PgBouncer,
    anonymous: Gateway,
    issuer: EmbeddedIssuer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
):
    route = DatabaseRoute(pgbouncer)
    store = fresh_database(server_url, "bmatest_pgbouncer_audit")
    signing_key = tmp_path / "checkpoint.pem"
    create_signing_key(signing_key)
    settings = settings_for(
        route.urls(db),
        traffy_url,
        pgbouncer=route.mode,
        audit_database_url=route.url(store),
        audit_checkpoint_key_file=signing_key,
        audit_checkpoint_file=tmp_path / "checkpoints.jsonl",
    )
    _, key = new_key(db.gateway)
    parcel = str(sql(db.tax, "SELECT id FROM tax.parcels ORDER BY id LIMIT 1")[0]["id"])
    officer = bearer(finance_officer_token(issuer))
    dpo = bearer(issuer.issue("agency", "bma-dpo", "audit:read", "secret", purpose="pdpa-audit"))
    caplog.set_level(logging.INFO, logger="bma.audit")
    server, gw = start_gateway(settings)
    try:
        # The same answer as the gateway that reaches PostgreSQL straight.
        assert gw.query(EVERY_SOURCE) == anonymous.query(EVERY_SOURCE)
        by_key = gw.post("{ districts { code } }", headers={"X-API-Key": key})
        assert by_key.status_code == 200 and len(by_key.json()["data"]["districts"]) == 50

        def read(_: int) -> tuple[int, str]:
            response = gw.post(RESTRICTED, {"id": parcel}, headers=officer)
            return response.status_code, response.json()["data"]["parcel"]["id"]

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(read, range(READS))) == {(200, parcel)}
        log = gw.post(ACCESS_LOG, headers=dpo)
        assert log.status_code == 200, log.text
        assert log.json()["data"]["accessLog"]["totalCount"] == READS
    finally:
        gw.client.close()
        server.stop()

    verified = audit_cli(
        capsys, "audit", "verify", "--database-url", route.url(store),
        "--key-file", str(audit_key_file()),
    )  # fmt: skip
    assert verified.code == 0, verified.err
    seqs = [r["seq"] for r in sql(store, "SELECT seq FROM audit.records ORDER BY seq")]
    assert seqs == list(range(1, READS + 2))  # the reads, and the reading of the log
    # The checkpoint signed at shutdown names the head the writer committed through PgBouncer.
    [checkpoint] = [r.auditCheckpoint for r in caplog.records if hasattr(r, "auditCheckpoint")]
    head = sql(store, "SELECT seq, encode(hash, 'hex') AS hash FROM audit.chain_head")[0]
    assert (checkpoint["seq"], checkpoint["hash"]) == (head["seq"], head["hash"])
    # A writer that has committed nothing yet reads the head to sign, as the writer role.
    idle = AuditWriter(route.url(store), load_key(audit_key_file()), pgbouncer=route.mode)
    found = run(idle.committed_head())
    assert found is not None and (found[0], found[1].hex()) == (head["seq"], head["hash"])
    # Nothing the gateway did stayed on a server connection: every one is its login's.
    for url in (route.url(store), route.urls(db).tax):
        assert {current for _, current in run(server_sessions(url))} == {"postgres"}


def test_registered_documents_are_read_through_pgbouncer(db: DatabaseUrls, pgbouncer: PgBouncer):
    route = DatabaseRoute(pgbouncer)
    body = "query PgBouncerProbe { districts { code } }"
    sha = hashlib.sha256(body.encode()).hexdigest()
    document = NewDocument(sha, body, ("PgBouncerProbe",))

    async def register(conn: Any) -> None:
        await ensure_schema(conn)
        await add_documents(conn, "pgbouncer-test", [document])

    run(with_conn(db.gateway, register))

    async def lookups() -> list[str | None]:
        # No cache: every lookup reaches the database, on whichever server connection.
        registry = DocumentRegistry(route.urls(db).gateway, cache_seconds=0, pgbouncer=route.mode)
        await registry.start()
        try:
            return [await registry.lookup(sha) for _ in range(3)]
        finally:
            await registry.stop()

    assert run(lookups()) == [body] * 3
