"""The audit log through the gateway: what a restricted read records, what a public one does
not, reading the log with `accessLog`, the data-subject report, and the store refusing to be
edited. Each module-scoped gateway writes to its own fresh audit store, so counts are exact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt
import pytest

from gateway.audit.store import WRITER_ROLE
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.credentials import SCOPES as ALL_SCOPES
from gateway.demo.embedded import DatabaseUrls
from gateway.settings import ConfigError, Settings
from policies.model import load_policy
from schema import graphql_schema
from schema.audit_keys import KEYS
from support import REQUIRED_ENV, Gateway, fresh_database, run, settings_for, sql, start_gateway

HOUR = timedelta(hours=1)
PARCEL_READ = """query ParcelForTax($id: ID!) {
  parcel(id: $id) { id appraisedValue owner { name nationalId } }
}"""
LOG_FIELDS = """seq at requestId subject organisation audience credentialId clientAddress
  purpose lawfulBasis operationName documentHash outcome records dataSubjects
  fields { field access rule records }"""


@pytest.fixture(scope="module")
def store(server_url: str) -> str:
    return fresh_database(server_url, "bmatest_audit_reads")


@pytest.fixture(scope="module")
def audited(db: DatabaseUrls, traffy_url: str, store: str) -> Iterator[Gateway]:
    server, gw = start_gateway(settings_for(db, traffy_url, audit_database_url=store))
    yield gw
    gw.client.close()
    server.stop()


@pytest.fixture(scope="module")
def tokens(issuer: EmbeddedIssuer) -> dict[str, str]:
    def token(*args: Any, subject: str, **kwargs: Any) -> str:
        return issuer.issue(*args, ttl=HOUR, subject=subject, **kwargs)

    return {
        "finance": token(
            "agency",
            "bma-finance",
            "tax:read tax:personal",
            "confidential",
            purpose="tax-collection",
            subject="finance-officer-7",
        ),
        "partner": token(
            "partner", "utility-partner", "tax:read", "internal", purpose="research", subject="p-1"
        ),
        "officer": token(
            "agency",
            "bma-district-1039",
            "tax:read registry:read registry:personal",
            "confidential",
            district="1039",
            purpose="district-service",
            subject="officer-1039",
        ),
        "dpo": token(
            "agency", "bma-dpo", ALL_SCOPES, "secret", purpose="pdpa-audit", subject="dpo-1"
        ),
    }


def bearer(token: str, request_id: str | None = None) -> dict[str, str]:
    headers = {"authorization": f"Bearer {token}"}
    if request_id:
        headers["x-request-id"] = request_id
    return headers


@pytest.fixture(scope="module")
def person(db: DatabaseUrls) -> dict[str, Any]:
    """A person who owns a parcel and a business in district 1039, and one of their parcels."""
    owners = sql(
        db.tax,
        """SELECT o.id AS owner_id, o.national_id, min(p.id) AS parcel_id
           FROM tax.owners o JOIN tax.parcels p ON p.owner_id = o.id
           WHERE o.kind = 'person' AND p.district_code = '1039'
           GROUP BY o.id, o.national_id""",
    )
    businesses = {
        r["owner_id"]: r["registration_no"]
        for r in sql(
            db.registry, "SELECT owner_id, registration_no FROM d1039.commercial_registrations"
        )
    }
    for owner in owners:
        if owner["national_id"] in businesses:
            return {**owner, "registration_no": businesses[owner["national_id"]]}
    raise AssertionError("the seed has no 1039 person owning both land and a business")


def entries(store: str, request_id: str) -> list[dict[str, Any]]:
    import orjson

    rows = sql(
        store,
        "SELECT seq, entry::text AS entry FROM audit.records "
        "WHERE entry ->> 'requestId' = $1 ORDER BY seq",
        request_id,
    )
    return [orjson.loads(r["entry"]) for r in rows]


def record_count(store: str) -> int:
    return sql(store, "SELECT count(*) AS n FROM audit.records")[0]["n"]


# ---------------------------------------------------------------------------- what is recorded


def test_a_clear_read_records_who_what_which_records_why(
    audited: Gateway, tokens: dict[str, str], person: dict[str, Any], store: str
):
    response = audited.post(
        PARCEL_READ,
        {"id": str(person["parcel_id"])},
        headers=bearer(tokens["finance"], "req-finance-1"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-finance-1"
    assert response.json()["data"]["parcel"]["owner"]["nationalId"] == person["national_id"]
    [entry] = entries(store, "req-finance-1")
    parcel, owner = f"parcel:{person['parcel_id']}", f"owner:{person['owner_id']}"
    assert entry["fields"] == [
        {"field": "Owner.name", "access": "clear", "records": [owner]},
        {"field": "Owner.nationalId", "access": "clear", "records": [owner]},
        {"field": "Parcel.appraisedValue", "access": "clear", "records": [parcel]},
        {"field": "Parcel.owner", "access": "clear", "records": [parcel]},
    ]
    claims = jwt.decode(tokens["finance"], options={"verify_signature": False})
    assert {k: v for k, v in entry.items() if k != "fields"} == {
        "requestId": "req-finance-1",
        "subject": "finance-officer-7",
        "organisation": "bma-finance",
        "audience": "agency",
        "issuer": claims["iss"],
        "credentialId": claims["jti"],
        "clientAddress": "127.0.0.1",
        "purpose": "tax-collection",
        "lawfulBasis": "pdpa-24-6",
        "operationName": "ParcelForTax",
        "documentHash": hashlib.sha256(PARCEL_READ.encode()).hexdigest(),
        "outcome": "allowed",
        "records": sorted([owner, parcel]),
        "subjects": sorted([f"id:{person['national_id']}", owner]),
    }


def test_masked_and_denied_fields_are_recorded_as_such(
    audited: Gateway, tokens: dict[str, str], person: dict[str, Any], store: str
):
    query = "query($id: ID!) { parcel(id: $id) { appraisedValue owner { name } assessments { taxDue } } }"
    response = audited.post(
        query, {"id": str(person["parcel_id"])}, headers=bearer(tokens["partner"], "req-partner-1")
    )
    body = response.json()
    assert response.status_code == 200
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}
    [entry] = entries(store, "req-partner-1")
    parcel = f"parcel:{person['parcel_id']}"
    by_field = {f["field"]: f for f in entry["fields"]}
    assert by_field["Parcel.appraisedValue"]["access"] == "masked"
    assert by_field["Owner.name"]["access"] == "masked"
    assert by_field["Parcel.owner"] == {
        "field": "Parcel.owner",
        "access": "clear",
        "records": [parcel],
    }
    denied = by_field["Parcel.assessments"]
    # A refusal revealed nothing: it counts the records it was refused on, and names none.
    assert denied["access"] == "denied" and denied["count"] == 1 and "records" not in denied
    assert denied["rule"] == "Parcel.assessments: confidential (FORBIDDEN)"
    assert entry["outcome"] == "partially_denied"
    assert entry["lawfulBasis"] == "pdpa-24-1"  # research


def test_a_refused_attempt_is_recorded_but_names_no_data_subject(
    audited: Gateway, person: dict[str, Any], store: str
):
    query = "query($id: ID!) { parcel(id: $id) { id owner { name } } }"
    response = audited.post(
        query, {"id": str(person["parcel_id"])}, headers={"x-request-id": "req-anon-1"}
    )
    assert response.status_code == 200
    assert response.json()["data"]["parcel"]["owner"] is None
    [entry] = entries(store, "req-anon-1")
    assert entry["outcome"] == "denied"
    assert entry["audience"] == "anonymous" and entry["purpose"] is None
    assert entry["lawfulBasis"] is None
    assert entry["fields"] == [
        {
            "field": "Parcel.owner",
            "access": "denied",
            "count": 1,
            "rule": "Parcel.owner: internal (FORBIDDEN)",
        }
    ]
    assert entry["subjects"] == [] and entry["records"] == []


REFUSED_PAGE = "{ parcels(first: %d) { edges { node { id appraisedValue owner { name } } } } }"


def entry_bytes(store: str, request_id: str) -> int:
    [row] = sql(
        store,
        "SELECT octet_length(entry::text) AS n FROM audit.records WHERE entry ->> 'requestId' = $1",
        request_id,
    )
    return row["n"]


def test_a_refusal_records_the_attempt_compactly_whatever_the_page_size(
    audited: Gateway, store: str
):
    """An anonymous query refused on a page of 1,000 parcels writes an entry the size of one
    refused on a single parcel: who, the document hash, the fields refused and how often —
    not the keys of the 1,000 records it was refused on."""
    sizes = {}
    for first in (1, 1000):
        response = audited.post(
            REFUSED_PAGE % first, headers={"x-request-id": f"req-page-{first:04}"}
        )
        edges = response.json()["data"]["parcels"]["edges"]
        assert len(edges) == first and all(e["node"]["owner"] is None for e in edges)
        [entry] = entries(store, f"req-page-{first:04}")
        assert entry["outcome"] == "denied" and entry["records"] == entry["subjects"] == []
        assert {f["field"]: f["count"] for f in entry["fields"]} == {
            "Parcel.appraisedValue": first,
            "Parcel.owner": first,
        }
        sizes[first] = entry_bytes(store, f"req-page-{first:04}")
    assert sizes[1000] - sizes[1] <= 6  # the counts' extra digits
    assert sizes[1000] < 1024


def test_a_large_allowed_read_records_every_record_it_revealed(
    audited: Gateway, tokens: dict[str, str], store: str
):
    """What was revealed stays complete (the data-subject report needs every record): an
    allowed read's entry grows with the records it revealed, a few dozen bytes each, and the
    audience's page and cost limits bound it."""
    query = "{ parcels(first: 1000) { edges { node { id appraisedValue owner { nationalId } } } } }"
    response = audited.post(query, headers=bearer(tokens["finance"], "req-large-1"))
    nodes = [e["node"] for e in response.json()["data"]["parcels"]["edges"]]
    assert len(nodes) == 1000
    [entry] = entries(store, "req-large-1")
    parcels = {f"parcel:{n['id']}" for n in nodes}
    by_field = {f["field"]: f for f in entry["fields"]}
    assert set(by_field["Parcel.appraisedValue"]["records"]) == parcels
    owners = set(by_field["Owner.nationalId"]["records"])
    assert len(owners) >= 500 and parcels | owners == set(entry["records"])
    assert {f"id:{n['owner']['nationalId']}" for n in nodes} <= set(entry["subjects"])
    listed = sum(len(f["records"]) for f in entry["fields"]) + len(entry["records"])
    assert entry_bytes(store, "req-large-1") < 2048 + 24 * (listed + len(entry["subjects"]))


