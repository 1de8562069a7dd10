"""Authorization conformance: for each audience, the exact grant or denial of every field an
operation reaches — through aliases, fragments of every kind, directives, batches, GET, the
choice of operation, introspection, suggestions, row scopes and the reject mode.

Expected outcomes are derived from ``policies/policy.toml`` and ``Policy.decide``; expected
values come from SQL. Every case runs against a real gateway over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import jwt
import pytest

from gateway.auth.issuer import EmbeddedIssuer, SigningKey
from gateway.demo.embedded import DatabaseUrls
from gateway.demo.thai_data import FEMALE_TITLES, MALE_TITLE
from support import Gateway, bearer, settings_for, sql, start_gateway

HOUR = timedelta(hours=1)
ALL_SCOPES = "tax:read tax:personal registry:read registry:personal traffy:personal audit:read"
TITLES = sorted((MALE_TITLE, *FEMALE_TITLES), key=len, reverse=True)


# ---------------------------------------------------------------------------- principals


# ---------------------------------------------------------------------------- facts from SQL


@dataclass(frozen=True)
class Facts:
    parcel: dict[str, Any]  # a 1039 parcel of a person, with a signboard
    assessment_years: list[int]
    signboards: list[dict[str, Any]]  # its signboards
    other_parcel: dict[str, Any]  # a parcel outside 1039
    business: dict[str, Any]  # a 1039 registration
    other_business: dict[str, Any]  # a registration outside 1039
    permits: list[dict[str, Any]]  # the first three building permits of 1039

    @property
    def variables(self) -> dict[str, Any]:
        return {
            "id": str(self.parcel["id"]),
            "other": str(self.other_parcel["id"]),
            "no": self.business["registration_no"],
            "otherNo": self.other_business["registration_no"],
        }


@pytest.fixture(scope="module")
def facts(db: DatabaseUrls) -> Facts:
    parcel_sql = """SELECT p.id, p.title_deed_number, p.appraised_value, p.district_code, p.land_use,
                           o.id AS owner_id, o.kind, o.name, o.national_id
                    FROM tax.parcels p JOIN tax.owners o ON o.id = p.owner_id
                    WHERE {where} ORDER BY p.id LIMIT 1"""
    parcel = sql(
        db.tax,
        parcel_sql.format(
            where="p.district_code = '1039' AND o.kind = 'person' "
            "AND p.id IN (SELECT parcel_id FROM tax.signboards WHERE parcel_id IS NOT NULL)"
        ),
    )[0]
    other = sql(db.tax, parcel_sql.format(where="p.district_code <> '1039'"))[0]
    years = [
        r["tax_year"]
        for r in sql(
            db.tax,
            "SELECT tax_year FROM tax.assessments WHERE parcel_id = $1 ORDER BY tax_year",
            parcel["id"],
        )
    ]
    signboards = sql(
        db.tax, "SELECT * FROM tax.signboards WHERE parcel_id = $1 ORDER BY id", parcel["id"]
    )
    registration = """SELECT registration_no, business_name, owner_name, owner_id
                      FROM {schema}.commercial_registrations ORDER BY registration_no LIMIT 1"""
    permits = sql(
        db.registry,
        "SELECT permit_no, applicant_name FROM d1039.building_permits ORDER BY permit_no LIMIT 3",
    )
    return Facts(
        parcel=parcel,
        assessment_years=years,
        signboards=signboards,
        other_parcel=other,
        business=sql(db.registry, registration.format(schema="d1039"))[0],
        other_business=sql(db.registry, registration.format(schema="d1001"))[0],
        permits=permits,
    )


# ---------------------------------------------------------------------------- expected values


class Num:
    """Equals a JSON decimal string of the same value (format aside)."""

    def __init__(self, value: Decimal | int | str) -> None:
        self.value = Decimal(value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str | int) and Decimal(other) == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Num({self.value})"


def masked_national_id(national_id: str) -> str:
    """Only the last three digits stay: ``x-xxxx-xxxxx-DD-D``."""
    return f"x-xxxx-xxxxx-{national_id[10:12]}-{national_id[12]}"


def initials(person_name: str) -> str:
    """A seeded person's name ("<title><first> <surname>") as initials: "ส. ท."."""
    first, *rest = person_name.split()
    for title in TITLES:
        if first.startswith(title):
            first = first[len(title) :]
            break
    return " ".join(f"{word[0]}." for word in [first, *rest])


def round_million(value: Decimal) -> Num:
    return Num((value / 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP) * 1_000_000)


def full_owner(f: Facts) -> dict[str, Any]:
    p = f.parcel
    return {
        "id": str(p["owner_id"]),
        "kind": p["kind"].upper(),
        "name": p["name"],
        "nationalId": p["national_id"],
    }


def masked_owner(f: Facts) -> dict[str, Any]:
    p = f.parcel
    return {
        **full_owner(f),
        "name": initials(p["name"]),
        "nationalId": masked_national_id(p["national_id"]),
    }


def no_personal_owner(f: Facts) -> dict[str, Any]:
    return {**full_owner(f), "name": None, "nationalId": None}


# ---------------------------------------------------------------------------- denials


@dataclass(frozen=True)
class Denied:
    path: tuple[str | int, ...]
    rule: str  # extensions.rule, exactly
    grant: tuple[str, ...] = ()  # phrases extensions.grantedBy must hold
    code: str = "FORBIDDEN"


def purpose_required(path: tuple[str | int, ...], rule: str) -> Denied:
    return Denied(path, rule, ("purpose", "tax-collection", "research"), "PURPOSE_REQUIRED")


OWNER = "Parcel.owner: internal"
DEED = "Parcel.titleDeedNumber: internal"
VALUE = "Parcel.appraisedValue: confidential"
ASSESSMENTS = "Parcel.assessments: confidential"
NATIONAL_ID = "Owner.nationalId: confidential personal"
OWNER_NAME = "Owner.name: confidential personal"
BUSINESS_OWNER = "Business.owner: internal"
APPLICANT = "BuildingPermit.applicantName: confidential personal"

ANON_TAX = ("tax:read", "clearance internal")
ANON_TAX_CONFIDENTIAL = ("tax:read", "clearance confidential")
NEED_CONFIDENTIAL = ("clearance confidential",)
NEED_REGISTRY = ("registry:read",)


def assert_errors(body: dict[str, Any], expected: tuple[Denied, ...] | list[Denied]) -> None:
    """The response's errors are exactly ``expected`` (any order), each with its rule and
    what would grant it; no errors at all when none are expected."""
    if not expected:
        assert "errors" not in body, body["errors"]
        return
    errors = body.get("errors", [])
    got = sorted((tuple(e.get("path", ())), e["extensions"]["code"]) for e in errors)
    assert got == sorted((d.path, d.code) for d in expected), errors
    by_path = {tuple(e["path"]): e for e in errors}
    for denied in expected:
        extensions = by_path[denied.path]["extensions"]
        assert extensions["rule"] == denied.rule, extensions
        for phrase in denied.grant:
            assert phrase in extensions["grantedBy"], (phrase, extensions)


# ---------------------------------------------------------------------------- the case table


@dataclass(frozen=True)
class Case:
    id: str
    who: str
    query: str
    data: Callable[[Facts], Any]
    errors: Callable[[Facts], list[Denied]] = lambda f: []
    variables: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    operation: str | None = None


PARCEL_ALL = """query($id: ID!) { parcel(id: $id) { id titleDeedNumber appraisedValue
    owner { id kind name nationalId } assessments { taxYear } } }"""


def parcel_all(
    f: Facts,
    deed: bool = True,
    value: str = "full",
    owner: Callable[[Facts], Any] | None = full_owner,
    assessments: bool = True,
) -> dict[str, Any]:
    p = f.parcel
    values = {
        "full": Num(p["appraised_value"]),
        "masked": round_million(p["appraised_value"]),
        "none": None,
    }
    return {
        "parcel": {
            "id": str(p["id"]),
            "titleDeedNumber": p["title_deed_number"] if deed else None,
            "appraisedValue": values[value],
            "owner": owner(f) if owner else None,
            "assessments": [{"taxYear": y} for y in f.assessment_years] if assessments else None,
        }
    }


