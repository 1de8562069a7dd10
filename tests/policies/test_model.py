"""The policy file, its check against the schema, decisions per audience, and masks."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from graphql import GraphQLObjectType

from gateway.errors import denial_code
from policies.masks import initials, national_id, round_million
from policies.model import DEFAULT_POLICY, Decision, PolicyError, load_policy
from policies.plan import Planner, reachable_fields
from policies.principal import ANONYMOUS, Level, Principal
from policies.report import render
from schema import graphql_schema

SCHEMA = graphql_schema()
POLICY = load_policy()

PARTNER = Principal(
    "partner", "p1", "utility-partner", Level.INTERNAL, frozenset({"tax:read"}), purpose="research"
)
FINANCE = Principal(
    "agency",
    "f1",
    "finance",
    Level.CONFIDENTIAL,
    frozenset({"tax:read", "tax:personal"}),
    purpose="tax-collection",
)


def _policy_without(tmp_path: Path, drop: str, add: str = "") -> Path:
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    assert drop in text
    path = tmp_path / "policy.toml"
    path.write_text(text.replace(drop, add), encoding="utf-8")
    return path


def test_the_shipped_policy_classifies_every_field_of_the_schema():
    POLICY.check(SCHEMA)  # raises on any gap
    objects = [
        t
        for n, t in SCHEMA.type_map.items()
        if isinstance(t, GraphQLObjectType) and not n.startswith("__")
    ]
    assert set(POLICY.rules) == {(t.name, f) for t in objects for f in t.fields}


def test_unclassified_and_unknown_fields_are_all_listed(tmp_path):
    path = _policy_without(
        tmp_path, 'titleDeedNumber = "internal"\n', 'titleDeedColour = "public"\n'
    )
    text = path.read_text(encoding="utf-8").replace('star = "public", ', "")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path).check(SCHEMA)
    assert caught.value.problems == [
        "unclassified field Complaint.star",
        "unclassified field Parcel.titleDeedNumber",
        "policy names Parcel.titleDeedColour, which the schema does not have",
    ]


def test_malformed_entries_are_reported(tmp_path):
    path = _policy_without(
        tmp_path,
        'titleDeedNumber = "internal"',
        'titleDeedNumber = { level = "top", mask = "blur" }',
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.problems == [
        "Parcel.titleDeedNumber: level must be public, internal, confidential or secret"
    ]
    path = _policy_without(
        tmp_path,
        'titleDeedNumber = "internal"',
        'titleDeedNumber = { level = "internal", mask = "blur" }',
    )
    with pytest.raises(PolicyError, match="unknown mask 'blur'"):
        load_policy(path)


def test_a_restricted_field_must_be_nullable(tmp_path):
    path = _policy_without(tmp_path, 'landUse = "public"', 'landUse = "internal"')
    with pytest.raises(PolicyError, match="Parcel.landUse is internal but non-null"):
        load_policy(path).check(SCHEMA)


@pytest.mark.parametrize(
    ("principal", "coordinate", "decision", "grant"),
    [
        (ANONYMOUS, ("Parcel", "landUse"), Decision.ALLOW, ""),
        (ANONYMOUS, ("Parcel", "owner"), Decision.DENY, "scopes tax:read and clearance internal"),
        (
            ANONYMOUS,
            ("Owner", "nationalId"),
            Decision.DENY,
            "scopes tax:personal tax:read and clearance confidential and a declared purpose: "
            "one of district-service, pdpa-audit, research, tax-collection",
        ),
        (PARTNER, ("Parcel", "owner"), Decision.ALLOW, ""),
        (
            PARTNER,
            ("Owner", "nationalId"),
            Decision.MASK,
            "scopes tax:personal and clearance confidential",
        ),
        (PARTNER, ("Parcel", "appraisedValue"), Decision.MASK, "clearance confidential"),
        (PARTNER, ("Parcel", "assessments"), Decision.DENY, "clearance confidential"),
        (
            PARTNER,
            ("BusinessOwner", "name"),
            Decision.DENY,
            "scopes registry:personal registry:read and clearance confidential",
        ),
        (FINANCE, ("Owner", "nationalId"), Decision.ALLOW, ""),
        (FINANCE, ("Parcel", "assessments"), Decision.ALLOW, ""),
    ],
)
def test_decisions_per_audience(principal, coordinate, decision, grant):
    verdict = POLICY.decide(POLICY.rule(*coordinate), principal)
    assert (verdict.decision, verdict.grant) == (decision, grant)


def test_personal_field_without_an_allowed_purpose():
    for purpose in (None, "marketing"):
        who = Principal(
            "agency", "f2", "finance", Level.CONFIDENTIAL, FINANCE.scopes, purpose=purpose
        )
        verdict = POLICY.decide(POLICY.rule("Owner", "name"), who)
        assert verdict.decision is Decision.PURPOSE_REQUIRED
        assert denial_code(verdict).code == "PURPOSE_REQUIRED"
        assert "tax-collection" in verdict.grant


def test_plan_sees_fields_through_aliases_fragments_and_directives():
    from graphql import get_operation_ast, parse

    query = """query Q($x: Boolean!) { a: parcel(id: "1") { ...P ... on Parcel { b: owner { nationalId @include(if: $x) } } } }
               fragment P on Parcel { ...Q2 }  fragment Q2 on Parcel { appraisedValue }
               query Other { districts { code } }"""
    document = parse(query)
    chosen, other_operation = (get_operation_ast(document, n) for n in ("Q", "Other"))
    found = set(reachable_fields(SCHEMA, document, chosen))
    assert found == {
        ("Query", "parcel"),
        ("Parcel", "owner"),
        ("Owner", "nationalId"),
        ("Parcel", "appraisedValue"),
    }
    plan = Planner(POLICY, SCHEMA).plan(query, document, chosen, PARTNER)
    assert {k: v.decision for k, v in plan.actions.items()} == {
        ("Owner", "nationalId"): Decision.MASK,
        ("Parcel", "appraisedValue"): Decision.MASK,
    }
    assert not plan.open_only
    other = Planner(POLICY, SCHEMA).plan(query, document, other_operation, ANONYMOUS)
    assert other.actions == {} and other.open_only


def test_masks():
    assert national_id("1101700203451") == "x-xxxx-xxxxx-45-1"
    assert national_id("12") == "x-xxxx-xxxxx-xx-x"
    assert initials("นายสมชาย ใจดี") == "ส. ใ."
    assert initials("บริษัท สยามพัฒนา จำกัด") == "ส."
    assert round_million("12500000.00") == "13000000"
    assert round_million("oops") is None


@pytest.mark.parametrize("fmt", ["text", "csv", "markdown"])
def test_policy_table_for_the_committee(fmt):
    out = render(POLICY, fmt)
    assert "nationalId" in out and "confidential" in out and "national_id" in out
    assert out.count("\n") == len(POLICY.rules) + (2 if fmt == "markdown" else 1)


def test_policy_file_is_valid_toml_with_a_version():
    raw = tomllib.loads(DEFAULT_POLICY.read_text(encoding="utf-8"))
    assert raw["version"] == 1


def test_the_gateway_refuses_to_start_with_an_unclassified_field(tmp_path):
    from gateway.http.app import create_app
    from gateway.settings import Settings

    path = _policy_without(tmp_path, 'landUse = "public"\n')
    settings = Settings(
        tax_database_url="postgresql://unused",
        registry_database_url="postgresql://unused",
        traffy_base_url="http://unused",
        policy_file=str(path),
    )
    with pytest.raises(PolicyError) as caught:
        create_app(settings)
    assert caught.value.problems == ["unclassified field Parcel.landUse"]
    assert "unclassified field Parcel.landUse" in str(caught.value)


def test_policy_cli_check_and_show(tmp_path, capsys):
    from gateway.cli import main

    assert main(["policy", "check"]) == 0
    assert f"{len(POLICY.rules)} fields classified" in capsys.readouterr().out
    assert main(["policy", "show", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "type,field,level,tags,mask,dataset,scopes"
    assert "Owner,nationalId,confidential,personal,national_id,tax,tax:read" in out
    broken = _policy_without(tmp_path, 'star = "public", ')
    assert main(["policy", "check", "--file", str(broken)]) == 1
    assert "unclassified field Complaint.star" in capsys.readouterr().err
