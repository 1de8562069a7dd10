"""Authentication: the principal a request's credentials prove, or a 401 saying why not.

No credentials make the anonymous principal; ``X-API-Key`` an app developer; a bearer JWT from
a trusted issuer a partner or an agency. A credential that is present but wrong is always an
error — never a silent fall-back to anonymous, which would hide a misconfigured client and
let a forged token probe what anonymous may see.

JWT checks follow RFC 8725: the algorithm comes from the issuer's configuration, never from
the token (so ``alg: none`` and HS256 signed with a public key are refused before any
verification); the key is the one whose ``kid`` the issuer publishes; ``exp``, ``iat``,
``iss`` and ``aud`` are required and ``aud`` must be exactly this gateway's audience.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson

from connectors.districts import is_district_code
from gateway.api_keys import ApiKeyStore, ApiKeyStoreUnavailable, parse_api_key
from gateway.issuer import EmbeddedIssuer
from gateway.settings import MAX_LEEWAY_SECONDS, Settings, TrustedIssuer
from policies.principal import ANONYMOUS, Level, Principal

log = logging.getLogger("bma.gateway.auth")

MAX_TOKEN_BYTES = 8 * 1024
MAX_JWKS_BYTES = 1024 * 1024
MAX_SCOPES = 64
JWKS_MIN_REFETCH_SECONDS = 60.0  # an unknown kid refetches the JWKS at most this often
JWKS_MAX_AGE_SECONDS = 300.0  # ... and a key set is re-read at least this often
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud"]

# A declared purpose is a short code, e.g. "research" or "tax-collection".
_PURPOSE = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,63}")
_SCOPE = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")

# Reasons that are about the request's shape rather than a credential's validity.
_REQUEST_REASONS = {"ambiguous_credentials", "invalid_purpose"}
_API_KEY_REASONS = {"unknown_api_key", "revoked_api_key"}


class AuthError(Exception):
    """Credentials that prove nothing: answered 401 with ``reason`` as the code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def www_authenticate(self) -> str:
        """The challenge for the 401 (RFC 6750 s.3 for bearer tokens)."""
        scheme = "ApiKey" if self.reason in _API_KEY_REASONS else "Bearer"
        error = "invalid_request" if self.reason in _REQUEST_REASONS else "invalid_token"
        return f'{scheme} realm="bma-gateway", error="{error}", error_description="{self.reason}"'


class AuthUnavailable(Exception):
    """A credential cannot be checked now (key database or issuer keys unreachable): 503."""


# --- key sets -----------------------------------------------------------------------------

JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


class KeySet:
    """An issuer's verification keys by ``kid``, fetched lazily and cached.

    An unknown ``kid`` triggers a refetch (the issuer may have rotated), at most once per
    ``min_refetch`` seconds so that tokens with made-up kids cannot make the gateway hammer
    the issuer. The set is also re-read once older than ``max_age``, so a key the issuer
    retired stops verifying.
    """

    def __init__(
        self,
        name: str,
        fetch: JwksFetcher,
        *,
        min_refetch: float = JWKS_MIN_REFETCH_SECONDS,
        max_age: float = JWKS_MAX_AGE_SECONDS,
    ) -> None:
        self.name = name
        self._fetch = fetch
        self.min_refetch = min_refetch
        self.max_age = max_age
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0  # monotonic time of the last attempt, successful or not
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        if self._keys is None or time.monotonic() - self._fetched_at >= self.max_age:
            await self._refresh(self._fetched_at)
        if self._keys is None:  # a concurrent first fetch failed
            raise AuthUnavailable(f"the keys of {self.name} cannot be read")
        keys = self._keys
        if kid not in keys and time.monotonic() - self._fetched_at >= self.min_refetch:
            await self._refresh(self._fetched_at)
            keys = self._keys or keys
        return keys.get(kid)

    async def _refresh(self, seen: float) -> None:
        async with self._lock:
            if self._fetched_at != seen:
                return  # another request refreshed while this one waited for the lock
            self._fetched_at = time.monotonic()
            try:
                self._keys = parse_jwks(await self._fetch(), self.name)
            except Exception as exc:  # any failure to fetch or read the set
                if self._keys is None:
                    raise AuthUnavailable(f"the keys of {self.name} cannot be read") from exc
                log.warning("keeping the cached keys of %s: %s", self.name, exc)


