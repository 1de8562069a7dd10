"""From a verified token's claims to its principal: every claim checked, clearance capped."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.auth.claims import MAX_SCOPES, principal_from_claims
from gateway.errors import Unauthenticated
from policies.principal import Level, Principal

ISSUER = "https://idp.bangkok.go.th"


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "bma_audience": "agency",
        "sub": "officer-17",
        "org": "bma-district-1039",
        "clearance": "confidential",
        "scope": "tax:read registry:read",
        "district": "1039",
        "purpose": "district-service",
        "jti": "token-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def refused(raw: dict[str, Any], max_clearance: Level = Level.SECRET) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as raised:
        principal_from_claims(raw, ISSUER, max_clearance)
    return raised.value


def test_every_claim_read():
    principal = principal_from_claims(claims(), ISSUER, Level.SECRET)
    assert principal == Principal(
        kind="agency",
        subject="officer-17",
        organisation="bma-district-1039",
        clearance=Level.CONFIDENTIAL,
        scopes=frozenset({"tax:read", "registry:read"}),
        districts=frozenset({"1039"}),
        purpose="district-service",
        credential_id="token-1",
        issuer=ISSUER,
    )


def test_a_partner_with_only_what_is_required():
    principal = principal_from_claims(
        {"bma_audience": "partner", "sub": "utility"}, ISSUER, Level.SECRET
    )
    assert principal == Principal(kind="partner", subject="utility", issuer=ISSUER)
    assert principal.clearance is Level.PUBLIC  # no clearance claim: public
    assert principal.districts is None  # no district claim: city-wide
    assert principal.scopes == frozenset()


@pytest.mark.parametrize(
    ("claimed", "cap", "granted"),
    [
        ("secret", Level.INTERNAL, Level.INTERNAL),
        ("confidential", Level.CONFIDENTIAL, Level.CONFIDENTIAL),
        ("internal", Level.SECRET, Level.INTERNAL),
        ("secret", Level.PUBLIC, Level.PUBLIC),
        ("ลับมาก", Level.SECRET, Level.SECRET),  # the Thai name
        ("SECRET", Level.CONFIDENTIAL, Level.CONFIDENTIAL),
    ],
)
def test_clearance_capped_by_the_issuers_max(claimed, cap, granted):
    principal = principal_from_claims(claims(clearance=claimed), ISSUER, cap)
    assert principal.clearance is granted


def test_scopes_as_a_string_or_a_list():
    as_string = principal_from_claims(claims(scope="a:read  b:read\tc"), ISSUER, Level.SECRET)
    as_list = principal_from_claims(claims(scope=["a:read", "b:read", "c"]), ISSUER, Level.SECRET)
    assert as_string.scopes == as_list.scopes == frozenset({"a:read", "b:read", "c"})


def test_districts_as_a_code_or_a_list():
    many = principal_from_claims(claims(district=["1001", "1050"]), ISSUER, Level.SECRET)
    assert many.districts == frozenset({"1001", "1050"})


def test_purpose_is_normalised():
    principal = principal_from_claims(claims(purpose="  Tax-Collection "), ISSUER, Level.SECRET)
    assert principal.purpose == "tax-collection"


@pytest.mark.parametrize(
    "overrides",
    [
        {"scope": 42},
        {"scope": {"tax:read": True}},
        {"scope": ["tax:read", 7]},
        {"scope": "tax:read bad<scope>"},
        {"scope": ["x" * 129]},
        {"scope": " ".join(f"s{i}" for i in range(MAX_SCOPES + 1))},
    ],
    ids=["number", "object", "list-with-number", "bad-character", "too-long", "too-many"],
)
def test_bad_scope_claims_refused(overrides):
    error = refused(claims(**overrides))
    assert error.reason == "invalid_claim"
    assert "`scope`" in error.message


def test_the_most_scopes_accepted():
    scopes = [f"s{i}" for i in range(MAX_SCOPES)]
    principal = principal_from_claims(claims(scope=scopes), ISSUER, Level.SECRET)
    assert len(principal.scopes) == MAX_SCOPES


@pytest.mark.parametrize(
    "district",
    ["9999", "1000", "1051", ["1039", "0000"], [], 1039, {"code": "1039"}, [1039]],
    ids=str,
)
def test_bad_district_claims_refused(district):
    error = refused(claims(district=district))
    assert error.reason == "invalid_claim"
    assert "`district`" in error.message


@pytest.mark.parametrize(
    "purpose",
    ["", "   ", "marketing campaign", "x" * 65, "-starts-with-dash", 7, ["research"], "ไทย"],
    ids=str,
)
def test_bad_purpose_claims_refused(purpose):
    error = refused(claims(purpose=purpose))
    assert error.reason == "invalid_claim"
    assert "`purpose`" in error.message


@pytest.mark.parametrize("name", ["sub", "bma_audience"])
def test_missing_required_claims(name):
    raw = claims()
    del raw[name]
    error = refused(raw)
    assert error.reason == "missing_claim"
    assert f"`{name}`" in error.message


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": ""},
        {"sub": "   "},
        {"sub": 17},
        {"bma_audience": "anonymous"},  # never from a token
        {"bma_audience": "app"},
        {"bma_audience": ["agency"]},
        {"org": 5},
        {"jti": ["a"]},
        {"clearance": "top-secret"},
        {"clearance": 3},
    ],
    ids=str,
)
def test_invalid_claims(overrides):
    error = refused(claims(**overrides))
    assert error.reason == "invalid_claim"
    assert error.status == 401
