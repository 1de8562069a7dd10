"""Authentication: the principal a request's credentials prove, or a 401 saying why not.

No credentials make the anonymous principal; ``X-API-Key`` an app developer; a bearer JWT from
a trusted issuer a partner or an agency. A credential that is present but wrong is always an
error — never a silent fall-back to anonymous, which would hide a misconfigured client and
let a forged token probe what anonymous may see.

JWT checks follow RFC 8725: the algorithm comes from the issuer's configuration, never from
the token (so ``alg: none`` and HS256 signed with a public key are refused before any
verification); the key is the one whose ``kid`` the issuer publishes; ``exp``, ``iat``,
``iss`` and ``aud`` are required and ``aud`` must be exactly this gateway's audience.

What the gateway reads of a token is what any other reader would read: header and claims are
JSON objects without a repeated key (which parser keeps which value differs), the time claims
are JSON numbers (RFC 7519 NumericDate, not numeric strings), and a token may not be valid for
longer (``iat`` to ``exp``) than its issuer's maximum lifetime.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import jwt
from jwt.utils import base64url_decode

from gateway.auth.api_keys import ApiKeyStore, ApiKeyStoreUnavailable, parse_api_key
from gateway.auth.claims import PURPOSE, principal_from_claims
from gateway.auth.trust import DEFAULT_AUDIENCE, MAX_LEEWAY_SECONDS, Trust
from gateway.errors import AuthenticationUnavailable, Unauthenticated
from policies.principal import ANONYMOUS, Level, Principal

MAX_TOKEN_BYTES = 8 * 1024
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud"]
TIME_CLAIMS = ("exp", "nbf", "iat")
# The headers authentication reads; the middleware hands it these only.
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-purpose")


@dataclass(frozen=True)
class _Presented:
    authorization: str | None
    api_key: str | None
    purpose: str | None


class Authenticator:
    def __init__(
        self,
        trusts: Sequence[Trust] = (),
        *,
        audience: str = DEFAULT_AUDIENCE,
        leeway: int = 30,
        api_keys: ApiKeyStore | None = None,
    ) -> None:
        if not 0 <= leeway <= MAX_LEEWAY_SECONDS:
            raise ValueError(f"the JWT leeway must be 0..{MAX_LEEWAY_SECONDS} seconds")
        self.trusts = {t.issuer: t for t in trusts}
        self.audience = audience
        self.leeway = leeway
        self.api_keys = api_keys

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        presented = _presented(headers)
        purpose = _header_purpose(presented.purpose)
        if presented.authorization is not None and presented.api_key is not None:
            raise Unauthenticated(
                "ambiguous_credentials", "send either X-API-Key or Authorization, not both"
            )
        if presented.authorization is not None:
            principal = await self._from_token(_bearer(presented.authorization))
        elif presented.api_key is not None:
            principal = await self._from_api_key(presented.api_key)
        else:
            principal = ANONYMOUS
        # The header is what this request declares; it overrides the token's standing claim.
        return replace(principal, purpose=purpose) if purpose else principal

    async def _from_api_key(self, presented: str) -> Principal:
        if self.api_keys is None:
            raise Unauthenticated("unknown_api_key", "this gateway does not accept API keys")
        parsed = parse_api_key(presented)
        if parsed is None:
            raise Unauthenticated("unknown_api_key", "not an API key of this gateway")
        try:
            record = await self.api_keys.lookup(parsed.key_id)
        except ApiKeyStoreUnavailable as exc:
            raise AuthenticationUnavailable("API keys cannot be checked now") from exc
        # Whether a key was revoked is told only to whoever holds its secret.
        if record is None or not record.matches(parsed.secret):
            raise Unauthenticated("unknown_api_key", "this API key is not known")
        if record.revoked:
            raise Unauthenticated("revoked_api_key", "this API key was revoked")
        await self.api_keys.touch(record.id)
        return Principal(
            kind="app",
            subject=f"key:{record.id}",
            organisation=record.organisation,
            clearance=Level.PUBLIC,
            credential_id=record.id,
        )

    async def _from_token(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated("malformed_token", f"the token is over {MAX_TOKEN_BYTES} bytes")
        header, unverified = _unverified(token)
        trust = self._trust(unverified)
        algorithm = header.get("alg")
        if algorithm not in trust.algorithms:
            allowed = ", ".join(trust.algorithms)
            raise Unauthenticated(
                "algorithm_not_allowed", f"{trust.issuer} tokens are signed with {allowed}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("malformed_token", "the token header has no `kid`")
        key = await trust.keys.key(kid)
        if key is None:
            raise Unauthenticated("unknown_key", f"{trust.issuer} publishes no key {kid!r}")
        if key.algorithm_name != algorithm:
            raise Unauthenticated(
                "algorithm_not_allowed", f"key {kid!r} is for {key.algorithm_name}"
            )
        claims = self._verify(token, key, algorithm, trust.issuer)
        _check_lifetime(claims, trust)
        return principal_from_claims(claims, trust.issuer, trust.max_clearance)

    def _trust(self, unverified: Mapping[str, Any]) -> Trust:
        issuer = unverified.get("iss")
        if issuer is None:
            raise Unauthenticated("missing_claim", "the token has no `iss` claim")
        trust = self.trusts.get(issuer) if isinstance(issuer, str) else None
        if trust is None:
            raise Unauthenticated(
                "unknown_issuer", "the token's issuer is not trusted by this gateway"
            )
        return trust

    def _verify(self, token: str, key: jwt.PyJWK, algorithm: str, issuer: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],  # from the issuer's configuration, checked above
                audience=self.audience,
                issuer=issuer,
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS, "strict_aud": True},
            )
        except jwt.PyJWTError as exc:
            raise _token_error(exc) from None


def _presented(headers: Mapping[str, str]) -> _Presented:
    """The credential headers, case-insensitively; a repeated one is refused.

    Two Authorization headers could be read differently by a proxy and by the gateway, so
    neither is chosen.
    """
    seen: dict[str, list[str]] = {name: [] for name in CREDENTIAL_HEADERS}
    for name, value in headers.items():
        values = seen.get(name.lower())
        if values is not None:
            values.append(value)
    if len(seen["authorization"]) > 1 or len(seen["x-api-key"]) > 1:
        raise Unauthenticated("ambiguous_credentials", "send one credential header, once")
    if len(seen["x-purpose"]) > 1:
        raise Unauthenticated("invalid_purpose", "declare one purpose (X-Purpose), once")
    return _Presented(
        authorization=_first(seen["authorization"]),
        api_key=_first(seen["x-api-key"]),
        purpose=_first(seen["x-purpose"]),
    )


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


def _bearer(authorization: str) -> str:
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthenticated("malformed_token", "send `Authorization: Bearer <token>`")
    return token


def _header_purpose(raw: str | None) -> str | None:
    if raw is None:
        return None
    purpose = raw.strip().lower()
    if not PURPOSE.fullmatch(purpose):
        raise Unauthenticated(
            "invalid_purpose",
            "X-Purpose must be a short code: letters, digits, '_', '-', '.', ':' (at most 64)",
        )
    return purpose


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification: only to pick the issuer, key and algorithm,
    and to refuse what verification would read differently from another JWT library."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Unauthenticated("malformed_token", "the bearer token is not a well-formed JWT")
    header = _json_object(parts[0], "header")
    claims = _json_object(parts[1], "payload")
    for name in TIME_CLAIMS:
        if name in claims and not _is_numeric_date(claims[name]):
            raise Unauthenticated(
                "malformed_token",
                f"`{name}` must be a JSON number of seconds since 1970 (RFC 7519 NumericDate)",
            )
    return header, claims


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused if a key is repeated: parsers differ in which value they keep,
    so a token could mean one thing to its issuer's checks and another to the gateway."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _RepeatedKey(key)
        document[key] = value
    return document


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # Python reads NaN and Infinity; JSON has none


def _json_object(segment: str, part: str) -> dict[str, Any]:
    try:
        document = json.loads(
            base64url_decode(segment),
            object_pairs_hook=_unique_keys,
            parse_constant=_not_json,
        )
    except _RepeatedKey as repeated:
        raise Unauthenticated(
            "malformed_token", f"the token {part} repeats the key {repeated.key[:64]!r}"
        ) from None
    except (ValueError, RecursionError):  # bad base64, UTF-8 or JSON
        document = None
    if not isinstance(document, dict):
        raise Unauthenticated("malformed_token", "the bearer token is not a well-formed JWT")
    return document


def _is_numeric_date(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _check_lifetime(claims: Mapping[str, Any], trust: Trust) -> None:
    """Refuse a token valid for longer than its issuer allows: however validly signed, a
    token with `exp` years ahead is a credential nobody can take back."""
    lifetime = claims["exp"] - claims["iat"]  # both required, numbers, checked by _verify
    if lifetime > trust.max_lifetime:
        raise Unauthenticated(
            "invalid_claim",
            f"the token is valid for {lifetime:,.0f} seconds (`iat` to `exp`); tokens of "
            f"{trust.issuer} may be valid for at most {trust.max_lifetime:,} seconds",
        )


# Most specific first: InvalidSignatureError is a DecodeError.
_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidSignatureError, "invalid_signature"),
    (jwt.InvalidAudienceError, "invalid_audience"),
    (jwt.InvalidIssuerError, "unknown_issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidAlgorithmError, "algorithm_not_allowed"),
    (jwt.InvalidKeyError, "unknown_key"),
    (jwt.InvalidIssuedAtError, "invalid_claim"),
    (jwt.DecodeError, "malformed_token"),
)


def _token_error(exc: jwt.PyJWTError) -> Unauthenticated:
    for kind, reason in _ERRORS:
        if isinstance(exc, kind):
            return Unauthenticated(reason, f"the token was refused: {exc}")
    return Unauthenticated("invalid_claim", f"the token was refused: {exc}")