def test_public_reads_and_reads_that_find_nothing_write_no_record(
    audited: Gateway, tokens: dict[str, str], person: dict[str, Any], store: str
):
    before = record_count(store)
    audited.post(
        "query($id: ID!) { parcel(id: $id) { id landUse areaSqm } districts { code } }",
        {"id": str(person["parcel_id"])},
        headers=bearer(tokens["finance"]),
    )
    missing = audited.post(
        "{ parcel(id: 999999999) { appraisedValue owner { name } } }",
        headers=bearer(tokens["finance"]),
    )
    assert missing.json()["data"] == {"parcel": None}
    assert record_count(store) == before


def test_every_operation_of_a_batch_has_its_own_record(
    audited: Gateway, tokens: dict[str, str], person: dict[str, Any], store: str
):
    operation = {"query": PARCEL_READ, "variables": {"id": str(person["parcel_id"])}}
    response = audited.client.post(
        "/graphql",
        json=[operation, {"query": "{ districts { code } }"}, operation],
        headers=bearer(tokens["finance"], "req-batch-1"),
    )
    assert response.status_code == 200
    assert len(entries(store, "req-batch-1")) == 2


def test_reject_mode_records_the_refused_operation(
    db: DatabaseUrls, traffy_url: str, store: str, person: dict[str, Any]
):
    server, strict = start_gateway(
        settings_for(db, traffy_url, audit_database_url=store, policy_mode="reject")
    )
    try:
        response = strict.post(
            "query($id: ID!) { parcel(id: $id) { appraisedValue } }",
            {"id": str(person["parcel_id"])},
            headers={"x-request-id": "req-reject-1"},
        )
    finally:
        strict.client.close()
        server.stop()
    assert response.status_code == 403
    [entry] = entries(store, "req-reject-1")
    assert entry["outcome"] == "denied" and entry["records"] == []
    assert [(f["field"], f["count"]) for f in entry["fields"]] == [("Parcel.appraisedValue", 0)]


