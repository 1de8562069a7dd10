"""The data-subject report is complete: one seeded person's personal fields, read through every
path of the graph, each appear in that person's report (PDPA s.30) exactly once per read.

Generated from the policy and the schema: the fields are those tagged personal in
policies/policy.toml, the paths every path in the schema from the root to their type (no type
twice on a path: a cycle resolves the same fields again). A new personal field, or a new path
to one, is covered without editing this file.

What cannot be read off the schema is how a path reaches one person's records: the values of
arguments (``ANCHOR_ARGUMENTS``, by argument name), a root list's district filter, and where a
list of records about people must start so that its first row is the person's
(``LIST_STARTS``, by node type; other lists start at their first row in the district). A
path that needs another argument fails, naming it; one that misses the person fails too.

The person is the seed's everyday person (``gateway.demo.seed.with_everyday_person``): in
district 1039 they own a parcel, trade under a sign on it and applied for a building permit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    is_non_null_type,
)
from graphql.pyutils import Undefined

from connectors.finance import process_cursor, project_cursor
from connectors.registry import business_cursor, permit_cursor
from connectors.tax import parcel_cursor
from gateway.auth.issuer import EmbeddedIssuer
from gateway.cli.main import main
from gateway.demo.credentials import SCOPES as ALL_SCOPES
from gateway.demo.embedded import DatabaseUrls
from gateway.demo.seed import EVERYDAY_DISTRICT
from gateway.http.app import create_app
from policies.model import DEFAULT_POLICY, PolicyError, load_policy
from schema import check_policy, graphql_schema
from support import Gateway, bearer, fresh_database, settings_for, sql, start_gateway

Route = tuple[tuple[str, str], ...]  # (type, field) steps from Query to a personal type


def personal_fields() -> dict[str, list[str]]:
    """Every type with a personal field, and those fields, from the policy."""
    fields: dict[str, list[str]] = {}
    for (type_name, field_name), rule in sorted(load_policy().rules.items()):
        if rule.personal:
            fields.setdefault(type_name, []).append(field_name)
    return fields


def paths_to(schema: GraphQLSchema, targets: set[str]) -> Iterator[tuple[Route, str]]:
    """Every path from the root to an object of a target type, no type twice on a path."""

    def walk(type_name: str, path: Route, seen: frozenset[str]) -> Iterator[tuple[Route, str]]:
        type_ = schema.type_map[type_name]
        assert isinstance(type_, GraphQLObjectType)
        for field_name, field in type_.fields.items():
            child = get_named_type(field.type)
            if not isinstance(child, GraphQLObjectType) or child.name in seen:
                continue
            step = (*path, (type_name, field_name))
            if child.name in targets:
                yield step, child.name
            yield from walk(child.name, step, seen | {child.name})

    root = schema.query_type
    assert root is not None
    yield from walk(root.name, (), frozenset({root.name}))


SCHEMA = graphql_schema()
PERSONAL = personal_fields()
PATHS = sorted(paths_to(SCHEMA, set(PERSONAL)))


@dataclass(frozen=True)
class Person:
    national_id: str
    name: str
    owner_id: int
    parcel_id: int  # bears a sign of their business
    registration_no: str
    permit_no: str
    ticket_id: str  # a complaint in their district
    process_id: str  # a public work their business won
    project_id: str  # its infrastructure project


@pytest.fixture(scope="module")
def person(db: DatabaseUrls, anonymous: Gateway) -> Person:
    schema = f"d{EVERYDAY_DISTRICT}"
    [permit] = sql(
        db.registry,
        f"SELECT permit_no, applicant_id, applicant_name FROM {schema}.building_permits "
        "ORDER BY permit_no LIMIT 1",
    )
    national_id = permit["applicant_id"]
    [business] = sql(
        db.registry,
        f"SELECT min(registration_no) AS no FROM {schema}.commercial_registrations "
        "WHERE owner_id = $1",
        national_id,
    )
    [parcel] = sql(
        db.tax,
        """SELECT min(p.id) AS id, min(o.id) AS owner_id FROM tax.signboards s
           JOIN tax.parcels p ON p.id = s.parcel_id JOIN tax.owners o ON o.id = p.owner_id
           WHERE s.business_registration_no = $1 AND o.national_id = $2""",
        business["no"],
        national_id,
    )
    assert business["no"] and parcel["id"], "the seed has no everyday person"
    [work] = sql(
        db.finance,
        """SELECT a.process_id, j.id AS project_id FROM finance.awards a
           JOIN finance.suppliers s ON s.id = a.supplier_id
           JOIN finance.projects j ON j.process_id = a.process_id
           WHERE s.registration_no = $1 ORDER BY a.process_id LIMIT 1""",
        business["no"],
    )
    complaints = anonymous.query(
        "query($d: String) { complaints(filter: {district: $d}, first: 1) "
        "{ edges { node { ticketId } } } }",
        {"d": EVERYDAY_DISTRICT},
    )
    return Person(
        national_id=national_id,
        name=permit["applicant_name"],
        owner_id=parcel["owner_id"],
        parcel_id=parcel["id"],
        registration_no=business["no"],
        permit_no=permit["permit_no"],
        ticket_id=complaints["complaints"]["edges"][0]["node"]["ticketId"],
        process_id=work["process_id"],
        project_id=work["project_id"],
    )


# Arguments that lead to the person's records, by argument name.
ANCHOR_ARGUMENTS: dict[str, Callable[[Person], Any]] = {
    "code": lambda p: EVERYDAY_DISTRICT,
    "id": lambda p: str(p.parcel_id),
    "registrationNo": lambda p: p.registration_no,
    "ticketId": lambda p: p.ticket_id,
    "radiusMeters": lambda p: 1000,  # the nearest complaints include some of their district
}
# Arguments whose name means another record on one field, by `Type.field.argument`.
FIELD_ARGUMENTS: dict[str, Callable[[Person], Any]] = {
    "Query.procurementProcess.id": lambda p: p.process_id,
}


@dataclass(frozen=True)
class ListStart:
    """Where a list of one node type must start for its first row to be the person's."""

    database: str  # the DatabaseUrls field of the upstream holding the list
    key_before: str  # SQL: the key just before the person's record in their district, or null
    key: Callable[[Person], Any]  # the person's record's key
    cursor: Callable[[Any], str]  # the list's cursor of a key


