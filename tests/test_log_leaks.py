"""No restricted value and no credential in any log line. Marked ``session_end``, so it runs
after every other test of the session (tests/conftest.py orders it last): it scans every line
the session's tests made the gateway write, in the JSON the gateway writes in production,
after adding traffic of its own that would leak if anything logged what it should not."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from gateway.auth.api_keys import create_key, ensure_schema
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.credentials import SCOPES
from gateway.demo.embedded import DatabaseUrls
from support import Gateway, run, sql

pytestmark = pytest.mark.session_end

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")
API_KEY = re.compile(r"bma_[0-9a-f]{8,}_[0-9a-f]{16,}")
THIRTEEN_DIGITS = re.compile(r"(?<!\d)\d{13}(?!\d)")


@pytest.fixture(scope="module")
def secrets_used(anonymous: Gateway, issuer: EmbeddedIssuer, db: DatabaseUrls) -> dict[str, Any]:
    """Traffic that carries credentials and reads restricted values, some of it failing."""

    async def new_key() -> str:
        conn = await asyncpg.connect(db.gateway)
        try:
            await ensure_schema(conn)
            return (await create_key(conn, "log-leak-suite", "civic-app"))[1]
        finally:
            await conn.close()

    dpo = issuer.issue(
        "agency", "bma-dpo", SCOPES, "secret", purpose="pdpa-audit", ttl=timedelta(hours=1)
    )
    key = run(new_key())
    owner = sql(
        db.tax,
        "SELECT p.id, o.name, o.national_id FROM tax.parcels p JOIN tax.owners o "
        "ON o.id = p.owner_id WHERE o.kind = 'person' ORDER BY p.id LIMIT 1",
    )[0]
    read = "query($id: ID!) { parcel(id: $id) { appraisedValue owner { name nationalId } } }"
    variables = {"id": str(owner["id"])}
    as_dpo = {"authorization": f"Bearer {dpo}", "x-request-id": "leak-scan-dpo"}
    answer = anonymous.post(read, variables, headers=as_dpo).json()
    assert answer["data"]["parcel"]["owner"]["nationalId"] == owner["national_id"]
    anonymous.post(read, variables, headers={"X-API-Key": key})
    anonymous.post(read, variables, headers={"authorization": f"Bearer {dpo[:-4]}AAAA"})
    anonymous.post(read, variables, headers={"X-API-Key": key[:-2] + "00"})
    # A national id sent as a variable value, and in a malformed document.
    anonymous.post(
        "query($no: String!) { business(registrationNo: $no) { name } }",
        {"no": owner["national_id"]},
        headers=as_dpo,
    )
    anonymous.post(f'{{ parcel(id: "{owner["national_id"]}") {{ id ', headers=as_dpo)
    return {"tokens": [dpo], "keys": [key], "owner": owner}


def log_lines(path: Path) -> list[str]:
    for handler in __import__("logging").getLogger().handlers:
        handler.flush()
    return path.read_text(encoding="utf-8").splitlines()


def test_request_lines_say_who_what_and_how_it_went(session_log: Path, secrets_used):
    lines = [orjson.loads(line) for line in log_lines(session_log)]
    mine = [entry for entry in lines if entry.get("request_id") == "leak-scan-dpo"]
    assert mine, "the gateway wrote no request line for the DPO's request"
    entry = mine[0]
    assert entry["logger"] == "bma.request" and entry["status"] == 200
    assert entry["principal"] == "agency" and entry["subject"]
    assert entry["operations"][0]["document"] and entry["duration_ms"] > 0


def test_no_credential_in_any_log_line(session_log: Path, secrets_used):
    text = "\n".join(log_lines(session_log))
    assert len(text) > 1000, "the scan must have lines to read"
    for secret in secrets_used["tokens"] + secrets_used["keys"]:
        assert secret not in text
    assert not JWT.search(text), JWT.search(text)
    assert not API_KEY.search(text), API_KEY.search(text)
    assert "Bearer " not in text


def test_no_restricted_value_in_any_log_line(session_log: Path, db: DatabaseUrls, secrets_used):
    text = "\n".join(log_lines(session_log))
    people = {r["national_id"] for r in sql(db.tax, "SELECT national_id FROM tax.owners")}
    leaked = {m for m in THIRTEEN_DIGITS.findall(text) if m in people}
    assert not leaked, f"national ids in the logs: {sorted(leaked)[:5]}"
    assert secrets_used["owner"]["name"] not in text
