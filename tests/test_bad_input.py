"""Bad input answers a clear error with a stable code: never a 500, never a stack trace."""

from __future__ import annotations

import base64

import pytest


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errors"], body
    assert "Traceback" not in response.text
    return body["errors"][0]


def test_unknown_district_code(gateway):
    error = _error(gateway.post('{ district(code: "9999") { code } }'), 200)
    assert error["extensions"]["code"] == "UNKNOWN_DISTRICT"
    assert error["path"] == ["district"]
    assert "1001-1050" in error["message"]


def test_unknown_district_in_a_filter(gateway):
    response = gateway.post('{ parcels(filter: {district: "10"}) { totalCount } }')
    assert _error(response, 200)["extensions"]["code"] == "UNKNOWN_DISTRICT"
    assert response.json()["data"] is None


FOREIGN_CURSORS = [
    "garbage!",
    "cGFyY2VsOng",
    "Y29tcGxhaW50OjE",
    "",
]  # …, "parcel:x", "complaint:1", …


@pytest.mark.parametrize(
    ("field", "cursor"),
    [
        (field, cursor)
        for field in ("parcels", "complaints", "businesses")
        for cursor in FOREIGN_CURSORS
        if not (field == "complaints" and cursor == "Y29tcGxhaW50OjE")  # valid there
    ],
)
def test_malformed_or_foreign_cursor(gateway, field, cursor):
    response = gateway.post(f'{{ {field}(after: "{cursor}") {{ totalCount }} }}')
    error = _error(response, 200)
    assert error["extensions"]["code"] == "INVALID_CURSOR", error
    assert error["path"] == [field]


def test_page_size_above_the_maximum(gateway):
    error = _error(gateway.post("{ complaints(first: 1001) { totalCount } }"), 200)
    assert error["extensions"] == {"code": "PAGE_SIZE_EXCEEDED", "argument": "first", "max": 1000}


def test_negative_page_size(gateway):
    error = _error(gateway.post("{ parcels(first: -1) { totalCount } }"), 200)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("radius", [-5, 0, 5001])
def test_radius_out_of_range(gateway, radius):
    error = _error(
        gateway.post(
            f'{{ parcel(id: "1") {{ nearbyComplaints(radiusMeters: {radius}) {{ ticketId }} }} }}'
        ),
        200,
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["parcel", "nearbyComplaints"]


def test_unknown_field_is_a_validation_error(gateway):
    error = _error(gateway.post("{ districts { code mayor } }"), 400)
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "mayor" in error["message"]


def test_syntax_error(gateway):
    error = _error(gateway.post("{ districts { code "), 400)
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


def test_malformed_json_body(gateway):
    response = gateway.client.post(
        "/graphql",
        content=b'{"query": "{ districts { code } }"',
        headers={"content-type": "application/json"},
    )
    assert _error(response, 400)["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"query": 5},
        {"query": ""},
        {"query": "{ districts { code } }", "variables": [1]},
        "text",
        7,
    ],
)
def test_body_that_is_not_an_operation(gateway, payload):
    response = gateway.client.post("/graphql", json=payload)
    assert _error(response, 400)["extensions"]["code"] == "BAD_REQUEST"