# ---------------------------------------------------------------------------- reading the log


def access_log(gw: Gateway, token: str, filter: dict[str, Any], **args: Any) -> dict[str, Any]:
    query = f"""query($filter: AccessLogFilter, $first: Int, $after: String) {{
      accessLog(filter: $filter, first: $first, after: $after) {{
        totalCount pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {LOG_FIELDS} }} }}
      }}
    }}"""
    response = gw.post(query, {"filter": filter, **args}, headers=bearer(token))
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]["accessLog"]


def test_the_dpo_reads_the_log_by_subject_field_record_purpose_and_time(
    audited: Gateway, tokens: dict[str, str], person: dict[str, Any]
):
    dpo = tokens["dpo"]
    started = datetime.now(UTC)
    for n in range(3):
        audited.post(
            PARCEL_READ,
            {"id": str(person["parcel_id"])},
            headers=bearer(tokens["finance"], f"req-log-{n}"),
        )
    by_subject = access_log(
        audited, dpo, {"subject": "finance-officer-7", "since": started.isoformat()}
    )
    assert [e["node"]["requestId"] for e in by_subject["edges"]] == [
        f"req-log-{n}" for n in range(3)
    ]
    assert by_subject["totalCount"] == 3
    assert by_subject["edges"][0]["node"]["purpose"] == "tax-collection"

    page = access_log(
        audited, dpo, {"subject": "finance-officer-7", "since": started.isoformat()}, first=2
    )
    assert page["pageInfo"]["hasNextPage"] is True and len(page["edges"]) == 2
    rest = access_log(
        audited,
        dpo,
        {"subject": "finance-officer-7", "since": started.isoformat()},
        first=2,
        after=page["pageInfo"]["endCursor"],
    )
    assert [e["node"]["requestId"] for e in rest["edges"]] == ["req-log-2"]
    assert rest["pageInfo"]["hasNextPage"] is False

    parcel = f"parcel:{person['parcel_id']}"
    by_record = access_log(audited, dpo, {"record": parcel, "since": started.isoformat()})
    assert by_record["totalCount"] == 3
    assert all(parcel in e["node"]["records"] for e in by_record["edges"])
    by_field = access_log(audited, dpo, {"field": "Owner.nationalId", "purpose": "tax-collection"})
    assert {e["node"]["subject"] for e in by_field["edges"]} == {"finance-officer-7"}
    assert by_field["totalCount"] >= 3
    future = access_log(audited, dpo, {"since": (started + HOUR).isoformat()})
    assert future["totalCount"] == 0
    before = access_log(
        audited, dpo, {"subject": "finance-officer-7", "until": started.isoformat()}
    )
    assert all(e["node"]["requestId"] not in {"req-log-0", "req-log-1"} for e in before["edges"])