def anonymous_parcel_denials(f: Facts) -> list[Denied]:
    return [
        Denied(("parcel", "titleDeedNumber"), DEED, ANON_TAX),
        Denied(("parcel", "appraisedValue"), VALUE, ANON_TAX_CONFIDENTIAL),
        Denied(("parcel", "owner"), OWNER, ANON_TAX),
        Denied(("parcel", "assessments"), ASSESSMENTS, ANON_TAX_CONFIDENTIAL),
    ]


def pid(f: Facts) -> str:
    return str(f.parcel["id"])


def owner_nid_query(selection: str = "nationalId") -> str:
    return f"query($id: ID!) {{ parcel(id: $id) {{ id owner {{ {selection} }} }} }}"


BUSINESS_OWNER_Q = """query($no: String!) { business(registrationNo: $no) {
    registrationNo name owner { name nationalId } } }"""


def business_with_owner(f: Facts, owner: bool) -> dict[str, Any]:
    b = f.business
    return {
        "business": {
            "registrationNo": b["registration_no"],
            "name": b["business_name"],
            "owner": {"name": b["owner_name"], "nationalId": b["owner_id"]} if owner else None,
        }
    }


PERMITS_Q = """{ district(code: "1039") { buildingPermits(first: 3) {
    edges { node { permitNo applicantName } } } } }"""


def permits(f: Facts, names: bool) -> dict[str, Any]:
    edges = [
        {
            "node": {
                "permitNo": p["permit_no"],
                "applicantName": p["applicant_name"] if names else None,
            }
        }
        for p in f.permits
    ]
    return {"district": {"buildingPermits": {"edges": edges}}}


def permit_denials(f: Facts, grant: tuple[str, ...]) -> list[Denied]:
    return [
        Denied(
            ("district", "buildingPermits", "edges", i, "node", "applicantName"), APPLICANT, grant
        )
        for i in range(len(f.permits))
    ]


SIGN_Q = """query($id: ID!) { parcel(id: $id) { signboards { id taxDue } } }"""


def signboards(f: Facts) -> dict[str, Any]:
    rows = [{"id": str(s["id"]), "taxDue": Num(s["tax_due"])} for s in f.signboards]
    return {"parcel": {"signboards": rows}}


NAMED_FRAGMENT = """query($id: ID!) { parcel(id: $id) { ...ParcelOwner } }
    fragment ParcelOwner on Parcel { id owner { nationalId } }"""
NESTED_FRAGMENTS = """query($id: ID!) { parcel(id: $id) { ...P } }
    fragment P on Parcel { id ...O }
    fragment O on Parcel { owner { ...N } }
    fragment N on Owner { kind nationalId }"""
SAME_FIELD_TWICE = """query($id: ID!) { parcel(id: $id) { owner { id } ...F } }
    fragment F on Parcel { owner { kind } }"""
OPERATIONS = """query Open { districts { code } }
    query Secret($id: ID!) { parcel(id: $id) { owner { nationalId } assessments { taxYear } ...S } }
    fragment S on Parcel { appraisedValue titleDeedNumber }"""


def codes() -> dict[str, Any]:
    return {"districts": [{"code": str(c)} for c in range(1001, 1051)]}