def test_wrong_content_type(gateway):
    response = gateway.client.post(
        "/graphql", content=b"{ districts { code } }", headers={"content-type": "text/plain"}
    )
    assert _error(response, 415)["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_oversized_body(gateway):
    big = "{ districts { code } }" + " " * 1_100_000
    response = gateway.client.post("/graphql", json={"query": big})
    assert _error(response, 413)["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


def test_variable_of_the_wrong_type(gateway):
    response = gateway.post("query($n: Int) { parcels(first: $n) { totalCount } }", {"n": "many"})
    assert _error(response, 400)["extensions"]["code"] == "BAD_USER_INPUT"


def test_unknown_operation_name(gateway):
    response = gateway.post("query A { districts { code } }", operationName="B")
    assert _error(response, 400)["extensions"]["code"] == "OPERATION_NOT_FOUND"


def test_malformed_ids(gateway):
    assert (
        _error(gateway.post('{ parcel(id: "abc") { id } }'), 200)["extensions"]["code"]
        == "BAD_USER_INPUT"
    )
    error = _error(gateway.post('{ business(registrationNo: "x") { name } }'), 200)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert gateway.query('{ parcel(id: "99999999") { id } }') == {"parcel": None}
    assert gateway.query('{ business(registrationNo: "1039-2560-99999") { name } }') == {
        "business": None
    }


def test_get_request_and_graphiql(gateway):
    response = gateway.client.get(
        "/graphql", params={"query": '{ district(code: "1001") { nameEn } }'}
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"district": {"nameEn": "Khet Phra Nakhon"}}}
    page = gateway.client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    bad = gateway.client.get(
        "/graphql", params={"query": "{ districts { code } }", "variables": "{"}
    )
    assert _error(bad, 400)["extensions"]["code"] == "BAD_REQUEST"


def test_batch_of_operations(gateway):
    response = gateway.client.post(
        "/graphql",
        json=[
            {"query": '{ district(code: "1001") { code } }'},
            {"query": '{ district(code: "1002") { code } }'},
        ],
    )
    assert response.status_code == 200
    assert [b["data"]["district"]["code"] for b in response.json()] == ["1001", "1002"]
    too_many = gateway.client.post("/graphql", json=[{"query": "{ districts { code } }"}] * 11)
    assert _error(too_many, 400)["extensions"]["code"] == "BATCH_TOO_LARGE"


@pytest.mark.parametrize("field", ["parcels", "complaints"])
def test_cursor_with_an_absurd_position(gateway, field):
    kind = field.removesuffix("s")
    for value in ("9" * 30, "١٢", "-1"):
        cursor = base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()
        error = _error(gateway.post(f'{{ {field}(after: "{cursor}") {{ totalCount }} }}'), 200)
        assert error["extensions"]["code"] == "INVALID_CURSOR", (value, error)


def test_exotic_digits_in_a_parcel_id_do_not_break_the_batch(gateway):
    body = gateway.post(
        '{ a: parcel(id: "1") { id } b: parcel(id: "²") { id } c: parcel(id: "99999999999999999999") { id } }'
    ).json()
    assert body["data"]["a"] == {"id": "1"}
    assert body["data"]["b"] is None and body["data"]["c"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT", "BAD_USER_INPUT"]


def test_overlong_text_arguments(gateway):
    long = "ถ" * 5000
    for query in (
        f'{{ complaint(ticketId: "{long}") {{ ticketId }} }}',
        f'{{ complaints(filter: {{type: "{long}"}}) {{ totalCount }} }}',
        f'{{ businesses(filter: {{type: "{long}"}}) {{ totalCount }} }}',
    ):
        assert _error(gateway.post(query), 200)["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_nested_list_filter_cannot_name_another_district(gateway):
    error = _error(
        gateway.post(
            '{ district(code: "1039") { parcels(filter: {district: "1001"}) { totalCount } } }'
        ),
        200,
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    same = gateway.query(
        '{ district(code: "1039") { parcels(filter: {district: "1039"}) { totalCount } } }'
    )
    assert same["district"]["parcels"]["totalCount"] > 0


def test_an_empty_page_keeps_the_position(gateway):
    first = gateway.query("{ parcels(first: 2) { pageInfo { endCursor } } }")["parcels"][
        "pageInfo"
    ]["endCursor"]
    empty = gateway.query(
        f'{{ parcels(first: 0, after: "{first}") {{ edges {{ cursor }} pageInfo {{ hasNextPage endCursor }} }} }}'
    )
    assert empty["parcels"] == {"edges": [], "pageInfo": {"hasNextPage": True, "endCursor": first}}


def test_a_variable_value_mentioning_operation_is_still_bad_input(gateway):
    response = gateway.post(
        "query($n: Int) { parcels(first: $n) { totalCount } }", {"n": "operation"}
    )
    assert _error(response, 400)["extensions"]["code"] == "BAD_USER_INPUT"


def test_unknown_paths_and_methods_answer_json_with_a_code(gateway):
    missing = gateway.client.get("/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    wrong = gateway.client.put("/graphql", json={"query": "{ districts { code } }"})
    assert wrong.status_code == 405
    assert wrong.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in wrong.headers["allow"]


def test_a_malformed_item_fails_alone_in_a_batch(gateway):
    response = gateway.client.post(
        "/graphql",
        json=[{"query": '{ district(code: "1001") { code } }'}, 5, {"query": ""}],
        headers=gateway.headers,
    )
    assert response.status_code == 200
    first, second, third = response.json()
    assert first == {"data": {"district": {"code": "1001"}}}
    assert second["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert third["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("kind", ["permit", "business"])
def test_a_cursor_hiding_a_nul_is_not_one_this_api_issued(gateway, kind):
    """The cursor itself is text; the key inside it would reach PostgreSQL, which refuses NUL."""
    cursor = base64.urlsafe_b64encode(f"{kind}:1039\x00".encode()).decode()
    field = {"permit": "buildingPermits", "business": "businesses"}[kind]
    response = gateway.post(
        f'{{ district(code: "1039") {{ {field}(after: "{cursor}") {{ totalCount }} }} }}'
    )
    error = _error(response, 200)
    assert error["extensions"]["code"] == "INVALID_CURSOR", error
    assert error["path"] == ["district", field]
