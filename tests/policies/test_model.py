"""policies/model.py: the policy file, its check against the schema (also when the gateway
starts), and decisions per audience and purpose."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from graphql import GraphQLObjectType

from gateway.errors import denial_code
from policies.model import DEFAULT_POLICY, Decision, PolicyError, load_policy
from policies.principal import ANONYMOUS, Level, Principal
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


def test_row_scoped_types_are_declared_in_the_policy_and_checked(tmp_path):
    assert POLICY.row_scopes == {
        "Parcel": "district",
        "Signboard": "district",
        "Business": "district",
        "BuildingPermit": "district",
    }
    unknown = _policy_without(
        tmp_path,
        'dataset = "tax"\nrow_scope = "district"\n',
        'dataset = "tax"\nrow_scope = "ward"\n',
    )
    with pytest.raises(
        PolicyError, match="type Parcel: row_scope must be one of district, not 'ward'"
    ):
        load_policy(unknown)
    hidden = _policy_without(tmp_path, 'district = "public"\n', 'district = "internal"\n')
    with pytest.raises(PolicyError) as caught:
        load_policy(hidden).check(SCHEMA)
    assert caught.value.problems == [
        f"{t} is row-scoped by district: it needs an open field {t}.district"
        for t in ("BuildingPermit", "Parcel", "Signboard")
    ]
    not_an_object = _policy_without(
        tmp_path,
        '[types.GeoPoint]\ndataset = "reference"\n',
        '[types.GeoPoint]\ndataset = "reference"\nrow_scope = "district"\n',
    )
    with pytest.raises(PolicyError, match="GeoPoint is row-scoped by district: it needs an open"):
        load_policy(not_an_object).check(SCHEMA)


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
        finance_database_url="postgresql://unused",
        traffy_base_url="http://unused",
        policy_file=str(path),
    )
    with pytest.raises(PolicyError) as caught:
        create_app(settings)
    assert caught.value.problems == ["unclassified field Parcel.landUse"]
    assert "unclassified field Parcel.landUse" in str(caught.value)
