"""The embedded token issuer: the gateway's own ES256 keys, for the demo and the tests.

The keys live as PEM blocks in one file, oldest first; the last one signs. Every key in the
file is in the JWKS the gateway serves and trusts, so rotating is "add a key, wait until the
old tokens have expired, retire the old key". Each key's ``kid`` is its RFC 7638 thumbprint,
so the same key has the same id wherever it is loaded. It issues no token valid longer than
``MAX_TOKEN_LIFETIME``, and the gateway refuses any of its tokens that is.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.districts import is_district_code
from gateway.auth.jwks import JwksFetcher, KeySet
from gateway.auth.trust import DEFAULT_AUDIENCE, Trust
from policies.principal import Level

EMBEDDED_ISSUER = "bma-gateway-embedded"  # the `iss` of its tokens; no trusted issuer may take it
ALGORITHM = "ES256"
MAX_TOKEN_LIFETIME = timedelta(days=30)  # `exp` minus `iat` of any token it issues or accepts
_PEM_BEGIN = b"-----BEGIN PRIVATE KEY-----"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, without whitespace."""
    required = {
        "EC": ("crv", "kty", "x", "y"),
        "RSA": ("e", "kty", "n"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64url(hashlib.sha256(canonical).digest())


@dataclass(frozen=True)
class SigningKey:
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("the embedded issuer's keys must be EC P-256 (ES256) private keys")
        return cls(key)

    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }
        return {**jwk, "kid": jwk_thumbprint(jwk), "alg": ALGORITHM, "use": "sig"}

    @property
    def kid(self) -> str:
        return self.public_jwk()["kid"]


class EmbeddedIssuer:
    """Signs tokens with the newest key of its key file; publishes all keys' public halves."""

    def __init__(
        self,
        keys: Sequence[SigningKey],
        *,
        path: Path | None = None,
        issuer: str = EMBEDDED_ISSUER,
        audience: str = DEFAULT_AUDIENCE,
    ) -> None:
        if not keys:
            raise ValueError("the embedded issuer needs at least one key")
        self.keys = list(keys)
        self.path = path
        self.issuer = issuer
        self.audience = audience
        self._stamp = _stamp(path) if path is not None else None

    @classmethod
    def open(cls, path: Path, *, audience: str = DEFAULT_AUDIENCE) -> EmbeddedIssuer:
        """The issuer of the key file at ``path``; a first key is generated if it is missing."""
        path = Path(path).expanduser()
        if not path.exists():
            _create_exclusively(path, SigningKey.generate().pem())
        return cls(_read_keys(path), path=path, audience=audience)

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWKS: no private member (``d``) ever leaves this object."""
        return {"keys": [key.public_jwk() for key in self.keys]}

    def reload(self) -> None:
        """Re-read the key file if it changed, so that keys rotated or retired by the CLI
        reach a running gateway. Costs one ``stat`` when nothing changed."""
        if self.path is None:
            return
        stamp = _stamp(self.path)
        if stamp != self._stamp:
            self.keys = _read_keys(self.path)
            self._stamp = stamp

    def rotate(self) -> SigningKey:
        """Add a new signing key; older keys stay in the JWKS and keep verifying."""
        key = SigningKey.generate()
        self.keys.append(key)
        self._save()
        return key

    def retire(self, kid: str) -> None:
        """Drop a key from the JWKS: tokens it signed stop being accepted."""
        remaining = [key for key in self.keys if key.kid != kid]
        if len(remaining) == len(self.keys):
            raise ValueError(f"no key {kid!r} in the embedded issuer")
        if not remaining:
            raise ValueError("cannot retire the only key: rotate first")
        self.keys = remaining
        self._save()

    def issue(
        self,
        audience: Literal["partner", "agency"],
        org: str,
        scopes: str | Iterable[str],
        clearance: Level | str = Level.PUBLIC,
        district: str | Sequence[str] | None = None,
        purpose: str | None = None,
        ttl: timedelta = timedelta(hours=1),
        *,
        subject: str | None = None,
    ) -> str:
        """A signed token for ``audience`` (the ``bma_audience`` claim, not ``aud``)."""
        claims = self.claims(audience, org, scopes, clearance, district, purpose, ttl, subject)
        headers = {"kid": self.current.kid, "typ": "JWT"}
        return jwt.encode(claims, self.current.private_key, algorithm=ALGORITHM, headers=headers)

    def claims(
        self,
        audience: str,
        org: str,
        scopes: str | Iterable[str],
        clearance: Level | str,
        district: str | Sequence[str] | None,
        purpose: str | None,
        ttl: timedelta,
        subject: str | None,
    ) -> dict[str, Any]:
        if audience not in ("partner", "agency"):
            raise ValueError(f"audience must be partner or agency, got {audience!r}")
        if not org:
            raise ValueError("a token needs an organisation")
        if not timedelta(0) < ttl <= MAX_TOKEN_LIFETIME:
            raise ValueError(
                f"the token lifetime must be positive and at most {MAX_TOKEN_LIFETIME.days} days"
            )
        level = clearance if isinstance(clearance, Level) else Level.parse(clearance)
        scope_list = scopes.split() if isinstance(scopes, str) else list(scopes)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject or f"{audience}:{org}",
            "iat": now,
            "nbf": now,
            "exp": now + int(ttl.total_seconds()),
            "jti": secrets.token_hex(12),
            "bma_audience": audience,
            "org": org,
            "clearance": level.label,
            "scope": " ".join(scope_list),
        }
        if district is not None:
            claims["district"] = _district_claim(district)
        if purpose:
            claims["purpose"] = purpose
        return claims

    def _save(self) -> None:
        if self.path is not None:
            _replace(self.path, b"".join(key.pem() for key in self.keys))
            self._stamp = _stamp(self.path)


def _stamp(path: Path) -> tuple[int, int, int]:
    """What changes when the key file is replaced or rewritten."""
    info = path.stat()
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _district_claim(district: str | Sequence[str]) -> str | list[str]:
    codes = [district] if isinstance(district, str) else list(district)
    unknown = [c for c in codes if not is_district_code(c)]
    if unknown or not codes:
        raise ValueError(f"not Bangkok district codes (1001-1050): {unknown or codes}")
    return codes[0] if isinstance(district, str) else codes


def _read_keys(path: Path) -> list[SigningKey]:
    data = path.read_bytes()
    blocks = [_PEM_BEGIN + part for part in data.split(_PEM_BEGIN)[1:]]
    if not blocks:
        raise ValueError(f"{path} holds no PEM private key")
    return [SigningKey.from_pem(block) for block in blocks]


def _create_exclusively(path: Path, content: bytes) -> None:
    """Write a new key file unless another process won the race (then keep theirs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _write_private(path.parent, content)
    try:
        os.link(temporary, path)  # atomic, and fails instead of overwriting
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)


def _replace(path: Path, content: bytes) -> None:
    os.replace(_write_private(path.parent, content), path)


def _write_private(directory: Path, content: bytes) -> str:
    """A temporary file readable by its owner only, holding ``content``."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".issuer-key-")  # mode 0600
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    return name


def embedded_fetcher(issuer: EmbeddedIssuer) -> JwksFetcher:
    async def fetch() -> Mapping[str, Any]:
        # The key file may have changed: `bma-gateway token rotate` or `retire`.
        await asyncio.to_thread(issuer.reload)
        return issuer.jwks()

    return fetch


def embedded_trust(
    issuer: EmbeddedIssuer, *, min_refetch: float = 0.0, max_age: float = 5.0
) -> Trust:
    """The gateway's own keys: as trusted as the operator who holds the key file.

    Re-reading them costs one ``stat`` of the key file unless it changed, so an unknown kid
    may always look again (a key just added by ``bma-gateway token rotate``), and a retired
    key stops verifying within ``max_age`` seconds.
    """
    keys = KeySet(issuer.issuer, embedded_fetcher(issuer), min_refetch=min_refetch, max_age=max_age)
    lifetime = int(MAX_TOKEN_LIFETIME.total_seconds())
    return Trust(issuer.issuer, (ALGORITHM,), Level.SECRET, keys, lifetime)
