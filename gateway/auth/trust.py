"""The identity providers whose tokens the gateway accepts (``BMA_TRUSTED_ISSUERS``).

Each names the exact ``iss`` of its tokens, where its JSON Web Key Set is (an https URL or a
file), the algorithms its tokens are signed with — public-key ones only: a JWKS is public, so
an HMAC "key" from it would be a secret everyone knows, and ``none`` is never accepted — and
the highest clearance its tokens may claim, and how long its tokens may be valid (``iat`` to
``exp``), so that a token signed with a trusted key cannot be made to live for years.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass as plain_dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator
from pydantic.dataclasses import dataclass

from gateway.auth.jwks import KeySet, file_fetcher, url_fetcher
from policies.principal import Level

DEFAULT_AUDIENCE = "bma-gateway"  # the `aud` every token must carry, unless configured
MAX_LEEWAY_SECONDS = 60
DEFAULT_MAX_LIFETIME_SECONDS = 24 * 3600  # a token valid longer than a day is refused
MAX_LIFETIME_LIMIT_SECONDS = 30 * 24 * 3600  # the most an issuer may be configured for
ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)


def _level(raw: Any) -> Any:
    return Level.parse(raw) if isinstance(raw, str) else raw


Clearance = Annotated[
    Level, BeforeValidator(_level), PlainSerializer(lambda level: level.label, return_type=str)
]


@dataclass(config=ConfigDict(frozen=True))
class TrustedIssuer:
    """An identity provider whose tokens the gateway accepts."""

    issuer: str = Field(min_length=1)  # the exact `iss` of its tokens
    jwks: str = Field(min_length=1)  # an https/http URL or a file path of its JSON Web Key Set
    algorithms: tuple[str, ...] = ("ES256",)
    # The highest clearance its tokens may claim; anything above is lowered to this.
    max_clearance: Clearance = Level.PUBLIC
    # The longest a token may be valid, `exp` minus `iat`, in seconds; longer ones are refused.
    max_lifetime_seconds: int = Field(
        default=DEFAULT_MAX_LIFETIME_SECONDS, ge=1, le=MAX_LIFETIME_LIMIT_SECONDS, strict=True
    )

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = set(data) - {
                "issuer",
                "jwks",
                "algorithms",
                "max_clearance",
                "max_lifetime_seconds",
            }
            if unknown:
                raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
        return data

    @model_validator(mode="after")
    def _checked(self) -> TrustedIssuer:
        if not self.issuer.strip():
            raise ValueError("issuer must be a non-empty string (the tokens' `iss`)")
        if not self.algorithms:
            raise ValueError("algorithms must be a non-empty list of names")
        refused = [a for a in self.algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if refused:
            allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
            raise ValueError(
                f"algorithms: {', '.join(refused)} not allowed (public-key only: {allowed})"
            )
        if not self.jwks_is_url and not Path(self.jwks).expanduser().is_file():
            raise ValueError(f"jwks: no such file {self.jwks!r}")
        return self

    @property
    def jwks_is_url(self) -> bool:
        return self.jwks.startswith(("https://", "http://"))


@plain_dataclass(frozen=True)
class Trust:
    """What the authenticator trusts of an issuer: its name, algorithms, the clearance its
    tokens may grant, its keys, and how long its tokens may be valid."""

    issuer: str
    algorithms: tuple[str, ...]
    max_clearance: Level
    keys: KeySet
    max_lifetime: int  # seconds from `iat` to `exp`


def trust_for(config: TrustedIssuer, **key_set_options: float) -> Trust:
    fetch = (
        url_fetcher(config.jwks)
        if config.jwks_is_url
        else file_fetcher(Path(config.jwks).expanduser())
    )
    keys = KeySet(config.issuer, fetch, **key_set_options)
    return Trust(
        config.issuer, config.algorithms, config.max_clearance, keys, config.max_lifetime_seconds
    )
