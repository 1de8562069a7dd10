"""Until per-principal policies exist, personal and confidential fields are refused to all,
however they are reached, unless the operator exposes them for synthetic data."""

from __future__ import annotations

import pytest

from policies.restricted import RESTRICTED_FIELDS
from support import sql


@pytest.mark.parametrize(
    "query",
    [
        '{ parcel(id: "1") { owner { nationalId } } }',
        '{ parcel(id: "1") { owner { id: nationalId } } }',
        '{ parcel(id: "1") { ...P } } fragment P on Parcel { owner { name } }',
        '{ parcel(id: "1") { ... on Parcel { appraisedValue } } }',
        "{ parcels { edges { node { assessments { taxDue } } } } }",
        "{ businesses { edges { node { owner { ... { nationalId } } } } } }",
        '{ district(code: "1001") { buildingPermits { edges { node { applicantName } } } } }',
        'query($x: Boolean!) { parcel(id: "1") { owner { nationalId @include(if: $x) } } }',
    ],
)
def test_restricted_field_refused_by_default(default_gateway, query):
    response = default_gateway.post(query, {"x": False} if "$x" in query else None)
    assert response.status_code == 400
    codes = {e["extensions"]["code"] for e in response.json()["errors"]}
    assert codes == {"FORBIDDEN"}
    assert "data" not in response.json()


def test_no_restricted_value_in_open_answers(default_gateway, db):
    ids = {r["national_id"] for r in sql(db.tax, "SELECT national_id FROM tax.owners LIMIT 200")}
    body = default_gateway.client.post(
        "/graphql",
        json={
            "query": '{ parcel(id: "1") { id landUse areaSqm owner { kind } district { code } } }'
        },
    ).text
    assert not any(i in body for i in ids)
    assert '"landUse"' in body


def test_exposed_mode_serves_them(gateway, db):
    owner = sql(
        db.tax,
        "SELECT o.national_id FROM tax.parcels p JOIN tax.owners o ON o.id = p.owner_id WHERE p.id = 1",
    )
    data = gateway.query('{ parcel(id: "1") { owner { nationalId } } }')
    assert data["parcel"]["owner"]["nationalId"] == owner[0]["national_id"]


def test_every_restricted_field_exists_in_the_schema():
    from schema import graphql_schema

    schema = graphql_schema()
    for type_name, field in RESTRICTED_FIELDS:
        assert field in schema.type_map[type_name].fields, (type_name, field)
