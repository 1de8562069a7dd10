"""GraphQL over HTTP as the ``graphql-http`` audit checks it, without Node: each SHOULD (and
MUST) audit's request, sent to a running gateway, and the status, media type and body it
must get (the audit's id in each case's name). bench/graphql_http_audit.py runs the audit
itself; docs/errors.md#media-types-and-status-codes says what is answered and why."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
NEW = {"content-type": JSON, "accept": GRAPHQL_RESPONSE}
LEGACY = {"content-type": JSON, "accept": JSON}

TYPENAME = {"query": "{ __typename }"}
UNPARSABLE = {"query": "{"}
# The audit's "validation failure" (a name may not start with a digit: it does not parse
# either), and one that parses but does not validate.
INVALID = {"query": "{ 8f31403dfe404bccbb0e835f2629c6a7 }"}
UNKNOWN_FIELD = {"query": "{ noSuchField }"}
# The audit's variable coercion failure (its variable is unused: it does not validate either),
# and one whose only fault is the variable's value.
UNCOERCIBLE = {"query": "query CoerceFailure($id: ID!){ __typename }", "variables": {"id": None}}
NULL_CODE = {
    "query": "query Q($code: String!) { district(code: $code) { code } }",
    "variables": {"code": None},
}


def send(client: httpx.Client, headers: dict[str, str | None], body: Any) -> httpx.Response:
    """POST ``body`` (JSON, or bytes as they are) with exactly ``headers``: a header given as
    None is not sent at all, not even httpx's default."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    request = client.build_request("POST", "/graphql", content=content)
    for name in ("accept", "content-type"):
        request.headers.pop(name, None)
    for name, value in headers.items():
        if value is not None:
            request.headers[name] = value
    return client.send(request)


def media_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


# (audit id, headers, body, status, media type of the answer, whether the body has `data`)
CASES = [
    ("22EB-new-type-answered-in-it", NEW, TYPENAME, 200, GRAPHQL_RESPONSE, True),
    ("4655-json-answered-in-it", LEGACY, TYPENAME, 200, JSON, True),
    ("47DE-any-type-is-json", {"content-type": JSON, "accept": "*/*"}, TYPENAME, 200, JSON, True),
    ("80D8-no-accept-is-json", {"content-type": JSON, "accept": None}, TYPENAME, 200, JSON, True),
    ("34A2-string-query", NEW, TYPENAME, 200, GRAPHQL_RESPONSE, True),
    (
        "8161-string-operation-name",
        NEW,
        {"operationName": "Query", "query": "query Query { __typename }"},
        200,
        GRAPHQL_RESPONSE,
        True,
    ),
    ("94B0-null-variables", NEW, {**TYPENAME, "variables": None}, 200, GRAPHQL_RESPONSE, True),
    ("94B1-null-name", NEW, {**TYPENAME, "operationName": None}, 200, GRAPHQL_RESPONSE, True),
    ("94B2-null-extensions", NEW, {**TYPENAME, "extensions": None}, 200, GRAPHQL_RESPONSE, True),
    (
        "2EA1-map-variables",
        NEW,
        {
            "query": "query Type($name: String!) { __type(name: $name) { name } }",
            "variables": {"name": "sometype"},
        },
        200,
        GRAPHQL_RESPONSE,
        True,
    ),
    (
        "428F-map-extensions",
        NEW,
        {**TYPENAME, "extensions": {"some": "value"}},
        200,
        GRAPHQL_RESPONSE,
        True,
    ),
    # Not a GraphQL request at all: 400 under either type.
    ("BCF8-json-parse-failure-legacy", LEGACY, b'{ "not a JSON', 400, JSON, False),
    ("B7N8-json-parse-failure-new", NEW, b'{ "not a JSON', 400, GRAPHQL_RESPONSE, False),
    ("3E3A-no-query", LEGACY, {"qeury": "{ __typename }"}, 400, JSON, False),
    ("58B0-string-extensions", LEGACY, {**TYPENAME, "extensions": "x"}, 400, JSON, False),
    ("58B3-array-extensions", NEW, {**TYPENAME, "extensions": ["x"]}, 400, GRAPHQL_RESPONSE, False),
    # The operation's request errors: 200 in application/json, 400 without data in the new type.
    ("572B-unparsable-legacy", LEGACY, UNPARSABLE, 200, JSON, False),
    ("FDE2-invalid-legacy", LEGACY, INVALID, 200, JSON, False),
    ("7B9B-uncoercible-legacy", LEGACY, UNCOERCIBLE, 200, JSON, False),
    ("556A-D586-unparsable-new", NEW, UNPARSABLE, 400, GRAPHQL_RESPONSE, False),
    ("74FF-5E5B-invalid-new", NEW, INVALID, 400, GRAPHQL_RESPONSE, False),
    ("unknown-field-legacy", LEGACY, UNKNOWN_FIELD, 200, JSON, False),
    ("unknown-field-new", NEW, UNKNOWN_FIELD, 400, GRAPHQL_RESPONSE, False),
    ("86EE-uncoercible-new", NEW, UNCOERCIBLE, 400, GRAPHQL_RESPONSE, False),
    ("null-variable-legacy", LEGACY, NULL_CODE, 200, JSON, False),
    ("null-variable-new", NEW, NULL_CODE, 400, GRAPHQL_RESPONSE, False),
]