CASES: list[Case] = [
    # --- one parcel, every restricted field, per audience ------------------------------
    Case(
        "anonymous-parcel-all-fields",
        "anonymous",
        PARCEL_ALL,
        lambda f: parcel_all(f, deed=False, value="none", owner=None, assessments=False),
        anonymous_parcel_denials,
    ),
    Case(
        "app-key-parcel-all-fields",
        "app",
        PARCEL_ALL,
        lambda f: parcel_all(f, deed=False, value="none", owner=None, assessments=False),
        anonymous_parcel_denials,
    ),
    Case(
        "partner-parcel-all-fields",
        "partner",
        PARCEL_ALL,
        lambda f: parcel_all(f, value="masked", owner=masked_owner, assessments=False),
        lambda f: [Denied(("parcel", "assessments"), ASSESSMENTS, NEED_CONFIDENTIAL)],
    ),
    Case(
        "officer-parcel-all-fields",
        "officer",
        PARCEL_ALL,
        lambda f: parcel_all(f, owner=masked_owner),
    ),
    Case("finance-parcel-all-fields", "finance", PARCEL_ALL, lambda f: parcel_all(f)),
    Case("dpo-parcel-all-fields", "dpo", PARCEL_ALL, lambda f: parcel_all(f)),
    Case(
        "finance-purpose-claim-marketing",
        "finance-marketing",
        PARCEL_ALL,
        lambda f: parcel_all(f, owner=no_personal_owner),
        lambda f: [
            purpose_required(("parcel", "owner", "name"), OWNER_NAME),
            purpose_required(("parcel", "owner", "nationalId"), NATIONAL_ID),
        ],
    ),
    Case(
        "finance-x-purpose-header-overrides",
        "finance",
        PARCEL_ALL,
        lambda f: parcel_all(f, owner=no_personal_owner),
        lambda f: [
            purpose_required(("parcel", "owner", "name"), OWNER_NAME),
            purpose_required(("parcel", "owner", "nationalId"), NATIONAL_ID),
        ],
        headers={"X-Purpose": "marketing"},
    ),
    Case(
        "finance-x-purpose-header-allowed",
        "finance-marketing",
        PARCEL_ALL,
        lambda f: parcel_all(f),
        headers={"X-Purpose": "tax-collection"},
    ),
    Case(
        "partner-x-purpose-marketing",
        "partner",
        PARCEL_ALL,
        lambda f: parcel_all(f, value="masked", owner=no_personal_owner, assessments=False),
        lambda f: [
            Denied(("parcel", "assessments"), ASSESSMENTS, NEED_CONFIDENTIAL),
            purpose_required(("parcel", "owner", "name"), OWNER_NAME),
            purpose_required(("parcel", "owner", "nationalId"), NATIONAL_ID),
        ],
        headers={"X-Purpose": "marketing"},
    ),
    Case(
        "anonymous-purpose-grants-nothing",
        "anonymous",
        PARCEL_ALL,
        lambda f: parcel_all(f, deed=False, value="none", owner=None, assessments=False),
        anonymous_parcel_denials,
        headers={"X-Purpose": "research"},
    ),
    Case(
        "officer-without-purpose",
        "officer-without-purpose",
        PARCEL_ALL,
        lambda f: parcel_all(f, owner=no_personal_owner),
        lambda f: [
            purpose_required(("parcel", "owner", "name"), OWNER_NAME),
            purpose_required(("parcel", "owner", "nationalId"), NATIONAL_ID),
        ],
    ),
    Case(
        "dpo-x-purpose-marketing",
        "dpo",
        PARCEL_ALL,
        lambda f: parcel_all(f, owner=no_personal_owner),
        lambda f: [
            purpose_required(("parcel", "owner", "name"), OWNER_NAME),
            purpose_required(("parcel", "owner", "nationalId"), NATIONAL_ID),
        ],
        headers={"X-Purpose": "marketing"},
    ),
    # --- the owner's national ID ---------------------------------------------------------
    Case(
        "anonymous-owner-national-id",
        "anonymous",
        owner_nid_query(),
        lambda f: {"parcel": {"id": pid(f), "owner": None}},
        lambda f: [Denied(("parcel", "owner"), OWNER, ANON_TAX)],
    ),
    Case(
        "partner-owner-national-id-masked",
        "partner",
        owner_nid_query(),
        lambda f: {
            "parcel": {
                "id": pid(f),
                "owner": {"nationalId": masked_national_id(f.parcel["national_id"])},
            }
        },
    ),
    Case(
        "finance-owner-national-id-full",
        "finance",
        owner_nid_query(),
        lambda f: {"parcel": {"id": pid(f), "owner": {"nationalId": f.parcel["national_id"]}}},
    ),
    # --- business owners (registry) -------------------------------------------------------
    Case(
        "anonymous-business-owner",
        "anonymous",
        BUSINESS_OWNER_Q,
        lambda f: business_with_owner(f, False),
        lambda f: [Denied(("business", "owner"), BUSINESS_OWNER, NEED_REGISTRY)],
    ),
    Case(
        "app-key-business-owner",
        "app",
        BUSINESS_OWNER_Q,
        lambda f: business_with_owner(f, False),
        lambda f: [Denied(("business", "owner"), BUSINESS_OWNER, NEED_REGISTRY)],
    ),
    Case(
        "partner-business-owner",
        "partner",
        BUSINESS_OWNER_Q,
        lambda f: business_with_owner(f, False),
        lambda f: [Denied(("business", "owner"), BUSINESS_OWNER, NEED_REGISTRY)],
    ),
    Case(
        "officer-business-owner",
        "officer",
        BUSINESS_OWNER_Q,
        lambda f: business_with_owner(f, True),
    ),
    Case(
        "finance-business-owner",
        "finance",
        BUSINESS_OWNER_Q,
        lambda f: business_with_owner(f, False),
        lambda f: [Denied(("business", "owner"), BUSINESS_OWNER, NEED_REGISTRY)],
    ),
    Case("dpo-business-owner", "dpo", BUSINESS_OWNER_Q, lambda f: business_with_owner(f, True)),
    # --- building permit applicants --------------------------------------------------------
    Case(
        "anonymous-permit-applicants",
        "anonymous",
        PERMITS_Q,
        lambda f: permits(f, False),
        lambda f: permit_denials(f, ("registry:read", "clearance confidential")),
    ),
    Case(
        "partner-permit-applicants",
        "partner",
        PERMITS_Q,
        lambda f: permits(f, False),
        lambda f: permit_denials(f, NEED_REGISTRY),
    ),
    Case("officer-permit-applicants", "officer", PERMITS_Q, lambda f: permits(f, True)),
    Case(
        "finance-permit-applicants",
        "finance",
        PERMITS_Q,
        lambda f: permits(f, False),
        lambda f: permit_denials(f, NEED_REGISTRY),
    ),
    Case("dpo-permit-applicants", "dpo", PERMITS_Q, lambda f: permits(f, True)),
    # --- signboard tax: public, anyone computes it from the sign (tests/test_derived_fields.py)
    Case("anonymous-signboard-tax", "anonymous", SIGN_Q, signboards),
    Case("partner-signboard-tax", "partner", SIGN_Q, signboards),
    # --- aliases ----------------------------------------------------------------------------
    Case(
        "anonymous-alias-denied-field-as-public-name",
        "anonymous",
        "query($id: ID!) { parcel(id: $id) { id: titleDeedNumber } }",
        lambda f: {"parcel": {"id": None}},
        lambda f: [Denied(("parcel", "id"), DEED, ANON_TAX)],
    ),
    Case(
        "partner-alias-denied-field-as-public-name",
        "partner",
        "query($id: ID!) { parcel(id: $id) { landUse: assessments { taxYear } } }",
        lambda f: {"parcel": {"landUse": None}},
        lambda f: [Denied(("parcel", "landUse"), ASSESSMENTS, NEED_CONFIDENTIAL)],
    ),
    Case(
        "anonymous-alias-public-field-as-denied-name",
        "anonymous",
        "query($id: ID!) { parcel(id: $id) { owner: id appraisedValue: __typename } }",
        lambda f: {"parcel": {"owner": pid(f), "appraisedValue": "Parcel"}},
    ),
    Case(
        "partner-alias-masked-fields",
        "partner",
        "query($id: ID!) { parcel(id: $id) { value: appraisedValue o: owner { nid: nationalId } } }",
        lambda f: {
            "parcel": {
                "value": round_million(f.parcel["appraised_value"]),
                "o": {"nid": masked_national_id(f.parcel["national_id"])},
            }
        },
    ),
    Case(
        "anonymous-alias-same-field-twice",
        "anonymous",
        "query($id: ID!) { a: parcel(id: $id) { owner { id } } b: parcel(id: $id) { v: owner { kind } } }",
        lambda f: {"a": {"owner": None}, "b": {"v": None}},
        lambda f: [Denied(("a", "owner"), OWNER, ANON_TAX), Denied(("b", "v"), OWNER, ANON_TAX)],
    ),
    Case(
        "finance-alias-same-field-twice",
        "finance",
        "query($id: ID!) { a: parcel(id: $id) { owner { nationalId } } b: parcel(id: $id) { v: owner { n: nationalId } } }",
        lambda f: {
            "a": {"owner": {"nationalId": f.parcel["national_id"]}},
            "b": {"v": {"n": f.parcel["national_id"]}},
        },
    ),
    # --- named and nested fragments ---------------------------------------------------------
    Case(
        "anonymous-named-fragment",
        "anonymous",
        NAMED_FRAGMENT,
        lambda f: {"parcel": {"id": pid(f), "owner": None}},
        lambda f: [Denied(("parcel", "owner"), OWNER, ANON_TAX)],
    ),
    Case(
        "partner-named-fragment",
        "partner",
        NAMED_FRAGMENT,
        lambda f: {
            "parcel": {
                "id": pid(f),
                "owner": {"nationalId": masked_national_id(f.parcel["national_id"])},
            }
        },
    ),
    Case(
        "finance-named-fragment",
        "finance",
        NAMED_FRAGMENT,
        lambda f: {"parcel": {"id": pid(f), "owner": {"nationalId": f.parcel["national_id"]}}},
    ),
    Case(
        "anonymous-nested-fragments",
        "anonymous",
        NESTED_FRAGMENTS,
        lambda f: {"parcel": {"id": pid(f), "owner": None}},
        lambda f: [Denied(("parcel", "owner"), OWNER, ANON_TAX)],
    ),
    Case(
        "partner-nested-fragments",
        "partner",
        NESTED_FRAGMENTS,
        lambda f: {
            "parcel": {
                "id": pid(f),
                "owner": {
                    "kind": "PERSON",
                    "nationalId": masked_national_id(f.parcel["national_id"]),
                },
            }
        },
    ),
    Case(
        "officer-nested-fragments",
        "officer",
        NESTED_FRAGMENTS,
        lambda f: {
            "parcel": {
                "id": pid(f),
                "owner": {
                    "kind": "PERSON",
                    "nationalId": masked_national_id(f.parcel["national_id"]),
                },
            }
        },
    ),
    Case(
        "finance-purpose-marketing-nested-fragments",
        "finance-marketing",
        NESTED_FRAGMENTS,
        lambda f: {"parcel": {"id": pid(f), "owner": {"kind": "PERSON", "nationalId": None}}},
        lambda f: [purpose_required(("parcel", "owner", "nationalId"), NATIONAL_ID)],
    ),
    # --- inline fragments -------------------------------------------------------------------
    Case(
        "anonymous-inline-fragment-typed",
        "anonymous",
        "query($id: ID!) { parcel(id: $id) { id ... on Parcel { appraisedValue } } }",
        lambda f: {"parcel": {"id": pid(f), "appraisedValue": None}},
        lambda f: [Denied(("parcel", "appraisedValue"), VALUE, ANON_TAX_CONFIDENTIAL)],
    ),
    Case(
        "anonymous-inline-fragment-untyped",
        "anonymous",
        "query($id: ID!) { parcel(id: $id) { id ... { titleDeedNumber } } }",
        lambda f: {"parcel": {"id": pid(f), "titleDeedNumber": None}},
        lambda f: [Denied(("parcel", "titleDeedNumber"), DEED, ANON_TAX)],
    ),
    Case(
        "partner-inline-fragments-typed-and-untyped",
        "partner",
        "query($id: ID!) { parcel(id: $id) { ... on Parcel { assessments { taxYear } } ... { appraisedValue } } }",
        lambda f: {
            "parcel": {
                "assessments": None,
                "appraisedValue": round_million(f.parcel["appraised_value"]),
            }
        },
        lambda f: [Denied(("parcel", "assessments"), ASSESSMENTS, NEED_CONFIDENTIAL)],
    ),
    Case(
        "dpo-inline-fragments",
        "dpo",
        "query($id: ID!) { parcel(id: $id) { ... on Parcel { assessments { taxYear } } ... { owner { name } } } }",
        lambda f: {
            "parcel": {
                "assessments": [{"taxYear": y} for y in f.assessment_years],
                "owner": {"name": f.parcel["name"]},
            }
        },
    ),
    # --- the same field through a fragment and directly -------------------------------------
    Case(
        "anonymous-same-field-fragment-and-direct",
        "anonymous",
        SAME_FIELD_TWICE,
        lambda f: {"parcel": {"owner": None}},
        lambda f: [Denied(("parcel", "owner"), OWNER, ANON_TAX)],
    ),
    Case(
        "partner-same-field-fragment-and-direct",
        "partner",
        "query($id: ID!) { parcel(id: $id) { appraisedValue ...V } } fragment V on Parcel { appraisedValue }",
        lambda f: {"parcel": {"appraisedValue": round_million(f.parcel["appraised_value"])}},
    ),
    Case(
        "finance-same-field-fragment-and-direct",
        "finance",
        "query($id: ID!) { parcel(id: $id) { owner { nationalId } ...F } } fragment F on Parcel { owner { name } }",
        lambda f: {
            "parcel": {"owner": {"nationalId": f.parcel["national_id"], "name": f.parcel["name"]}}
        },
    ),
    # --- __typename beside denied fields -------------------------------------------------------
    Case(
        "anonymous-typename-beside-denied",
        "anonymous",
        "query($id: ID!) { __typename parcel(id: $id) { __typename owner { __typename id } } }",
        lambda f: {"__typename": "Query", "parcel": {"__typename": "Parcel", "owner": None}},
        lambda f: [Denied(("parcel", "owner"), OWNER, ANON_TAX)],
    ),
    Case(
        "partner-typename-beside-denied",
        "partner",
        "query($id: ID!) { parcel(id: $id) { __typename assessments { __typename } owner { __typename nationalId } } }",
        lambda f: {
            "parcel": {
                "__typename": "Parcel",
                "assessments": None,
                "owner": {
                    "__typename": "Owner",
                    "nationalId": masked_national_id(f.parcel["national_id"]),
                },
            }
        },
        lambda f: [Denied(("parcel", "assessments"), ASSESSMENTS, NEED_CONFIDENTIAL)],
    ),
    Case(
        "app-key-typename-only",
        "app",
        "query($id: ID!) { parcel(id: $id) { __typename } }",
        lambda f: {"parcel": {"__typename": "Parcel"}},
    ),
    # --- @skip / @include -----------------------------------------------------------------------
    Case(
        "anonymous-include-variable-false",
        "anonymous",
        "query($id: ID!, $x: Boolean!) { parcel(id: $id) { id owner @include(if: $x) { id } } }",
        lambda f: {"parcel": {"id": pid(f)}},
        variables={"x": False},
    ),
    Case(
        "anonymous-include-variable-true",
        "anonymous",
        "query($id: ID!, $x: Boolean!) { parcel(id: $id) { id owner @include(if: $x) { id } } }",
        lambda f: {"parcel": {"id": pid(f), "owner": None}},
        lambda f: [Denied(("parcel", "owner"), OWNER, ANON_TAX)],
        variables={"x": True},
    ),
    Case(
        "anonymous-skip-literal-true",
        "anonymous",
        "query($id: ID!) { parcel(id: $id) { id appraisedValue @skip(if: true) } }",
        lambda f: {"parcel": {"id": pid(f)}},
    ),
    Case(
        "anonymous-skip-literal-false",
        "anonymous",
        "query($id: ID!) { parcel(id: $id) { id appraisedValue @skip(if: false) } }",
        lambda f: {"parcel": {"id": pid(f), "appraisedValue": None}},
        lambda f: [Denied(("parcel", "appraisedValue"), VALUE, ANON_TAX_CONFIDENTIAL)],
    ),
    Case(
        "anonymous-include-on-fragment-spread-false",
        "anonymous",
        "query($id: ID!, $x: Boolean!) { parcel(id: $id) { id ...D @include(if: $x) } } fragment D on Parcel { titleDeedNumber }",
        lambda f: {"parcel": {"id": pid(f)}},
        variables={"x": False},
    ),
    Case(
        "anonymous-include-on-fragment-spread-true",
        "anonymous",
        "query($id: ID!, $x: Boolean!) { parcel(id: $id) { id ...D @include(if: $x) } } fragment D on Parcel { titleDeedNumber }",
        lambda f: {"parcel": {"id": pid(f), "titleDeedNumber": None}},
        lambda f: [Denied(("parcel", "titleDeedNumber"), DEED, ANON_TAX)],
        variables={"x": True},
    ),
    Case(
        "partner-include-variable-false",
        "partner",
        "query($id: ID!, $x: Boolean!) { parcel(id: $id) { id assessments @include(if: $x) { taxYear } } }",
        lambda f: {"parcel": {"id": pid(f)}},
        variables={"x": False},
    ),
    Case(
        "partner-include-variable-true",
        "partner",
        "query($id: ID!, $x: Boolean!) { parcel(id: $id) { id assessments @include(if: $x) { taxYear } } }",
        lambda f: {"parcel": {"id": pid(f), "assessments": None}},
        lambda f: [Denied(("parcel", "assessments"), ASSESSMENTS, NEED_CONFIDENTIAL)],
        variables={"x": True},
    ),
    Case(
        "partner-skip-variable-on-inline-fragment",
        "partner",
        "query($id: ID!, $s: Boolean!) { parcel(id: $id) { id ... @skip(if: $s) { assessments { taxYear } } } }",
        lambda f: {"parcel": {"id": pid(f)}},
        variables={"s": True},
    ),
    Case(
        "finance-marketing-include-variable-false",
        "finance-marketing",
        "query($id: ID!, $x: Boolean!) { parcel(id: $id) { owner { kind nationalId @include(if: $x) } } }",
        lambda f: {"parcel": {"owner": {"kind": "PERSON"}}},
        variables={"x": False},
    ),
    Case(
        "finance-marketing-include-variable-true",
        "finance-marketing",
        "query($id: ID!, $x: Boolean!) { parcel(id: $id) { owner { kind nationalId @include(if: $x) } } }",
        lambda f: {"parcel": {"owner": {"kind": "PERSON", "nationalId": None}}},
        lambda f: [purpose_required(("parcel", "owner", "nationalId"), NATIONAL_ID)],
        variables={"x": True},
    ),
    # --- the operation chosen by operationName -----------------------------------------------
    Case(
        "anonymous-operation-name-open",
        "anonymous",
        OPERATIONS,
        lambda f: codes(),
        operation="Open",
    ),
    Case(
        "anonymous-operation-name-secret",
        "anonymous",
        OPERATIONS,
        lambda f: {
            "parcel": {
                "owner": None,
                "assessments": None,
                "appraisedValue": None,
                "titleDeedNumber": None,
            }
        },
        lambda f: [
            Denied(("parcel", "owner"), OWNER, ANON_TAX),
            Denied(("parcel", "assessments"), ASSESSMENTS, ANON_TAX_CONFIDENTIAL),
            Denied(("parcel", "appraisedValue"), VALUE, ANON_TAX_CONFIDENTIAL),
            Denied(("parcel", "titleDeedNumber"), DEED, ANON_TAX),
        ],
        operation="Secret",
    ),
    Case("partner-operation-name-open", "partner", OPERATIONS, lambda f: codes(), operation="Open"),
    Case(
        "partner-operation-name-secret",
        "partner",
        OPERATIONS,
        lambda f: {
            "parcel": {
                "owner": {"nationalId": masked_national_id(f.parcel["national_id"])},
                "assessments": None,
                "appraisedValue": round_million(f.parcel["appraised_value"]),
                "titleDeedNumber": f.parcel["title_deed_number"],
            }
        },
        lambda f: [Denied(("parcel", "assessments"), ASSESSMENTS, NEED_CONFIDENTIAL)],
        operation="Secret",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_field_access(
    case: Case, anonymous: Gateway, principals: dict[str, dict[str, str]], facts: Facts
) -> None:
    variables = {k: v for k, v in facts.variables.items() if f"${k}" in case.query}
    variables.update(case.variables)
    extra = {"operationName": case.operation} if case.operation else {}
    response = anonymous.post(
        case.query, variables, headers={**principals[case.who], **case.headers}, **extra
    )
    body = response.json()
    assert response.status_code == 200, body
    assert body["data"] == case.data(facts)
    assert_errors(body, case.errors(facts))


# ---------------------------------------------------------------------------- batches and GET


def test_a_batch_answers_each_operation_for_the_anonymous(anonymous: Gateway, facts: Facts):
    batch = [
        {"query": "{ districts { code } }"},
        {"query": owner_nid_query(), "variables": {"id": pid(facts)}},
        {
            "query": "query($id: ID!) { parcel(id: $id) { id landUse } }",
            "variables": {"id": pid(facts)},
        },
    ]
    response = anonymous.client.post("/graphql", json=batch)
    open_codes, denied, allowed = response.json()
    assert response.status_code == 200
    assert open_codes == {"data": codes()}
    assert denied["data"] == {"parcel": {"id": pid(facts), "owner": None}}
    assert_errors(denied, [Denied(("parcel", "owner"), OWNER, ANON_TAX)])
    assert "errors" not in allowed and allowed["data"]["parcel"]["id"] == pid(facts)


def test_a_batch_answers_each_operation_for_the_partner(
    anonymous: Gateway, principals: dict[str, dict[str, str]], facts: Facts
):
    variables = {"id": pid(facts)}
    batch = [
        {"query": owner_nid_query("name nationalId"), "variables": variables},
        {
            "query": "query($id: ID!) { parcel(id: $id) { assessments { taxYear } } }",
            "variables": variables,
        },
        {"query": OPERATIONS, "operationName": "Open"},
    ]
    response = anonymous.client.post("/graphql", json=batch, headers=principals["partner"])
    masked, denied, open_codes = response.json()
    assert response.status_code == 200
    owner = masked_owner(facts)
    assert masked == {
        "data": {
            "parcel": {
                "id": pid(facts),
                "owner": {"name": owner["name"], "nationalId": owner["nationalId"]},
            }
        }
    }
    assert denied["data"] == {"parcel": {"assessments": None}}
    assert_errors(denied, [Denied(("parcel", "assessments"), ASSESSMENTS, NEED_CONFIDENTIAL)])
    assert open_codes == {"data": codes()}


def test_a_batch_answers_each_operation_for_the_district_officer(
    anonymous: Gateway, principals: dict[str, dict[str, str]], facts: Facts
):
    query = "query($id: ID!) { parcel(id: $id) { id owner { nationalId } } }"
    batch = [
        {"query": query, "variables": {"id": pid(facts)}},
        {"query": query, "variables": {"id": str(facts.other_parcel["id"])}},
        {"query": BUSINESS_OWNER_Q, "variables": {"no": facts.business["registration_no"]}},
    ]
    response = anonymous.client.post("/graphql", json=batch, headers=principals["officer"])
    mine, elsewhere, business = response.json()
    assert response.status_code == 200
    assert mine == {
        "data": {
            "parcel": {
                "id": pid(facts),
                "owner": {"nationalId": masked_national_id(facts.parcel["national_id"])},
            }
        }
    }
    assert elsewhere == {"data": {"parcel": None}}
    assert business == {"data": business_with_owner(facts, True)}


GET_CASES = [
    (
        "anonymous",
        owner_nid_query(),
        None,
        lambda f: {"parcel": {"id": pid(f), "owner": None}},
        lambda f: [Denied(("parcel", "owner"), OWNER, ANON_TAX)],
    ),
    (
        "partner",
        owner_nid_query(),
        None,
        lambda f: {
            "parcel": {
                "id": pid(f),
                "owner": {"nationalId": masked_national_id(f.parcel["national_id"])},
            }
        },
        lambda f: [],
    ),
    (
        "finance",
        owner_nid_query(),
        None,
        lambda f: {"parcel": {"id": pid(f), "owner": {"nationalId": f.parcel["national_id"]}}},
        lambda f: [],
    ),
    (
        "anonymous",
        "query($id: ID!, $x: Boolean!) { parcel(id: $id) { id owner @include(if: $x) { id } } }",
        {"x": False},
        lambda f: {"parcel": {"id": pid(f)}},
        lambda f: [],
    ),
    (
        "partner",
        "query($id: ID!, $x: Boolean!) { parcel(id: $id) { id assessments @include(if: $x) { taxYear } } }",
        {"x": True},
        lambda f: {"parcel": {"id": pid(f), "assessments": None}},
        lambda f: [Denied(("parcel", "assessments"), ASSESSMENTS, NEED_CONFIDENTIAL)],
    ),
]


@pytest.mark.parametrize(
    "who, query, extra, data, errors",
    GET_CASES,
    ids=[
        "anonymous-denied",
        "partner-masked",
        "finance-full",
        "anonymous-include-false",
        "partner-include-true",
    ],
)
def test_get_requests(
    anonymous: Gateway,
    principals: dict[str, dict[str, str]],
    facts: Facts,
    who: str,
    query: str,
    extra: dict[str, Any] | None,
    data: Callable[[Facts], Any],
    errors: Callable[[Facts], list[Denied]],
):
    variables = {"id": pid(facts), **(extra or {})}
    response = anonymous.client.get(
        "/graphql",
        params={"query": query, "variables": json.dumps(variables)},
        headers=principals[who],
    )
    body = response.json()
    assert response.status_code == 200, body
    assert body["data"] == data(facts)
    assert_errors(body, errors(facts))


def test_get_runs_the_operation_named(anonymous: Gateway, principals: dict[str, dict[str, str]]):
    params = {"query": OPERATIONS, "operationName": "Open"}
    response = anonymous.client.get("/graphql", params=params, headers=principals["partner"])
    assert response.status_code == 200
    assert response.json() == {"data": codes()}


@pytest.mark.parametrize("name", ["", "Nothing"], ids=["empty-name", "unknown-name"])
def test_an_operation_name_that_names_nothing_runs_nothing(
    anonymous: Gateway, facts: Facts, name: str
):
    response = anonymous.post(owner_nid_query(), {"id": pid(facts)}, operationName=name)
    body = response.json()
    assert response.status_code == 400, body
    assert "data" not in body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["OPERATION_NOT_FOUND"]


# ---------------------------------------------------------------------------- introspection


def post_alone(
    gw: Gateway, headers: dict[str, str], query: str, variables: dict[str, Any] | None = None
) -> httpx.Response:
    """POST on a connection of its own: an introspection that fails with a 500 must not take
    the connection the other tests share down with it."""
    payload: dict[str, Any] = {"query": query}
    if variables:
        payload["variables"] = variables
    with traceback_logged() as logged, httpx.Client(base_url=gw.url, timeout=30) as client:
        response = client.post("/graphql", json=payload, headers=headers)
        if response.status_code >= 500:
            # Let the server thread finish logging its traceback before pytest formats ours:
            # CPython 3.11's traceback and ast modules racing across threads can crash pytest.
            logged.wait(timeout=2)
    return response


class _TracebackSeen(logging.Handler):
    """Sets ``seen`` once a record carrying a traceback has been handled, by any thread."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.seen.set()


@contextlib.contextmanager
def traceback_logged() -> Iterator[threading.Event]:
    """An event set when the gateway has logged a traceback: the handler goes last on the
    loggers that write them (the root, and uvicorn's own), so the others are done by then."""
    handler = _TracebackSeen()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.seen
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def introspect(gw: Gateway, headers: dict[str, str], query: str) -> dict[str, Any]:
    response = post_alone(gw, headers, query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


PUBLIC_PARCEL = {
    "id",
    "titleDeedType",
    "landUse",
    "areaSqm",
    "location",
    "district",
    "signboards",
    "nearbyComplaints",
}
ALL_PARCEL = PUBLIC_PARCEL | {"titleDeedNumber", "appraisedValue", "owner", "assessments"}
OWNER_FIELDS = {"id", "kind", "name", "nationalId"}
ASSESSMENT_FIELDS = {"taxYear", "base", "exemption", "rate", "taxDue", "status", "paidAt"}

TYPE_PROBES = [
    ("anonymous", "Owner", None),
    ("app", "Owner", None),
    ("partner", "Owner", OWNER_FIELDS),
    ("officer", "Owner", OWNER_FIELDS),
    ("finance-marketing", "Owner", OWNER_FIELDS),
    ("anonymous", "Assessment", None),
    ("partner", "Assessment", None),
    ("finance", "Assessment", ASSESSMENT_FIELDS),
    ("anonymous", "BusinessOwner", None),
    ("partner", "BusinessOwner", None),
    ("finance", "BusinessOwner", None),
    ("officer", "BusinessOwner", {"name", "nationalId"}),
    ("dpo", "BusinessOwner", {"name", "nationalId"}),
]


@pytest.mark.parametrize(
    "who, type_name, fields", TYPE_PROBES, ids=[f"{w}-{t}" for w, t, _ in TYPE_PROBES]
)
def test_type_probe(
    anonymous: Gateway,
    principals: dict[str, dict[str, str]],
    who: str,
    type_name: str,
    fields: set[str] | None,
):
    data = introspect(
        anonymous,
        principals[who],
        f'{{ __type(name: "{type_name}") {{ name fields {{ name }} }} }}',
    )
    if fields is None:
        assert data == {"__type": None}
    else:
        assert data["__type"]["name"] == type_name
        assert {f["name"] for f in data["__type"]["fields"]} == fields


PARCEL_FIELDS = [
    ("anonymous", PUBLIC_PARCEL),
    ("app", PUBLIC_PARCEL),
    ("partner", PUBLIC_PARCEL | {"titleDeedNumber", "appraisedValue", "owner"}),
    ("officer", ALL_PARCEL),
    ("finance-marketing", ALL_PARCEL),
    ("dpo", ALL_PARCEL),
]


@pytest.mark.parametrize("who, fields", PARCEL_FIELDS, ids=[w for w, _ in PARCEL_FIELDS])
def test_parcel_fields_in_introspection(
    anonymous: Gateway, principals: dict[str, dict[str, str]], who: str, fields: set[str]
):
    """Denied fields are absent; masked (partner: appraisedValue) and purpose-required fields
    (finance with purpose marketing: the owner's personal fields) are present."""
    data = introspect(anonymous, principals[who], '{ __type(name: "Parcel") { fields { name } } }')
    assert {f["name"] for f in data["__type"]["fields"]} == fields


def test_purpose_required_fields_stay_visible(
    anonymous: Gateway, principals: dict[str, dict[str, str]]
):
    headers = {**principals["partner"], "X-Purpose": "marketing"}
    data = introspect(anonymous, headers, '{ __type(name: "Owner") { fields { name } } }')
    assert {f["name"] for f in data["__type"]["fields"]} == OWNER_FIELDS


SCHEMA_QUERY = """{ __schema { queryType { name } types { name kind
    fields { name type { ...T } args { name type { ...T } } }
    inputFields { name type { ...T } } } } }
    fragment T on __Type { name kind ofType { name kind ofType { name kind ofType { name } } } }"""

INTROSPECTION_TYPES = {
    "__Schema",
    "__Type",
    "__TypeKind",
    "__Field",
    "__InputValue",
    "__EnumValue",
    "__Directive",
    "__DirectiveLocation",
    "String",
    "Boolean",
}


def _named(type_ref: dict[str, Any]) -> str:
    while type_ref.get("ofType"):
        type_ref = type_ref["ofType"]
    return type_ref["name"]


def reachable_types(schema: dict[str, Any]) -> set[str]:
    """The types a client can reach from the root through fields and arguments."""
    by_name = {t["name"]: t for t in schema["types"]}
    seen: set[str] = set()
    pending = [schema["queryType"]["name"]]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        t = by_name[name]
        for f in t.get("fields") or ():
            pending.append(_named(f["type"]))
            pending.extend(_named(a["type"]) for a in f["args"])
        pending.extend(_named(i["type"]) for i in t.get("inputFields") or ())
    return seen


HIDDEN_TYPES = [
    ("anonymous", {"Owner", "Assessment", "BusinessOwner"}),
    ("app", {"Owner", "Assessment", "BusinessOwner"}),
    ("partner", {"Assessment", "BusinessOwner"}),
    ("finance", {"BusinessOwner"}),
]


@pytest.mark.parametrize("who, hidden", HIDDEN_TYPES, ids=[w for w, _ in HIDDEN_TYPES])
def test_schema_lists_no_type_the_principal_cannot_see(
    anonymous: Gateway, principals: dict[str, dict[str, str]], who: str, hidden: set[str]
):
    schema = introspect(anonymous, principals[who], SCHEMA_QUERY)["__schema"]
    listed = {t["name"] for t in schema["types"]}
    assert not listed & hidden
    # Nor any type only hidden fields lead to (the enum of a hidden object's field, say).
    orphans = listed - reachable_types(schema) - INTROSPECTION_TYPES
    assert not orphans, f"types only hidden fields use: {sorted(orphans)}"


BESIDE_DATA = """query($id: ID!) { __type(name: "Owner") { name }
    parcel(id: $id) { id appraisedValue owner { nationalId } assessments { taxYear } } }"""


@pytest.mark.parametrize("who", ["anonymous", "partner", "finance"])
def test_introspection_beside_data_keeps_the_policy(
    anonymous: Gateway, principals: dict[str, dict[str, str]], facts: Facts, who: str
):
    """An operation that introspects runs against the principal's schema; the fields it reads
    beside that are still denied, masked or granted exactly as without the introspection."""
    response = post_alone(anonymous, principals[who], BESIDE_DATA, {"id": pid(facts)})
    body = response.json()
    assert response.status_code == 200, body
    p = facts.parcel
    expected: dict[str, Any] = {
        "anonymous": {
            "__type": None,
            "parcel": {
                "id": pid(facts),
                "appraisedValue": None,
                "owner": None,
                "assessments": None,
            },
        },
        "partner": {
            "__type": {"name": "Owner"},
            "parcel": {
                "id": pid(facts),
                "appraisedValue": round_million(p["appraised_value"]),
                "owner": {"nationalId": masked_national_id(p["national_id"])},
                "assessments": None,
            },
        },
        "finance": {
            "__type": {"name": "Owner"},
            "parcel": {
                "id": pid(facts),
                "appraisedValue": Num(p["appraised_value"]),
                "owner": {"nationalId": p["national_id"]},
                "assessments": [{"taxYear": y} for y in facts.assessment_years],
            },
        },
    }[who]
    assert body["data"] == expected
    denied = {
        "anonymous": [
            Denied(("parcel", "appraisedValue"), VALUE, ANON_TAX_CONFIDENTIAL),
            Denied(("parcel", "owner"), OWNER, ANON_TAX),
            Denied(("parcel", "assessments"), ASSESSMENTS, ANON_TAX_CONFIDENTIAL),
        ],
        "partner": [Denied(("parcel", "assessments"), ASSESSMENTS, NEED_CONFIDENTIAL)],
        "finance": [],
    }[who]
    assert_errors(body, denied)


# ---------------------------------------------------------------------------- suggestions

SUGGESTIONS = [
    ("anonymous", '{ parcel(id: "1") { owner { nationalld } } }', "nationalId", None),
    ("anonymous", '{ parcel(id: "1") { titleDeedNumbr } }', "titleDeedNumber", None),
    ("anonymous", '{ parcel(id: "1") { appraisedValu } }', "appraisedValue", None),
    ("anonymous", '{ parcel(id: "1") { owner } }', "Owner", None),
    ("app", '{ parcel(id: "1") { ownr { id } } }', "owner", None),
    ("partner", '{ parcel(id: "1") { assesments { taxYear } } }', "assessments", None),
    ("partner", '{ business(registrationNo: "1039-2566-00001") { ownr { name } } }', "owner", None),
    ("partner", '{ parcel(id: "1") { titleDeedNumbr } }', None, "titleDeedNumber"),
    ("dpo", '{ parcel(id: "1") { assesments { taxYear } } }', None, "assessments"),
]


@pytest.mark.parametrize(
    "who, query, never, suggested",
    SUGGESTIONS,
    ids=[
        "anonymous-nationalld",
        "anonymous-titleDeedNumbr",
        "anonymous-appraisedValu",
        "anonymous-owner-without-selection",
        "app-key-ownr",
        "partner-assesments",
        "partner-business-ownr",
        "partner-titleDeedNumbr-visible",
        "dpo-assesments-visible",
    ],
)
def test_suggestions_never_name_a_hidden_field(
    anonymous: Gateway,
    principals: dict[str, dict[str, str]],
    who: str,
    query: str,
    never: str | None,
    suggested: str | None,
):
    response = anonymous.post(query, headers=principals[who])
    body = response.json()
    assert response.status_code == 400, body
    assert {e["extensions"]["code"] for e in body["errors"]} == {"GRAPHQL_VALIDATION_FAILED"}
    if never:
        assert never not in response.text
    if suggested:
        assert f"Did you mean '{suggested}'" in response.text


# ---------------------------------------------------------------------------- row scopes


def _all_pages(gw: Gateway, headers: dict[str, str], root: str, key: str) -> tuple[int, list[dict]]:
    nodes: list[dict[str, Any]] = []
    after = None
    total = -1
    while True:
        response = gw.post(
            f"""query($after: String) {{ {root}(first: 200, after: $after) {{ totalCount
                pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {key} district {{ code }} }} }} }} }}""",
            {"after": after},
            headers=headers,
        )
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        page = body["data"][root]
        total = page["totalCount"]
        nodes += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return total, nodes
        after = page["pageInfo"]["endCursor"]


def test_officer_parcels_are_those_of_1039(
    anonymous: Gateway, principals: dict[str, dict[str, str]], db: DatabaseUrls
):
    expected = [
        r["id"]
        for r in sql(db.tax, "SELECT id FROM tax.parcels WHERE district_code = '1039' ORDER BY id")
    ]
    total, nodes = _all_pages(anonymous, principals["officer"], "parcels", "id")
    assert total == len(expected)
    assert [int(n["id"]) for n in nodes] == expected
    assert {n["district"]["code"] for n in nodes} == {"1039"}


def test_officer_businesses_are_those_of_1039(
    anonymous: Gateway, principals: dict[str, dict[str, str]], db: DatabaseUrls
):
    expected = [
        r["registration_no"]
        for r in sql(
            db.registry,
            "SELECT registration_no FROM d1039.commercial_registrations ORDER BY registration_no",
        )
    ]
    total, nodes = _all_pages(anonymous, principals["officer"], "businesses", "registrationNo")
    assert total == len(expected)
    assert [n["registrationNo"] for n in nodes] == expected
    assert {n["district"]["code"] for n in nodes} == {"1039"}


def test_city_wide_lists_are_whole_for_the_finance_officer(
    anonymous: Gateway, principals: dict[str, dict[str, str]], db: DatabaseUrls
):
    [count] = sql(db.tax, "SELECT count(*) AS n FROM tax.parcels")
    data = anonymous.post(
        "{ parcels(first: 1) { totalCount } }", headers=principals["finance"]
    ).json()
    assert data == {"data": {"parcels": {"totalCount": count["n"]}}}


ROW_SCOPED = [
    ("parcel-elsewhere", "query($other: ID!) { parcel(id: $other) { id } }", {"parcel": None}),
    (
        "business-elsewhere",
        "query($otherNo: String!) { business(registrationNo: $otherNo) { registrationNo } }",
        {"business": None},
    ),
    (
        "parcels-filtered-elsewhere",
        '{ parcels(filter: {district: "1001"}) { totalCount edges { node { id } } } }',
        {"parcels": {"totalCount": 0, "edges": []}},
    ),
    (
        "businesses-filtered-elsewhere",
        '{ businesses(filter: {district: "1001"}) { totalCount edges { node { name } } } }',
        {"businesses": {"totalCount": 0, "edges": []}},
    ),
    (
        "district-elsewhere-lists",
        """{ district(code: "1001") { parcels { totalCount } businesses { totalCount }
        buildingPermits { totalCount edges { node { permitNo } } } } }""",
        {
            "district": {
                "parcels": {"totalCount": 0},
                "businesses": {"totalCount": 0},
                "buildingPermits": {"totalCount": 0, "edges": []},
            }
        },
    ),
]


@pytest.mark.parametrize(
    "query, expected", [r[1:] for r in ROW_SCOPED], ids=[r[0] for r in ROW_SCOPED]
)
def test_officer_sees_no_row_of_another_district(
    anonymous: Gateway,
    principals: dict[str, dict[str, str]],
    facts: Facts,
    query: str,
    expected: dict[str, Any],
):
    variables = {k: v for k, v in facts.variables.items() if f"${k}" in query}
    response = anonymous.post(query, variables, headers=principals["officer"])
    body = response.json()
    assert response.status_code == 200, body
    assert body == {"data": expected}


def test_officer_reads_rows_of_1039_by_id(
    anonymous: Gateway, principals: dict[str, dict[str, str]], facts: Facts, db: DatabaseUrls
):
    [count] = sql(db.registry, "SELECT count(*) AS n FROM d1039.building_permits")
    data = anonymous.post(
        """query($id: ID!, $no: String!) { parcel(id: $id) { id } business(registrationNo: $no)
           { registrationNo } district(code: "1039") { buildingPermits { totalCount } } }""",
        {"id": pid(facts), "no": facts.business["registration_no"]},
        headers=principals["officer"],
    ).json()
    assert data == {
        "data": {
            "parcel": {"id": pid(facts)},
            "business": {"registrationNo": facts.business["registration_no"]},
            "district": {"buildingPermits": {"totalCount": count["n"]}},
        }
    }


CROSSING = """SELECT s.id, s.parcel_id, s.business_registration_no AS no FROM tax.signboards s
              WHERE {where} ORDER BY s.id LIMIT 1"""


def test_officer_reads_no_business_of_another_district_through_a_signboard(
    anonymous: Gateway, principals: dict[str, dict[str, str]], db: DatabaseUrls
):
    [sign] = sql(
        db.tax,
        CROSSING.format(
            where="district_code = '1039' AND business_registration_no NOT LIKE '1039-%'"
        ),
    )
    query = """query($id: ID!) { parcel(id: $id) { signboards { id businessRegistrationNo
               business { registrationNo owner { name nationalId } } } } }"""
    variables = {"id": str(sign["parcel_id"])}
    city = anonymous.post(query, variables, headers=principals["dpo"]).json()
    officer = anonymous.post(query, variables, headers=principals["officer"]).json()
    assert "errors" not in city and "errors" not in officer, (city, officer)
    [seen] = [s for s in city["data"]["parcel"]["signboards"] if s["id"] == str(sign["id"])]
    assert seen["business"]["owner"]["nationalId"]  # the business is there, and whose it is
    # The sign stands in 1039, so the officer reads it; its business is of another district.
    signs = officer["data"]["parcel"]["signboards"]
    [kept] = [s for s in signs if s["id"] == str(sign["id"])]
    assert kept == {"id": str(sign["id"]), "businessRegistrationNo": sign["no"], "business": None}
    assert all(
        (s["business"] is None) == (not s["businessRegistrationNo"].startswith("1039-"))
        for s in signs
    )


def test_officer_reads_no_signboard_of_another_district_through_a_business(
    anonymous: Gateway, principals: dict[str, dict[str, str]], db: DatabaseUrls
):
    [sign] = sql(
        db.tax,
        CROSSING.format(where="district_code <> '1039' AND business_registration_no LIKE '1039-%'"),
    )
    query = """query($no: String!) { business(registrationNo: $no) { registrationNo
               signboards { id district { code } } } }"""
    signs = sql(
        db.tax,
        "SELECT id, district_code FROM tax.signboards WHERE business_registration_no = $1 "
        "ORDER BY id",
        sign["no"],
    )
    officer = anonymous.post(query, {"no": sign["no"]}, headers=principals["officer"]).json()
    assert officer == {
        "data": {
            "business": {
                "registrationNo": sign["no"],
                "signboards": [
                    {"id": str(s["id"]), "district": {"code": "1039"}}
                    for s in signs
                    if s["district_code"] == "1039"
                ],
            }
        }
    }
    assert len(signs) > len(officer["data"]["business"]["signboards"])


def test_public_aggregates_stay_whole_for_the_officer(
    anonymous: Gateway, principals: dict[str, dict[str, str]], db: DatabaseUrls
):
    query = """{ districts { code taxRevenue(year: 2025) { assessed collected parcelCount }
                businessCount parcels(first: 0) { totalCount } } }"""
    as_anonymous = anonymous.post(query).json()
    as_officer = anonymous.post(query, headers=principals["officer"]).json()
    assert "errors" not in as_anonymous and "errors" not in as_officer
    strip = [
        {k: v for k, v in d.items() if k != "parcels"} for d in as_officer["data"]["districts"]
    ]
    assert strip == [
        {k: v for k, v in d.items() if k != "parcels"} for d in as_anonymous["data"]["districts"]
    ]
    # The aggregates are city-wide, while the lists under each district are row-scoped.
    parcels_per_district = {
        r["district_code"]: r["n"]
        for r in sql(db.tax, "SELECT district_code, count(*) AS n FROM tax.parcels GROUP BY 1")
    }
    assert {d["code"]: d["parcels"]["totalCount"] for d in as_anonymous["data"]["districts"]} == {
        c: parcels_per_district.get(c, 0)
        for c in (d["code"] for d in as_anonymous["data"]["districts"])
    }
    assert {d["code"]: d["parcels"]["totalCount"] for d in as_officer["data"]["districts"]} == {
        d["code"]: parcels_per_district.get("1039", 0) if d["code"] == "1039" else 0
        for d in as_officer["data"]["districts"]
    }
    [active] = sql(
        db.registry,
        "SELECT count(*) AS n FROM d1001.commercial_registrations WHERE status = 'active'",
    )
    first = as_officer["data"]["districts"][0]
    assert (first["code"], first["businessCount"]) == ("1001", active["n"])


# ---------------------------------------------------------------------------- reject mode


@pytest.fixture(scope="module")
def strict(db: DatabaseUrls, traffy_url: str) -> Iterator[Gateway]:
    """A gateway refusing, before any upstream call, every operation that reaches a denied
    field."""
    server, gw = start_gateway(settings_for(db, traffy_url, policy_mode="reject"))
    yield gw
    gw.client.close()
    server.stop()


REJECTED = [
    ("anonymous", owner_nid_query(), {OWNER}, "FORBIDDEN"),
    ("app", PARCEL_ALL, {DEED, VALUE, OWNER, ASSESSMENTS}, "FORBIDDEN"),
    ("partner", PARCEL_ALL, {ASSESSMENTS}, "FORBIDDEN"),
    (
        "partner",
        "query($id: ID!) { parcel(id: $id) { id ...A } } fragment A on Parcel { assessments { taxYear } }",
        {ASSESSMENTS},
        "FORBIDDEN",
    ),
    ("finance", BUSINESS_OWNER_Q, {BUSINESS_OWNER}, "FORBIDDEN"),
    ("finance-marketing", owner_nid_query(), {NATIONAL_ID}, "PURPOSE_REQUIRED"),
]


@pytest.mark.parametrize(
    "who, query, rules, code",
    REJECTED,
    ids=[
        "anonymous-owner",
        "app-key-parcel",
        "partner-assessments",
        "partner-fragment",
        "finance-business-owner",
        "finance-marketing-purpose",
    ],
)
def test_reject_mode_refuses_the_whole_operation_before_any_upstream_call(
    strict: Gateway,
    principals: dict[str, dict[str, str]],
    facts: Facts,
    who: str,
    query: str,
    rules: set[str],
    code: str,
):
    variables = {k: v for k, v in facts.variables.items() if f"${k}" in query}
    strict.reset_counters()
    response = strict.post(query, variables, headers=principals[who])
    body = response.json()
    assert response.status_code == 403, body
    assert "data" not in body
    assert {e["extensions"]["rule"].split(":")[0] for e in body["errors"]} >= {
        r.split(":")[0] for r in rules
    }
    assert {e["extensions"]["code"] for e in body["errors"]} <= {"FORBIDDEN", "PURPOSE_REQUIRED"}
    assert code in {e["extensions"]["code"] for e in body["errors"]}
    assert not any(c.counter.calls for c in strict.connectors.all())


ANSWERED = [
    (
        "anonymous",
        "query($id: ID!) { parcel(id: $id) { id landUse } }",
        lambda f: {"parcel": {"id": pid(f), "landUse": f.parcel["land_use"].upper()}},
    ),
    (
        "partner",
        "query($id: ID!) { parcel(id: $id) { appraisedValue owner { nationalId } } }",
        lambda f: {
            "parcel": {
                "appraisedValue": round_million(f.parcel["appraised_value"]),
                "owner": {"nationalId": masked_national_id(f.parcel["national_id"])},
            }
        },
    ),
    (
        "finance",
        owner_nid_query(),
        lambda f: {"parcel": {"id": pid(f), "owner": {"nationalId": f.parcel["national_id"]}}},
    ),
]


@pytest.mark.parametrize(
    "who, query, data", ANSWERED, ids=["anonymous-open", "partner-masked", "finance-full"]
)
def test_reject_mode_answers_allowed_and_masked_fields(
    strict: Gateway,
    principals: dict[str, dict[str, str]],
    facts: Facts,
    who: str,
    query: str,
    data: Callable[[Facts], Any],
):
    variables = {k: v for k, v in facts.variables.items() if f"${k}" in query}
    strict.reset_counters()
    response = strict.post(query, variables, headers=principals[who])
    body = response.json()
    assert response.status_code == 200, body
    assert body == {"data": data(facts)}
    assert strict.connectors.tax.counter.calls["tax"] > 0


def test_reject_mode_batch_refuses_only_the_operation_that_reaches_a_denied_field(
    strict: Gateway, facts: Facts
):
    batch = [
        {"query": owner_nid_query(), "variables": {"id": pid(facts)}},
        {"query": "{ districts { code } }"},
    ]
    response = strict.client.post("/graphql", json=batch)
    denied, allowed = response.json()
    assert "data" not in denied
    assert [e["extensions"]["code"] for e in denied["errors"]] == ["FORBIDDEN"] * len(
        denied["errors"]
    )
    assert allowed == {"data": codes()}


def test_reject_mode_runs_the_chosen_operation_only(strict: Gateway, facts: Facts):
    strict.reset_counters()
    response = strict.post(OPERATIONS, {"id": pid(facts)}, operationName="Open")
    assert response.status_code == 200
    assert response.json() == {"data": codes()}
    refused = strict.post(OPERATIONS, {"id": pid(facts)}, operationName="Secret")
    assert refused.status_code == 403
    rules = {e["extensions"]["rule"] for e in refused.json()["errors"]}
    assert {OWNER, ASSESSMENTS, VALUE, DEED} <= rules


@pytest.mark.parametrize(
    "who, owner", [("anonymous", None), ("partner", OWNER_FIELDS)], ids=["anonymous", "partner"]
)
def test_reject_mode_introspection_is_per_principal(
    strict: Gateway, principals: dict[str, dict[str, str]], who: str, owner: set[str] | None
):
    data = introspect(strict, principals[who], '{ __type(name: "Owner") { fields { name } } }')
    if owner is None:
        assert data == {"__type": None}
    else:
        assert {f["name"] for f in data["__type"]["fields"]} == owner


# ---------------------------------------------------------------------------- bad tokens


def _expired(issuer: EmbeddedIssuer) -> str:
    claims = issuer.claims(
        "agency", "bma-dpo", ALL_SCOPES, "secret", None, "pdpa-audit", HOUR, None
    )
    past = int(time.time()) - 7200
    claims.update(iat=past, nbf=past, exp=past + 600)
    return jwt.encode(
        claims, issuer.current.private_key, algorithm="ES256", headers={"kid": issuer.current.kid}
    )


def _forged(issuer: EmbeddedIssuer) -> str:
    claims = issuer.claims(
        "agency", "bma-dpo", ALL_SCOPES, "secret", None, "pdpa-audit", HOUR, None
    )
    stranger = SigningKey.generate()
    return jwt.encode(
        claims, stranger.private_key, algorithm="ES256", headers={"kid": issuer.current.kid}
    )


@pytest.mark.parametrize(
    "make, reason",
    [(_expired, "token_expired"), (_forged, "invalid_signature")],
    ids=["expired", "forged"],
)
def test_a_bad_token_is_a_401_never_an_anonymous_answer(
    anonymous: Gateway,
    issuer: EmbeddedIssuer,
    make: Callable[[EmbeddedIssuer], str],
    reason: str,
):
    response: httpx.Response = anonymous.post(
        "{ districts { code } }", headers=bearer(make(issuer))
    )
    body = response.json()
    assert response.status_code == 401, body
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED", "reason": reason}
    assert response.headers["www-authenticate"].startswith("Bearer ")