def test_only_audit_read_opens_the_log(audited: Gateway, tokens: dict[str, str]):
    query = "{ accessLog { totalCount } }"
    for who in ("finance", "partner", "officer"):
        body = audited.post(query, headers=bearer(tokens[who])).json()
        assert body["data"] == {"accessLog": None}
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert "audit:read" in body["errors"][0]["extensions"]["grantedBy"]
    anonymous = audited.post("{ __schema { queryType { fields { name } } } }", headers={})
    names = {f["name"] for f in anonymous.json()["data"]["__schema"]["queryType"]["fields"]}
    assert "accessLog" not in names and "parcels" in names


def test_reading_the_log_is_itself_recorded(audited: Gateway, tokens: dict[str, str], store: str):
    response = audited.post(
        "{ accessLog(first: 2) { edges { node { seq subject } } } }",
        headers=bearer(tokens["dpo"], "req-dpo-read"),
    )
    seqs = [e["node"]["seq"] for e in response.json()["data"]["accessLog"]["edges"]]
    [entry] = entries(store, "req-dpo-read")
    assert entry["subject"] == "dpo-1" and entry["lawfulBasis"] == "pdpa-24-6"
    assert entry["records"] == sorted(f"audit:{s}" for s in seqs)
    assert entry["subjects"] == []


