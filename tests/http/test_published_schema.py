"""``GET /graphql/schema.graphql``: each caller's own SDL, as its introspection answers it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from graphql import build_schema, parse, validate

from gateway.ratelimit.config import RateLimit, RateLimits
from gateway.settings import Settings
from support import REQUIRED_ENV, Gateway, introspected_sdl, settings_for, start_gateway

PATH = "/graphql/schema.graphql"
CALLERS = ["anonymous", "app", "partner", "officer", "finance", "dpo"]
# Restricted fields: an owner's national ID (tax:read; masked below clearance confidential),
# and the audit trail (audit:read).
NATIONAL_ID = "query P($id: ID!) { parcel(id: $id) { owner { nationalId } } }"
ACCESS_LOG = "{ accessLog { totalCount } }"


def sdl(gateway: Gateway, headers: dict[str, str], accept: str = "text/plain") -> str:
    response = gateway.client.get(PATH, headers={**headers, "accept": accept})
    assert response.status_code == 200, response.text
    return response.text


@pytest.mark.parametrize("caller", CALLERS)
def test_each_caller_gets_the_schema_its_introspection_answers(anonymous, principals, caller):
    headers = principals[caller]
    response = anonymous.client.get(PATH, headers={**headers, "accept": "*/*"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == introspected_sdl(anonymous, headers) + "\n"
    # Who asks decides the answer: no shared cache may keep it, nor mix callers' answers.
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["vary"] == "Accept, Authorization, X-API-Key"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["server-timing"].startswith("app;dur=")
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_a_client_validating_against_its_schema_rejects_what_it_may_not_read(anonymous, principals):
    """What the README promises: an operation reading a restricted field fails validation
    against the caller's own schema, before it is sent."""
    national_id, access_log = parse(NATIONAL_ID), parse(ACCESS_LOG)
    schemas = {c: build_schema(sdl(anonymous, principals[c])) for c in CALLERS}
    # Anonymous: no owner at all (a type with no field left is left out).
    assert [e.message for e in validate(schemas["anonymous"], national_id)] == [
        "Cannot query field 'owner' on type 'Parcel'."
    ]
    # A partner reads the national ID masked, a finance officer in full: both may ask.
    assert validate(schemas["partner"], national_id) == []
    assert validate(schemas["finance"], national_id) == []
    # The audit trail is the data protection officer's alone (audit:read).
    assert validate(schemas["dpo"], access_log) == []
    for caller in ("anonymous", "app", "partner", "officer", "finance"):
        assert [e.message for e in validate(schemas[caller], access_log)] == [
            "Cannot query field 'accessLog' on type 'Query'."
        ], caller


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "text/plain"),
        ("text/*", "text/plain"),
        ("application/graphql", "application/graphql"),
        ("text/plain;q=0.5, application/graphql", "application/graphql"),
    ],
)
def test_served_as_text_or_as_graphql(anonymous, accept, media_type):
    headers = {} if accept is None else {"accept": accept}
    request = anonymous.client.build_request("GET", PATH, headers=headers)
    if accept is None:
        del request.headers["accept"]
    response = anonymous.client.send(request)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert response.text.startswith('"""BMA Data Gateway')


@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
def test_an_accept_naming_neither_type_gets_text(anonymous, accept):
    """Schema fetchers often send their GraphQL requests' Accept: it is disregarded."""
    response = anonymous.client.get(PATH, headers={"accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "type Query" in response.text


def test_refusals(anonymous):
    forged = anonymous.client.get(PATH, headers={"authorization": "Bearer x.y.z"})
    assert forged.status_code == 401
    assert forged.headers["www-authenticate"].startswith("Bearer")
    assert forged.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    posted = anonymous.client.post(PATH, content=b"")
    assert posted.status_code == 405
    assert posted.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.fixture(scope="module")
def limited(db, traffy_url) -> Iterator[Gateway]:
    """Two anonymous requests, then 429 for 1,000 s; anonymous introspection off."""
    raw = '{"anonymous": {"introspection": false}}'
    limits = Settings.from_env({**REQUIRED_ENV, "BMA_OPERATION_LIMITS": raw}).operation_limits
    settings = settings_for(
        db,
        traffy_url,
        rate_limits=RateLimits(anonymous=RateLimit(rate=0.001, burst=2)),
        operation_limits=limits,
    )
    server, gw = start_gateway(settings)
    yield gw
    gw.client.close()
    server.stop()


def test_rate_limited_like_graphql_and_refused_where_introspection_is_off(limited, principals):
    first = limited.client.get(PATH)
    assert first.status_code == 400
    assert first.json()["errors"][0]["extensions"]["code"] == "INTROSPECTION_DISABLED"
    assert first.headers["ratelimit-remaining"] == "1"
    # One bucket for both paths: the schema took a token, /graphql takes the last.
    assert limited.post("{ __typename }").status_code == 200
    refused = limited.client.get(PATH)
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    # A partner's own bucket, and its audience's introspection is on.
    partner = limited.client.get(PATH, headers=principals["partner"])
    assert partner.status_code == 200 and "type Query" in partner.text