def parse_jwks(document: Mapping[str, Any], name: str) -> dict[str, jwt.PyJWK]:
    """Public verification keys by kid; private, symmetric or unreadable entries are skipped."""
    entries = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError(f"the JWKS of {name} has no `keys` list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if not isinstance(kid, str) or not kid:
            continue
        if entry.get("kty") == "oct" or "d" in entry:
            log.warning("ignoring key %s of %s: not a public key", kid, name)
            continue
        try:
            keys[kid] = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            log.warning("ignoring key %s of %s: %s", kid, name, exc)
    return keys


def url_fetcher(url: str, timeout: float = 5.0) -> JwksFetcher:
    async def fetch() -> Mapping[str, Any]:
        # A client per fetch: fetches are rare (at most one a minute) and this needs no
        # lifecycle tied to the app.
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            response = await client.get(url, headers={"accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise ValueError(f"the JWKS at {url} is over {MAX_JWKS_BYTES} bytes")
            return orjson.loads(response.content)

    return fetch


def file_fetcher(path: Path) -> JwksFetcher:
    async def fetch() -> Mapping[str, Any]:
        return orjson.loads(await asyncio.to_thread(path.read_bytes))

    return fetch


def embedded_fetcher(issuer: EmbeddedIssuer) -> JwksFetcher:
    async def fetch() -> Mapping[str, Any]:
        # The key file may have changed: `bma-gateway token rotate` or `retire`.
        await asyncio.to_thread(issuer.reload)
        return issuer.jwks()

    return fetch


@dataclass(frozen=True)
class Trust:
    """A trusted issuer and where its keys come from."""

    config: TrustedIssuer
    keys: KeySet


def trust_for(config: TrustedIssuer, **key_set_options: float) -> Trust:
    fetch = (
        url_fetcher(config.jwks)
        if config.jwks_is_url
        else file_fetcher(Path(config.jwks).expanduser())
    )
    return Trust(config, KeySet(config.issuer, fetch, **key_set_options))


def embedded_trust(
    issuer: EmbeddedIssuer, *, min_refetch: float = 0.0, max_age: float = 5.0
) -> Trust:
    """The gateway's own keys: as trusted as the operator who holds the key file.

    Re-reading them costs one ``stat`` of the key file unless it changed, so an unknown kid
    may always look again (a key just added by ``bma-gateway token rotate``), and a retired
    key stops verifying within ``max_age`` seconds.
    """
    config = TrustedIssuer(issuer.issuer, "(embedded)", ("ES256",), Level.SECRET)
    fetch = embedded_fetcher(issuer)
    return Trust(config, KeySet(issuer.issuer, fetch, min_refetch=min_refetch, max_age=max_age))


# --- the authenticator --------------------------------------------------------------------


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
        audience: str = "bma-gateway",
        leeway: int = 30,
        api_keys: ApiKeyStore | None = None,
    ) -> None:
        if not 0 <= leeway <= MAX_LEEWAY_SECONDS:
            raise ValueError(f"the JWT leeway must be 0..{MAX_LEEWAY_SECONDS} seconds")
        self.trusts = {t.config.issuer: t for t in trusts}
        self.audience = audience
        self.leeway = leeway
        self.api_keys = api_keys

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        embedded: EmbeddedIssuer | None = None,
        api_keys: ApiKeyStore | None = None,
    ) -> Authenticator:
        trusts = [trust_for(t) for t in settings.trusted_issuers]
        if embedded is not None:
            trusts.append(embedded_trust(embedded))
        return cls(
            trusts, audience=settings.jwt_audience, leeway=settings.jwt_leeway, api_keys=api_keys
        )

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        presented = _presented(headers)
        purpose = _header_purpose(presented.purpose)
        if presented.authorization is not None and presented.api_key is not None:
            raise AuthError(
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
            raise AuthError("unknown_api_key", "this gateway does not accept API keys")
        parsed = parse_api_key(presented)
        if parsed is None:
            raise AuthError("unknown_api_key", "not an API key of this gateway")
        try:
            record = await self.api_keys.lookup(parsed.key_id)
        except ApiKeyStoreUnavailable as exc:
            raise AuthUnavailable("API keys cannot be checked now") from exc
        # Whether a key was revoked is told only to whoever holds its secret.
        if record is None or not record.matches(parsed.secret):
            raise AuthError("unknown_api_key", "this API key is not known")
        if record.revoked:
            raise AuthError("revoked_api_key", "this API key was revoked")
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
            raise AuthError("malformed_token", f"the token is over {MAX_TOKEN_BYTES} bytes")
        header, unverified = _unverified(token)
        trust = self._trust(unverified)
        algorithm = header.get("alg")
        if algorithm not in trust.config.algorithms:
            allowed = ", ".join(trust.config.algorithms)
            raise AuthError(
                "algorithm_not_allowed", f"{trust.config.issuer} tokens are signed with {allowed}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("malformed_token", "the token header has no `kid`")
        key = await trust.keys.key(kid)
        if key is None:
            raise AuthError("unknown_key", f"{trust.config.issuer} publishes no key {kid!r}")
        if key.algorithm_name != algorithm:
            raise AuthError("algorithm_not_allowed", f"key {kid!r} is for {key.algorithm_name}")
        claims = self._verify(token, key, algorithm, trust.config.issuer)
        return principal_from_claims(claims, trust.config)

    def _trust(self, unverified: Mapping[str, Any]) -> Trust:
        issuer = unverified.get("iss")
        if issuer is None:
            raise AuthError("missing_claim", "the token has no `iss` claim")
        trust = self.trusts.get(issuer) if isinstance(issuer, str) else None
        if trust is None:
            raise AuthError("unknown_issuer", "the token's issuer is not trusted by this gateway")
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
    seen: dict[str, list[str]] = {"authorization": [], "x-api-key": [], "x-purpose": []}
    for name, value in headers.items():
        values = seen.get(name.lower())
        if values is not None:
            values.append(value)
    if len(seen["authorization"]) > 1 or len(seen["x-api-key"]) > 1:
        raise AuthError("ambiguous_credentials", "send one credential header, once")
    if len(seen["x-purpose"]) > 1:
        raise AuthError("invalid_purpose", "declare one purpose (X-Purpose), once")
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
        raise AuthError("malformed_token", "send `Authorization: Bearer <token>`")
    return token


def _header_purpose(raw: str | None) -> str | None:
    if raw is None:
        return None
    purpose = raw.strip().lower()
    if not _PURPOSE.fullmatch(purpose):
        raise AuthError(
            "invalid_purpose",
            "X-Purpose must be a short code: letters, digits, '_', '-', '.', ':' (at most 64)",
        )
    return purpose


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification: only to pick the issuer, key and algorithm."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthError("malformed_token", "the bearer token is not a well-formed JWT") from None
    return header, claims


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


def _token_error(exc: jwt.PyJWTError) -> AuthError:
    for kind, reason in _ERRORS:
        if isinstance(exc, kind):
            return AuthError(reason, f"the token was refused: {exc}")
    return AuthError("invalid_claim", f"the token was refused: {exc}")


# --- claims -> principal ------------------------------------------------------------------


def principal_from_claims(claims: Mapping[str, Any], issuer: TrustedIssuer) -> Principal:
    """The principal a verified token's claims describe, clearance capped by its issuer."""
    kind = _required_str(claims, "bma_audience")
    if kind not in ("partner", "agency"):
        raise AuthError("invalid_claim", "`bma_audience` must be partner or agency")
    clearance = _clearance(claims.get("clearance", "public"))
    return Principal(
        kind=kind,
        subject=_required_str(claims, "sub"),
        organisation=_optional_str(claims, "org"),
        clearance=min(clearance, issuer.max_clearance),
        scopes=_scopes(claims.get("scope")),
        districts=_districts(claims.get("district")),
        purpose=_claim_purpose(claims.get("purpose")),
        credential_id=_optional_str(claims, "jti"),
        issuer=issuer.issuer,
    )


def _required_str(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        raise AuthError("missing_claim", f"the token has no `{name}` claim")
    if not isinstance(value, str) or not value.strip():
        raise AuthError("invalid_claim", f"`{name}` must be a non-empty string")
    return value


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise AuthError("invalid_claim", f"`{name}` must be a string")
    return value or None


def _clearance(raw: Any) -> Level:
    try:
        if not isinstance(raw, str):
            raise ValueError(raw)
        return Level.parse(raw)
    except ValueError:
        raise AuthError(
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
        raise AuthError("invalid_claim", "`scope` must be a space-separated string")
    if len(scopes) > MAX_SCOPES or not all(
        isinstance(s, str) and _SCOPE.fullmatch(s) for s in scopes
    ):
        raise AuthError("invalid_claim", "`scope` holds a malformed scope or too many of them")
    return frozenset(scopes)


def _districts(raw: Any) -> frozenset[str] | None:
    if raw is None:
        return None
    codes = [raw] if isinstance(raw, str) else raw
    if not isinstance(codes, list) or not codes:
        raise AuthError("invalid_claim", "`district` must be a district code or a list of them")
    if not all(isinstance(c, str) and is_district_code(c) for c in codes):
        raise AuthError("invalid_claim", "`district` names no Bangkok district (1001-1050)")
    return frozenset(codes)


def _claim_purpose(raw: Any) -> str | None:
    if raw is None:
        return None
    purpose = raw.strip().lower() if isinstance(raw, str) else ""
    if not _PURPOSE.fullmatch(purpose):
        raise AuthError("invalid_claim", "`purpose` must be a short code")
    return purpose
