"""Trusted documents through the gateway: registered documents named by hash run exactly as
their text sent in full (answer bytes, audit record, policy decisions), for every audience;
`require` refuses everything else before any upstream call; Apollo's automatic persisted
queries work with the requests its client sends, unmodified.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import orjson
import pytest
from graphql import parse, print_ast

from connectors.cache import DEFAULT_TTLS
from gateway.demo.embedded import DatabaseUrls
from gateway.execution.document_registry import NewDocument, add_documents, ensure_schema
from support import Gateway, run, settings_for, sql, start_gateway

AUDIENCES = ("anonymous", "app", "partner", "agency")
ALL_REQUIRE = dict.fromkeys(AUDIENCES, "require")
# Principals of tests/conftest.py speaking for each audience (agency: a finance officer,
# who reads owners in clear and is audited).
SPEAKER = {"anonymous": "anonymous", "app": "app", "partner": "partner", "agency": "finance"}

PARCEL = """query ParcelForTrust($id: ID!) {
  parcel(id: $id) { id landUse appraisedValue owner { kind name nationalId } }
  districts { code }
}"""
UNREGISTERED = "query NotRegistered { districts { code nameEn } }"
# Apollo Client hashes and sends the document as graphql-js prints it.
APOLLO = print_ast(parse("query DistrictNames { districts { code nameTh } }"))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def register(url: str, client: str, *texts: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(url)
        try:
            await ensure_schema(conn)
            await add_documents(conn, client, [NewDocument(sha(t), t, ()) for t in texts])
        finally:
            await conn.close()

    run(go())


@pytest.fixture(scope="module")
def parcel_id(db: DatabaseUrls) -> str:
    """A parcel of a person in district 1039: owners are personal data."""
    rows = sql(
        db.tax,
        """SELECT min(p.id) AS id FROM tax.parcels p JOIN tax.owners o ON o.id = p.owner_id
           WHERE o.kind = 'person' AND p.district_code = '1039'""",
    )
    return str(rows[0]["id"])


@pytest.fixture(scope="module")
def registered(db: DatabaseUrls) -> None:
    register(db.gateway, "trust-suite-app", PARCEL)


@pytest.fixture(scope="module")
def strict(db: DatabaseUrls, traffy_url: str, registered: None) -> Iterator[Gateway]:
    """A gateway running registered documents only, for every audience; its audit records
    go to the same store as the session's gateway (mode off)."""
    server, gw = start_gateway(settings_for(db, traffy_url, trusted_documents=ALL_REQUIRE))
    yield gw
    gw.client.close()
    server.stop()


@pytest.fixture(scope="module")
def allowing(db: DatabaseUrls, traffy_url: str, registered: None) -> Iterator[Gateway]:
    """A gateway in `allow` mode with its APQ cache on (in memory)."""
    ttls = {**dict.fromkeys(DEFAULT_TTLS, 0), "apq": 3600}
    settings = settings_for(db, traffy_url, trusted_documents="allow", cache_ttls=ttls)
    server, gw = start_gateway(settings)
    yield gw
    gw.client.close()
    server.stop()


def audit_entries(store: str, request_id: str) -> list[dict[str, Any]]:
    rows = sql(
        store,
        "SELECT entry::text AS entry FROM audit.records WHERE entry ->> 'requestId' = $1 "
        "ORDER BY seq",
        request_id,
    )
    return [orjson.loads(r["entry"]) for r in rows]


def without_request_id(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "requestId"} for e in entries]


def upstream_calls(gw: Gateway) -> int:
    return sum(n for c in gw.connectors.all() for n in c.counter.calls.values())


# ---------------------------------------------------------------- the same as the full text