LIST_STARTS: dict[str, ListStart] = {
    "Parcel": ListStart(
        "tax",
        "SELECT max(id) FROM tax.parcels WHERE district_code = '{district}' AND id < $1",
        lambda p: p.parcel_id,
        parcel_cursor,
    ),
    "Business": ListStart(
        "registry",
        "SELECT max(registration_no) FROM d{district}.commercial_registrations "
        "WHERE registration_no < $1",
        lambda p: p.registration_no,
        business_cursor,
    ),
    "BuildingPermit": ListStart(
        "registry",
        "SELECT max(permit_no) FROM d{district}.building_permits WHERE permit_no < $1",
        lambda p: p.permit_no,
        permit_cursor,
    ),
    # Processes bought by the district's office; their first bidder, winner and contract.
    "ProcurementProcess": ListStart(
        "finance",
        "SELECT max(p.id) FROM finance.processes p JOIN finance.units u "
        "ON u.code = p.buyer_code WHERE u.district_code = '{district}' AND p.id < $1",
        lambda p: p.process_id,
        process_cursor,
    ),
    "InfrastructureProject": ListStart(
        "finance",
        "SELECT max(id) FROM finance.projects WHERE district_code = '{district}' AND id < $1",
        lambda p: p.project_id,
        project_cursor,
    ),
}


def cursor_before(db: DatabaseUrls, node_type: str, person: Person) -> str | None:
    start = LIST_STARTS.get(node_type)
    if start is None:  # any row of the district will do (a complaint there)
        return None
    query = start.key_before.format(district=EVERYDAY_DISTRICT)
    [row] = sql(getattr(db, start.database), query, start.key(person))
    before = next(iter(row.values()))
    return start.cursor(before) if before is not None else None