def test_bad_log_filters_are_bad_user_input(audited: Gateway, tokens: dict[str, str]):
    body = audited.post(
        '{ accessLog(filter: {subject: ""}) { totalCount } }', headers=bearer(tokens["dpo"])
    ).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body = audited.post(
        '{ accessLog(after: "bm90LWEtY3Vyc29y") { totalCount } }', headers=bearer(tokens["dpo"])
    ).json()
    assert body["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"


# ---------------------------------------------------------------------------- data subject report


def test_the_data_subject_report_lists_exactly_the_reads_about_that_person(
    db: DatabaseUrls,
    traffy_url: str,
    server_url: str,
    tokens: dict[str, str],
    person: dict[str, Any],
):
    store = fresh_database(server_url, "bmatest_audit_subject")
    server, gw = start_gateway(settings_for(db, traffy_url, audit_database_url=store))
    try:
        other = sql(
            db.tax,
            "SELECT p.id FROM tax.parcels p JOIN tax.owners o ON o.id = p.owner_id "
            "WHERE o.national_id <> $1 AND p.district_code = '1039' LIMIT 1",
            person["national_id"],
        )[0]["id"]
        parcel_vars = {"id": str(person["parcel_id"])}
        business = "query($no: String!) { business(registrationNo: $no) { name owner { name nationalId } } }"
        made = [
            gw.post(PARCEL_READ, parcel_vars, headers=bearer(tokens["finance"], "about-1")),
            gw.post(
                "query($id: ID!) { parcel(id: $id) { appraisedValue } }",
                parcel_vars,
                headers=bearer(tokens["partner"], "about-2"),
            ),
            gw.post(
                business,
                {"no": person["registration_no"]},
                headers=bearer(tokens["officer"], "about-3"),
            ),
        ]
        # Not about them: someone else's parcel, public fields of theirs, a refused attempt.
        gw.post(PARCEL_READ, {"id": str(other)}, headers=bearer(tokens["finance"], "not-1"))
        gw.post(
            "query($id: ID!) { parcel(id: $id) { id landUse } }",
            parcel_vars,
            headers=bearer(tokens["finance"], "not-2"),
        )
        gw.post("query($id: ID!) { parcel(id: $id) { owner { name } } }", parcel_vars, headers={})
        assert all(r.status_code == 200 and "errors" not in r.json() for r in made)

        report = access_log(gw, tokens["dpo"], {"dataSubject": person["national_id"]})
        rows = [e["node"] for e in report["edges"]]
        assert [r["requestId"] for r in rows] == ["about-1", "about-2", "about-3"]
        assert report["totalCount"] == 3
        assert [(r["subject"], r["purpose"]) for r in rows] == [
            ("finance-officer-7", "tax-collection"),
            ("p-1", "research"),
            ("officer-1039", "district-service"),
        ]
        assert {f["field"] for f in rows[2]["fields"]} == {
            "Business.owner",
            "BusinessOwner.name",
            "BusinessOwner.nationalId",
        }
        assert [f["access"] for f in rows[1]["fields"]] == ["masked"]
        nobody = access_log(gw, tokens["dpo"], {"dataSubject": "1111111111119"})
        assert nobody["totalCount"] == 0 and nobody["edges"] == []
    finally:
        gw.client.close()
        server.stop()


# ---------------------------------------------------------------------------- the store


def test_the_writer_role_cannot_change_or_remove_records(audited: Gateway, store: str):
    assert record_count(store) > 0

    async def attempt(statement: str, role: str | None) -> str:
        conn = await asyncpg.connect(store)
        try:
            if role:
                await conn.execute(f"SET ROLE {role}")
            await conn.execute(statement)
        except asyncpg.PostgresError as exc:
            return type(exc).__name__
        finally:
            await conn.close()
        return "done"

    for statement in (
        "UPDATE audit.records SET entry = '{}' WHERE seq = 1",
        "DELETE FROM audit.records WHERE seq = 1",
        "TRUNCATE audit.records",
        "UPDATE audit.chain_head SET seq = 0",
        "DELETE FROM audit.chain_head",
    ):
        # As the writer role: no privilege (or the trigger, for the head it may update).
        assert run(attempt(statement, WRITER_ROLE)) == "InsufficientPrivilegeError", statement
        # Even as the table's owner: the triggers refuse.
        assert run(attempt(statement, None)) == "InsufficientPrivilegeError", statement


def test_every_type_with_a_restricted_field_names_its_records():
    schema = graphql_schema()
    policy = load_policy()
    restricted = {t for (t, _f), rule in policy.rules.items() if not rule.open}
    # Fields of these identify no record: the root, and a field's description in the log.
    keyless = {"Query", "FieldAccess"}
    assert restricted - keyless <= set(KEYS), restricted - keyless - set(KEYS)
    assert set(KEYS) <= set(schema.type_map)


# ---------------------------------------------------------------------------- settings


def test_audit_settings_round_trip_and_default_to_the_gateway_database(tmp_path):
    key = tmp_path / "audit.key"
    key.write_text("ab" * 32)
    env = {
        **REQUIRED_ENV,
        "BMA_GATEWAY_DATABASE_URL": "postgresql://x/gateway",
        "BMA_AUDIT_KEY_FILE": str(key),
        "BMA_AUDIT_BATCH_MAX": "64",
        "BMA_AUDIT_QUEUE_MAX": "500",
        "BMA_AUDIT_TIMEOUT": "2.5",
    }
    settings = Settings.from_env(env)
    assert settings.audit_store_url == "postgresql://x/gateway"
    assert (settings.audit_batch_max, settings.audit_queue_max) == (64, 500)
    assert settings.audit_timeout == 2.5 and settings.audit_key_file == key
    assert Settings.from_env(settings.to_env()) == settings
    separate = Settings.from_env({**env, "BMA_AUDIT_DATABASE_URL": "postgresql://y/audit"})
    assert separate.audit_store_url == "postgresql://y/audit"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BMA_AUDIT_KEY_FILE", "/no/such/audit.key", "no such file"),
        ("BMA_AUDIT_BATCH_MAX", "0", "BMA_AUDIT_BATCH_MAX"),
        ("BMA_AUDIT_QUEUE_MAX", "many", "whole number"),
        ("BMA_AUDIT_TIMEOUT", "90", "BMA_AUDIT_TIMEOUT"),
    ],
)
def test_bad_audit_settings_name_the_variable(variable: str, value: str, message: str):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**REQUIRED_ENV, variable: value})
    assert message in str(error.value) and variable in str(error.value)


def test_without_an_audit_store_restricted_data_is_refused_and_public_served(
    db: DatabaseUrls, traffy_url: str, tokens: dict[str, str], person: dict[str, Any]
):
    server, gw = start_gateway(settings_for(db, traffy_url, audit_key_file=None))
    try:
        variables = {"id": str(person["parcel_id"])}
        refused = gw.post(PARCEL_READ, variables, headers=bearer(tokens["finance"]))
        assert refused.status_code == 503
        assert refused.json()["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
        assert person["national_id"] not in refused.text
        public = gw.post("query($id: ID!) { parcel(id: $id) { id } }", variables)
        assert public.json() == {"data": {"parcel": {"id": str(person["parcel_id"])}}}
    finally:
        gw.client.close()
        server.stop()
