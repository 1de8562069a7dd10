"""The error catalogue: every code declared once, raised by name, coded by class below."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from graphql import GraphQLError

import gateway.errors as errors
from connectors.audit_log import AuditUnavailable
from connectors.base import InvalidCursor, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.errors import (
    CATALOGUE,
    CODED_BELOW,
    DENIAL_CODES,
    AuthenticationUnavailable,
    BatchTooLarge,
    Forbidden,
    GatewayError,
    InternalError,
    PayloadTooLarge,
    PurposeRequired,
    RateLimited,
    TooManyTokens,
    Unauthenticated,
    code_of,
    denial,
    denial_code,
)
from policies.model import Decision, load_policy
from policies.principal import Level, Principal
from schema.errors import BadUserInput, PageSizeExceeded, ResolverError, UnknownDistrict


def subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


GATEWAY_CLASSES = list(subclasses(GatewayError))


def body(response) -> dict:
    return orjson.loads(response.body)


# ---------------------------------------------------------------------------- the catalogue


@pytest.mark.parametrize("cls", GATEWAY_CLASSES, ids=lambda cls: cls.__name__)
def test_every_class_code_is_in_the_catalogue(cls):
    assert CATALOGUE[cls.error.code] is cls.error


def test_every_catalogue_code_is_raised_by_a_class_or_coded_below():
    by_gateway = {cls.error.code for cls in GATEWAY_CLASSES}
    below = {code.code for code in CODED_BELOW.values()}
    graphql_core = {"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"}
    assert by_gateway | below | graphql_core == set(CATALOGUE)


def test_catalogue_entries_are_well_formed():
    for code, entry in CATALOGUE.items():
        assert entry.code == code
        assert re.fullmatch(r"[A-Z][A-Z_]+", code)
        assert entry.statuses and all(100 <= s < 600 for s in entry.statuses)
        assert entry.status == entry.statuses[0]
        assert entry.message


def test_concrete_classes_have_codes_of_their_own():
    abstract = {errors.LimitExceeded, errors.Denied}
    concrete = [cls for cls in GATEWAY_CLASSES if cls not in abstract]
    codes = [cls.error.code for cls in concrete]
    assert len(codes) == len(set(codes)), "two classes share a code"
    assert [cls for cls in concrete if cls.error is errors.INTERNAL_ERROR] == [InternalError]


def test_statuses_of_note():
    assert CATALOGUE["BAD_USER_INPUT"].statuses == (400, 200)  # a variable's, an argument's
    assert CATALOGUE["FORBIDDEN"].statuses == (200, 403)  # filter mode, reject mode
    assert CATALOGUE["AUDIT_UNAVAILABLE"].statuses == (503, 200)
    assert CATALOGUE["INTERNAL_ERROR"].statuses == (500, 200)
    assert CATALOGUE["UNAUTHENTICATED"].status == 401
    assert DENIAL_CODES == {"FORBIDDEN", "PURPOSE_REQUIRED"}
    for cls in subclasses(errors.LimitExceeded):
        assert cls.error.status == 400


# ---------------------------------------------------------------------------- code_of


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BadUserInput("radius must be positive"), "BAD_USER_INPUT"),
        (UnknownDistrict("no district 9999"), "UNKNOWN_DISTRICT"),
        (PageSizeExceeded("first over 100"), "PAGE_SIZE_EXCEEDED"),
        (InvalidCursor("bad cursor"), "INVALID_CURSOR"),
        (UpstreamTimeout("traffy", "timed out"), "UPSTREAM_TIMEOUT"),
        (UpstreamUnavailable("registry:1039", "refused"), "UPSTREAM_UNAVAILABLE"),
        (AuditUnavailable("store down"), "AUDIT_UNAVAILABLE"),
        (Forbidden("no"), "FORBIDDEN"),
        (TooManyTokens("many", 10), "TOO_MANY_TOKENS"),
        (InternalError(), "INTERNAL_ERROR"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value,
)
def test_code_of(error, code):
    found = code_of(error)
    assert found is CATALOGUE[code]


def test_code_of_a_subclass_is_its_most_specific_ancestors():
    class SlowTraffy(UpstreamTimeout):
        pass

    class NegativeRadius(BadUserInput):
        pass

    class WeirdCursor(InvalidCursor):
        pass

    assert code_of(SlowTraffy("traffy", "slow")) is errors.UPSTREAM_TIMEOUT
    assert code_of(NegativeRadius("negative")) is errors.BAD_USER_INPUT
    assert code_of(WeirdCursor("x")) is errors.INVALID_CURSOR


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug"),  # InvalidCursor's base, not itself coded
        KeyError("k"),
        RuntimeError("boom"),
        UpstreamError("traffy", "the base class of upstream errors is not coded"),
        ResolverError("the base class of resolver errors is not coded"),
        GraphQLError("graphql-core's own"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_code_of_a_bug_is_none(error):
    assert code_of(error) is None


# ---------------------------------------------------------------------------- responses


def test_entry_and_graphql_error():
    error = BatchTooLarge(10, 12)
    assert error.entry() == {
        "message": "a batch holds at most 10 operations",
        "extensions": {"code": "BATCH_TOO_LARGE", "limit": 10, "actual": 12},
    }
    as_graphql = error.graphql_error()
    assert isinstance(as_graphql, GraphQLError)
    assert as_graphql.message == error.message
    assert as_graphql.extensions == {"code": "BATCH_TOO_LARGE", "limit": 10, "actual": 12}


def test_default_message_is_the_codes():
    assert errors.BadRequest().message == errors.BAD_REQUEST.message
    assert errors.NotFound().entry() == {
        "message": "not found",
        "extensions": {"code": "NOT_FOUND"},
    }


def test_limit_exceeded_leaves_out_what_is_not_known():
    assert TooManyTokens("too many", 1000).extensions == {"limit": 1000}
    assert TooManyTokens().entry()["extensions"] == {"code": "TOO_MANY_TOKENS"}


def test_response_status_body_and_type():
    response = PayloadTooLarge(1024).response()
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.body == (
        b'{"errors":[{"message":"the body is over 1024 bytes",'
        b'"extensions":{"code":"PAYLOAD_TOO_LARGE","limit":1024}}]}'
    )
    assert "www-authenticate" not in response.headers
    assert "retry-after" not in response.headers


def test_response_with_another_status():
    response = Forbidden("no", rule="Owner.nationalId: confidential").response(403)
    assert response.status_code == 403
    assert body(response)["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("reason", "challenge"),
    [
        (
            "expired_token",
            'Bearer realm="bma-gateway", error="invalid_token", error_description="expired_token"',
        ),
        (
            "unknown_api_key",
            'ApiKey realm="bma-gateway", error="invalid_token", error_description="unknown_api_key"',
        ),
        (
            "revoked_api_key",
            'ApiKey realm="bma-gateway", error="invalid_token", error_description="revoked_api_key"',
        ),
        (
            "ambiguous_credentials",
            'Bearer realm="bma-gateway", error="invalid_request", '
            'error_description="ambiguous_credentials"',
        ),
        (
            "invalid_purpose",
            'Bearer realm="bma-gateway", error="invalid_request", error_description="invalid_purpose"',
        ),
    ],
)
def test_unauthenticated_challenge(reason, challenge):
    error = Unauthenticated(reason, "the credential proves nothing here")
    assert error.reason == reason
    assert error.www_authenticate == challenge
    response = error.response()
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    assert body(response) == {
        "errors": [
            {
                "message": "the credential proves nothing here",
                "extensions": {"code": "UNAUTHENTICATED", "reason": reason},
            }
        ]
    }


def test_authentication_unavailable_asks_to_retry():
    response = AuthenticationUnavailable().response()
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(AuthenticationUnavailable.RETRY_AFTER_SECONDS)
    assert body(response)["errors"][0]["extensions"] == {"code": "AUTHENTICATION_UNAVAILABLE"}


def test_rate_limited_carries_its_headers_and_retry_after():
    error = RateLimited("slow down", 7, {"x-ratelimit-limit": "10", "x-ratelimit-remaining": "0"})
    assert error.headers == {
        "x-ratelimit-limit": "10",
        "x-ratelimit-remaining": "0",
        "retry-after": "7",
    }
    response = error.response()
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-limit"] == "10"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert body(response)["errors"][0] == {
        "message": "slow down",
        "extensions": {"code": "RATE_LIMITED", "retryAfter": 7},
    }


def test_rate_limited_retry_after_wins_over_a_given_one():
    error = RateLimited("slow down", 3, {"retry-after": "999"})
    assert error.headers["retry-after"] == "3"


def test_internal_error_gives_a_reference_and_no_detail():
    first, second = InternalError(), InternalError()
    assert re.fullmatch(r"[0-9a-f]{12}", first.reference)
    assert first.reference != second.reference
    assert first.message == f"internal error (reference {first.reference})"
    response = first.response()
    assert response.status_code == 500
    assert body(response)["errors"][0]["extensions"] == {"code": "INTERNAL_ERROR"}


# ---------------------------------------------------------------------------- denials


@pytest.fixture(scope="module")
def national_id():
    policy = load_policy()
    rule = policy.rule("Owner", "nationalId")
    assert rule is not None and rule.personal and rule.level is Level.CONFIDENTIAL
    return policy, rule


def test_denial_of_a_field_without_the_scopes(national_id):
    policy, rule = national_id
    verdict = policy.decide(rule, Principal("anonymous", "anonymous"))
    assert verdict.decision is Decision.DENY
    error = denial(verdict)
    assert isinstance(error, Forbidden)
    assert denial_code(verdict) is errors.FORBIDDEN
    assert error.message == "Owner.nationalId is confidential data; you may not read it"
    assert error.extensions == {
        "rule": "Owner.nationalId: confidential personal",
        "grantedBy": verdict.grant,
    }
    assert "tax:read" in verdict.grant and "clearance confidential" in verdict.grant
    assert error.entry()["extensions"]["code"] == "FORBIDDEN"


def test_denial_of_a_personal_field_without_a_purpose(national_id):
    policy, rule = national_id
    finance = Principal(
        "agency",
        "finance-officer",
        clearance=Level.CONFIDENTIAL,
        scopes=frozenset({"tax:read", "tax:personal"}),
    )
    verdict = policy.decide(rule, finance)
    assert verdict.decision is Decision.PURPOSE_REQUIRED
    error = denial(verdict)
    assert isinstance(error, PurposeRequired)
    assert denial_code(verdict) is errors.PURPOSE_REQUIRED
    assert error.message == (
        "Owner.nationalId is personal data: declare a purpose with the X-Purpose header"
    )
    assert error.extensions["rule"] == "Owner.nationalId: confidential personal"
    assert error.extensions["grantedBy"].startswith("a declared purpose: one of ")
    assert "tax-collection" in error.extensions["grantedBy"]


def test_denial_of_an_untagged_field_names_no_tags():
    policy = load_policy()
    rule = next(
        r for r in policy.rules.values() if not r.open and not r.tags and r.level is Level.INTERNAL
    )
    verdict = policy.decide(rule, Principal("anonymous", "anonymous"))
    assert verdict.decision is Decision.DENY
    assert denial(verdict).extensions["rule"] == f"{rule.coordinate}: internal"


# ============================================================================
# docs/errors.md cross-check: written separately, below this line.
# ============================================================================

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def _documented() -> dict[str, str]:
    """The codes of docs/errors.md's table, with its HTTP column."""
    rows: dict[str, str] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`") and cells[0] != "`code`":
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_the_errors_doc_lists_every_code_with_its_statuses():
    documented = _documented()
    assert set(documented) == set(errors.CATALOGUE), (
        f"only in the docs: {sorted(set(documented) - set(errors.CATALOGUE))}; "
        f"only in gateway/errors.py: {sorted(set(errors.CATALOGUE) - set(documented))}"
    )
    for code, error in errors.CATALOGUE.items():
        assert documented[code] == " / ".join(str(s) for s in error.statuses), code