def literal(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {literal(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


def arguments(
    db: DatabaseUrls, type_name: str, field_name: str, field: GraphQLField, person: Person
) -> str:
    """The arguments of one step of a path that keep it on the person's records."""
    node = _node_type(field)
    given: dict[str, Any] = {}
    for name, arg in field.args.items():
        input_type = get_named_type(arg.type)
        if f"{type_name}.{field_name}.{name}" in FIELD_ARGUMENTS:
            given[name] = FIELD_ARGUMENTS[f"{type_name}.{field_name}.{name}"](person)
        elif name in ANCHOR_ARGUMENTS:
            given[name] = ANCHOR_ARGUMENTS[name](person)
        elif node is not None and name == "first":
            given[name] = 1
        elif node is not None and name == "after":
            before = cursor_before(db, node, person)
            if before is not None:
                given[name] = before
        elif (
            name == "filter"
            and type_name == SCHEMA.query_type.name  # type: ignore[union-attr]
            and isinstance(input_type, GraphQLInputObjectType)
            and "district" in input_type.fields
        ):
            given[name] = {"district": EVERYDAY_DISTRICT}
        elif is_non_null_type(arg.type) and arg.default_value is Undefined:
            pytest.fail(f"no value for {type_name}.{field_name}({name}:) that reaches the person")
    return "(" + ", ".join(f"{k}: {literal(v)}" for k, v in given.items()) + ")" if given else ""


def _node_type(field: GraphQLField) -> str | None:
    """The node type of a connection field (one with edges { node }), else None."""
    named = get_named_type(field.type)
    edges = named.fields.get("edges") if isinstance(named, GraphQLObjectType) else None
    if edges is None:
        return None
    edge = get_named_type(edges.type)
    assert isinstance(edge, GraphQLObjectType)
    return get_named_type(edge.fields["node"].type).name


def document(db: DatabaseUrls, path: Route, target: str, person: Person) -> str:
    selection = " ".join(PERSONAL[target])
    for type_name, field_name in reversed(path):
        type_ = SCHEMA.type_map[type_name]
        assert isinstance(type_, GraphQLObjectType)
        args = arguments(db, type_name, field_name, type_.fields[field_name], person)
        selection = f"{field_name}{args} {{ {selection} }}"
    return "{ " + selection + " }"


def leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)
    else:
        yield value


@pytest.fixture(scope="module")
def reporting(db: DatabaseUrls, traffy_url: str, server_url: str) -> Iterator[Gateway]:
    """A gateway writing to an audit store of its own: the person's report holds our reads only."""
    store = fresh_database(server_url, "bmatest_audit_dsr_paths")
    server, gw = start_gateway(settings_for(db, traffy_url, audit_database_url=store))
    yield gw
    gw.client.close()
    server.stop()


def test_every_personal_field_is_reached_by_some_path():
    reached = {target for _, target in PATHS}
    assert reached == set(PERSONAL), set(PERSONAL) - reached
    assert "BuildingPermit" in reached  # the policy tags applicantName personal


def test_every_read_of_a_person_through_every_path_is_in_their_report_once(
    db: DatabaseUrls, reporting: Gateway, issuer: EmbeddedIssuer, person: Person
):
    reader = bearer(issuer.issue("agency", "bma-dpo", ALL_SCOPES, "secret", purpose="pdpa-audit"))
    made: dict[str, tuple[Route, str]] = {}
    for n, (path, target) in enumerate(PATHS):
        request_id = f"dsr-path-{n}"
        query = document(db, path, target, person)
        response = reporting.post(query, headers={**reader, "x-request-id": request_id})
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, (query, body)
        found = set(leaves(body["data"]))
        assert {person.national_id, person.name} & found, f"{query} did not reach the person"
        made[request_id] = (path, target)

    report = reporting.post(
        "query($id: String) { accessLog(filter: {dataSubject: $id}, first: 1000) { totalCount "
        "edges { node { requestId dataSubjects fields { field access } } } } }",
        {"id": person.national_id},
        headers=reader,
    ).json()["data"]["accessLog"]
    rows = [e["node"] for e in report["edges"]]
    listed = [r["requestId"] for r in rows]
    missing = [".".join(f for _, f in made[r][0]) for r in made if r not in listed]
    assert not missing, f"reads missing from the report: {missing}"
    assert sorted(listed) == sorted(made), "a read is listed twice, or one not about them"
    assert report["totalCount"] == len(made)
    for row in rows:
        _, target = made[row["requestId"]]
        read = {(f["field"], f["access"]) for f in row["fields"]}
        assert {(f"{target}.{f}", "clear") for f in PERSONAL[target]} <= read, row
        assert f"id:{person.national_id}" in row["dataSubjects"], row


# ---------------------------------------------------------------------------- the start-up check


def test_a_personal_field_naming_no_data_subject_stops_the_gateway(
    db: DatabaseUrls, traffy_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # Complaints name no data subject (their reporters are not in the graph): tagging a
    # complaint's field personal would leave its reads out of every data-subject report.
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    assert 'type = "public", types' in text
    path = tmp_path / "policy.toml"
    path.write_text(
        text.replace(
            'type = "public", types',
            'type = { level = "confidential", tags = ["personal"] }, types',
        ),
        encoding="utf-8",
    )
    problem = (
        "personal field Complaint.type names no data subject: give Complaint its subjects in "
        "schema/audit_keys.py"
    )
    with pytest.raises(PolicyError) as caught:
        create_app(settings_for(db, traffy_url, policy_file=str(path)))
    assert caught.value.problems == [problem]
    assert main(["policy", "check", "--file", str(path)]) == 1
    assert problem in capsys.readouterr().err
    check_policy(load_policy(), SCHEMA)  # the shipped policy maps every personal field
