"""From a verified token's claims to the ``Principal`` they describe.

Claims are untrusted input even after the signature holds: each is checked for its type and
shape, the clearance is capped by what its issuer may grant (``max_clearance``), district row
scopes must name Bangkok districts, and a declared purpose is a short code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connectors.districts import is_district_code
from gateway.errors import Unauthenticated
from policies.principal import AudienceKind, Level, Principal

MAX_SCOPES = 64
# A declared purpose is a short code, e.g. "research" or "tax-collection".
PURPOSE = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,63}")
_SCOPE = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")


def principal_from_claims(
    claims: Mapping[str, Any], issuer: str, max_clearance: Level
) -> Principal:
    """The principal a verified token's claims describe, clearance capped by its issuer."""
    audience = _required_str(claims, "bma_audience")
    kind: AudienceKind
    if audience == "partner":
        kind = "partner"
    elif audience == "agency":
        kind = "agency"
    else:
        raise Unauthenticated("invalid_claim", "`bma_audience` must be partner or agency")
    clearance = _clearance(claims.get("clearance", "public"))
    return Principal(
        kind=kind,
        subject=_required_str(claims, "sub"),
        organisation=_optional_str(claims, "org"),
        clearance=min(clearance, max_clearance),
        scopes=_scopes(claims.get("scope")),
        districts=_districts(claims.get("district")),
        purpose=_claim_purpose(claims.get("purpose")),
        credential_id=_optional_str(claims, "jti"),
        issuer=issuer,
    )


def _required_str(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        raise Unauthenticated("missing_claim", f"the token has no `{name}` claim")
    if not isinstance(value, str) or not value.strip():
        raise Unauthenticated("invalid_claim", f"`{name}` must be a non-empty string")
    return value


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise Unauthenticated("invalid_claim", f"`{name}` must be a string")
    return value or None


def _clearance(raw: Any) -> Level:
    try:
        if not isinstance(raw, str):
            raise ValueError(raw)
        return Level.parse(raw)
    except ValueError:
        raise Unauthenticated(
            "invalid_claim", "`clearance` must be public, internal, confidential or secret"
        ) from None


def _scopes(raw: Any) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if isinstance(raw, str):
        scopes = raw.split()
    elif isinstance(raw, list):  # some identity providers send a list
        scopes = raw
    else:
        raise Unauthenticated("invalid_claim", "`scope` must be a space-separated string")
    if len(scopes) > MAX_SCOPES or not all(
        isinstance(s, str) and _SCOPE.fullmatch(s) for s in scopes
    ):
        raise Unauthenticated(
            "invalid_claim", "`scope` holds a malformed scope or too many of them"
        )
    return frozenset(scopes)


def _districts(raw: Any) -> frozenset[str] | None:
    if raw is None:
        return None
    codes = [raw] if isinstance(raw, str) else raw
    if not isinstance(codes, list) or not codes:
        raise Unauthenticated(
            "invalid_claim", "`district` must be a district code or a list of them"
        )
    if not all(isinstance(c, str) and is_district_code(c) for c in codes):
        raise Unauthenticated("invalid_claim", "`district` names no Bangkok district (1001-1050)")
    return frozenset(codes)


def _claim_purpose(raw: Any) -> str | None:
    if raw is None:
        return None
    purpose = raw.strip().lower() if isinstance(raw, str) else ""
    if not PURPOSE.fullmatch(purpose):
        raise Unauthenticated("invalid_claim", "`purpose` must be a short code")
    return purpose