@pytest.mark.parametrize("audience", AUDIENCES)
def test_a_registered_document_by_hash_answers_and_is_audited_as_its_full_text(
    anonymous: Gateway,
    strict: Gateway,
    principals: dict[str, dict[str, str]],
    parcel_id: str,
    db: DatabaseUrls,
    audience: str,
):
    headers = principals[SPEAKER[audience]]
    variables = {"id": parcel_id}
    full = anonymous.client.post(
        "/graphql",
        json={"query": PARCEL, "variables": variables},
        headers={**headers, "x-request-id": f"trust-full-{audience}"},
    )
    by_id = strict.client.post(
        "/graphql",
        json={"documentId": f"sha256:{sha(PARCEL)}", "variables": variables},
        headers={**headers, "x-request-id": f"trust-id-{audience}"},
    )
    by_apq = strict.client.get(
        "/graphql",
        params={
            "variables": json.dumps(variables),
            "extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": sha(PARCEL)}}),
        },
        headers={**headers, "x-request-id": f"trust-apq-{audience}"},
    )
    assert full.status_code == by_id.status_code == by_apq.status_code == 200
    assert by_id.content == full.content  # the same bytes: data, masks and denials
    assert by_apq.content == full.content
    decisions = {
        (e["extensions"]["code"], e["extensions"].get("rule"))
        for e in full.json().get("errors", [])
    }
    expected_records = without_request_id(audit_entries(db.gateway, f"trust-full-{audience}"))
    for how in ("id", "apq"):
        records = audit_entries(db.gateway, f"trust-{how}-{audience}")
        assert without_request_id(records) == expected_records
    # The case is one where the policy decides something for each audience, audited: fields
    # denied to the public, masked or clear for the others.
    assert expected_records and expected_records[0]["documentHash"] == sha(PARCEL)
    accesses = {f["field"]: f["access"] for f in expected_records[0]["fields"]}
    if audience in ("anonymous", "app"):
        assert ("FORBIDDEN", "Parcel.owner: internal") in decisions
        assert accesses["Parcel.owner"] == "denied"
    else:
        assert accesses["Owner.nationalId"] == ("masked" if audience == "partner" else "clear")


def test_a_registered_document_sent_in_full_runs_in_require_mode(
    strict: Gateway, anonymous: Gateway, parcel_id: str
):
    payload = {"query": PARCEL, "variables": {"id": parcel_id}}
    response = strict.client.post("/graphql", json=payload)
    assert response.status_code == 200
    assert response.content == anonymous.client.post("/graphql", json=payload).content


# ---------------------------------------------------------------- refused in require mode


@pytest.mark.parametrize("audience", AUDIENCES)
@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"query": UNREGISTERED}, 403, "DOCUMENT_NOT_TRUSTED"),
        ({"documentId": f"sha256:{sha(UNREGISTERED)}"}, 404, "PERSISTED_QUERY_NOT_FOUND"),
        (
            {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(UNREGISTERED)}}},
            404,
            "PERSISTED_QUERY_NOT_FOUND",
        ),
        (
            {
                "query": UNREGISTERED,
                "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(UNREGISTERED)}},
            },
            403,
            "DOCUMENT_NOT_TRUSTED",
        ),
        # A registered hash does not lend its trust to another text.
        ({"query": UNREGISTERED, "documentId": f"sha256:{sha(PARCEL)}"}, 400,
         "DOCUMENT_HASH_MISMATCH"),
    ],
    ids=["full-text", "document-id", "apq-hash", "apq-registration", "hash-mismatch"],
)  # fmt: skip
def test_require_refuses_unregistered_documents_before_any_upstream_call(
    strict: Gateway,
    principals: dict[str, dict[str, str]],
    audience: str,
    payload: dict[str, Any],
    status: int,
    code: str,
):
    strict.reset_counters()
    response = strict.client.post("/graphql", json=payload, headers=principals[SPEAKER[audience]])
    body = response.json()
    assert response.status_code == status, body
    assert [e["extensions"]["code"] for e in body["errors"]] == [code]
    assert "data" not in body
    assert upstream_calls(strict) == 0


def test_require_persists_nothing_a_client_sends(strict: Gateway):
    hashed = {"persistedQuery": {"version": 1, "sha256Hash": sha(UNREGISTERED)}}
    strict.client.post("/graphql", json={"query": UNREGISTERED, "extensions": hashed})
    again = strict.client.post("/graphql", json={"extensions": hashed})
    assert again.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