@pytest.mark.parametrize(
    ("headers", "body", "status", "answered_in", "has_data"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_audits_requests(anonymous, headers, body, status, answered_in, has_data):
    response = send(anonymous.client, headers, body)
    assert response.status_code == status, response.text
    assert media_type(response) == answered_in
    assert "accept" in response.headers["vary"].lower()
    answer = orjson.loads(response.content)  # UTF-8 JSON (82A3)
    assert ("data" in answer) is has_data, answer
    if has_data:
        assert "errors" not in answer, answer
    else:
        assert answer["errors"][0]["extensions"]["code"]


def test_request_error_codes_are_the_same_under_either_type(anonymous):
    for body, code in (
        (UNPARSABLE, "GRAPHQL_PARSE_FAILED"),
        (UNKNOWN_FIELD, "GRAPHQL_VALIDATION_FAILED"),
        (NULL_CODE, "BAD_USER_INPUT"),
    ):
        answers = [orjson.loads(send(anonymous.client, h, body).content) for h in (NEW, LEGACY)]
        assert answers[0] == answers[1]
        assert [e["extensions"]["code"] for e in answers[0]["errors"]] == [code]


def test_an_operation_limit_is_a_request_error(anonymous):
    """The gateway's own validation rules (here the alias limit) answer like the spec's."""
    aliased = {"query": "{ " + " ".join(f"a{n}: __typename" for n in range(31)) + " }"}
    new, legacy = (send(anonymous.client, h, aliased) for h in (NEW, LEGACY))
    assert new.status_code == 400 and legacy.status_code == 200, new.text
    assert new.json()["errors"] == legacy.json()["errors"]
    assert new.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_ALIASES"
    assert "data" not in new.json()


def test_no_content_type_is_refused(anonymous):
    """9ABE: a POST body without a content type is a 4xx (415), in the type asked for."""
    response = send(anonymous.client, {"content-type": None, "accept": GRAPHQL_RESPONSE}, TYPENAME)
    assert response.status_code == 415
    assert media_type(response) == GRAPHQL_RESPONSE
    assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("accept", ["text/html", "application/xml, text/*", "application/json;q=0"])
def test_nothing_acceptable_is_406(anonymous, accept):
    response = send(anonymous.client, {"content-type": JSON, "accept": accept}, TYPENAME)
    assert response.status_code == 406, response.text
    assert media_type(response) == JSON
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "NOT_ACCEPTABLE", "offered": [JSON, GRAPHQL_RESPONSE]}


@pytest.mark.parametrize(
    ("accept", "answered_in"),
    [
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE),
        ("application/json;q=0.5, */*", GRAPHQL_RESPONSE),
        ("application/json, application/graphql-response+json", JSON),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
    ],
)
def test_q_values_and_wildcards_choose_the_type(anonymous, accept, answered_in):
    response = send(anonymous.client, {"content-type": JSON, "accept": accept}, UNPARSABLE)
    assert media_type(response) == answered_in
    assert response.status_code == (400 if answered_in == GRAPHQL_RESPONSE else 200)


def test_get_requests_negotiate_too(anonymous):
    params = {"query": "query Type($name: String!) { __type(name: $name) { name } }"}
    params["variables"] = '{"name": "sometype"}'
    for accept, answered_in in ((GRAPHQL_RESPONSE, GRAPHQL_RESPONSE), (JSON, JSON)):
        response = anonymous.client.get("/graphql", params=params, headers={"accept": accept})
        assert response.status_code == 200 and media_type(response) == answered_in
        assert response.json() == {"data": {"__type": None}}
    unparsable = anonymous.client.get("/graphql", params={"query": "{"}, headers=LEGACY)
    assert unparsable.status_code == 200
    assert unparsable.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


def test_a_batch_answers_in_the_type_asked_for(anonymous):
    response = send(anonymous.client, NEW, [TYPENAME, UNPARSABLE])
    assert response.status_code == 200 and media_type(response) == GRAPHQL_RESPONSE
    first, second = response.json()
    assert first == {"data": {"__typename": "Query"}}
    assert second["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


def test_a_refused_credential_keeps_its_401_under_either_type(anonymous):
    for headers in (NEW, LEGACY):
        response = send(anonymous.client, {**headers, "authorization": "Bearer x.y.z"}, TYPENAME)
        assert response.status_code == 401
        assert media_type(response) == headers["accept"]
        assert response.headers["www-authenticate"].startswith("Bearer")