def test_malformed_references_are_bad_requests(strict: Gateway):
    cases = [
        {"documentId": "md5:0123"},
        {"documentId": 12},
        {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": sha(PARCEL)}}},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "ABC"}}},
        {"extensions": "persistedQuery"},
    ]
    for payload in cases:
        response = strict.client.post("/graphql", json=payload)
        assert response.status_code == 400, payload
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


# ---------------------------------------------------------------- Apollo's APQ, unmodified

# What Apollo Client's HttpLink sends with its persisted-queries link: POST, the operation's
# name, its variables and the hash first; the document as well when the hash was not found.
APOLLO_HEADERS = {
    "content-type": "application/json",
    "accept": "application/graphql-response+json,application/json;q=0.9",
}


def apollo_request(gw: Gateway, *, with_query: bool, get: bool = False) -> Any:
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha(APOLLO)}}
    if get:  # useGETForHashedQueries: the hash-only request as a GET
        params = {
            "operationName": "DistrictNames",
            "variables": "{}",
            "extensions": json.dumps(extensions, separators=(",", ":")),
        }
        return gw.client.get(
            "/graphql", params=params, headers={"accept": APOLLO_HEADERS["accept"]}
        )
    body: dict[str, Any] = {
        "operationName": "DistrictNames",
        "variables": {},
        "extensions": extensions,
    }
    if with_query:
        body["query"] = APOLLO
    return gw.client.post("/graphql", content=orjson.dumps(body), headers=APOLLO_HEADERS)


def test_apollo_automatic_persisted_queries_round_trip(allowing: Gateway, anonymous: Gateway):
    expected = anonymous.query(APOLLO)
    first = apollo_request(allowing, with_query=False)
    error = first.json()["errors"][0]
    # What Apollo's link looks for (by message or by code) before it sends the document.
    assert error["message"] == "PersistedQueryNotFound"
    assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert first.status_code == 404
    retried = apollo_request(allowing, with_query=True)
    assert retried.status_code == 200 and retried.json() == {"data": expected}
    for get in (False, True):  # persisted now: the hash alone runs, by POST and by GET
        again = apollo_request(allowing, with_query=False, get=get)
        assert again.status_code == 200, again.json()
        assert again.json() == {"data": expected}


def test_allow_runs_registered_documents_by_hash_and_others_in_full(
    allowing: Gateway, anonymous: Gateway, parcel_id: str
):
    variables = {"id": parcel_id}
    by_id = allowing.client.post(
        "/graphql", json={"documentId": sha(PARCEL), "variables": variables}
    )
    full = anonymous.client.post("/graphql", json={"query": PARCEL, "variables": variables})
    assert by_id.content == full.content
    assert allowing.client.post("/graphql", json={"query": UNREGISTERED}).status_code == 200


def test_off_answers_not_supported_then_apollo_sends_the_document(anonymous: Gateway):
    first = apollo_request(anonymous, with_query=False)
    error = first.json()["errors"][0]
    assert (error["message"], error["extensions"]["code"]) == (
        "PersistedQueryNotSupported",
        "PERSISTED_QUERY_NOT_SUPPORTED",
    )
    # Apollo's link then turns persisted queries off and sends the document alone.
    retried = anonymous.client.post(
        "/graphql",
        json={"operationName": "DistrictNames", "variables": {}, "query": APOLLO},
    )
    assert retried.status_code == 200 and "data" in retried.json()


def test_the_readmes_registered_documents_tour_answers_as_written(allowing: Gateway):
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("```sh", readme.index("### Registered documents"))
    block = readme[start : readme.index("```", start + 5)]
    body = block[block.index("-d '") + 4 : block.index("}}}'") + 3]
    payload = json.loads(body)
    assert sha(payload["query"]) == payload["extensions"]["persistedQuery"]["sha256Hash"]
    first = allowing.client.post("/graphql", json=payload)
    assert first.status_code == 200 and len(first.json()["data"]["districts"]) == 50
    url = block[block.index("'http://127.0.0.1:8000") + 1 :].split("'")[0]
    again = allowing.client.get(url.removeprefix("http://127.0.0.1:8000"))
    assert again.status_code == 200 and again.content == first.content
