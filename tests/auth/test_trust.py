"""Trusted issuers: public-key algorithms only, a JWKS that exists, a clearance they may grant."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from gateway.auth.trust import (
    ASYMMETRIC_ALGORITHMS,
    DEFAULT_MAX_LIFETIME_SECONDS,
    MAX_LIFETIME_LIMIT_SECONDS,
    Trust,
    TrustedIssuer,
    trust_for,
)
from policies.principal import Level

ADAPTER = TypeAdapter(TrustedIssuer)
IDP = "https://idp.bangkok.go.th"
JWKS_URL = "https://idp.bangkok.go.th/.well-known/jwks.json"


def trusted(**given: Any) -> TrustedIssuer:
    return ADAPTER.validate_python({"issuer": IDP, "jwks": JWKS_URL, **given})


def refusal(**given: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        trusted(**given)
    return str(raised.value)


def test_defaults():
    config = trusted()
    assert config.issuer == IDP
    assert config.algorithms == ("ES256",)
    assert config.max_clearance is Level.PUBLIC  # grants nothing unless told
    assert config.max_lifetime_seconds == DEFAULT_MAX_LIFETIME_SECONDS == 86400
    assert config.jwks_is_url


@pytest.mark.parametrize("algorithm", sorted(ASYMMETRIC_ALGORITHMS))
def test_public_key_algorithms_accepted(algorithm):
    assert trusted(algorithms=[algorithm]).algorithms == (algorithm,)


@pytest.mark.parametrize("algorithm", ["none", "HS256", "HS512", "es256", ""])
def test_other_algorithms_refused(algorithm):
    message = refusal(algorithms=["RS256", algorithm])
    assert f"algorithms: {algorithm} not allowed" in message
    assert "public-key only" in message


def test_no_algorithms_refused():
    assert "algorithms must be a non-empty list" in refusal(algorithms=[])


def test_max_clearance_from_text_dumped_as_its_label():
    config = trusted(max_clearance="Confidential")
    assert config.max_clearance is Level.CONFIDENTIAL
    assert ADAPTER.dump_python(config)["max_clearance"] == "confidential"
    dumped = orjson.loads(ADAPTER.dump_json(config))
    assert dumped == {
        "issuer": IDP,
        "jwks": JWKS_URL,
        "algorithms": ["ES256"],
        "max_clearance": "confidential",
        "max_lifetime_seconds": 86400,
    }
    assert ADAPTER.validate_python(dumped) == config  # round trip
    assert trusted(max_clearance="ลับมาก").max_clearance is Level.SECRET
    assert trusted(max_clearance=Level.INTERNAL).max_clearance is Level.INTERNAL


def test_max_lifetime_in_whole_seconds_within_bounds():
    assert trusted(max_lifetime_seconds=3600).max_lifetime_seconds == 3600
    assert trusted(max_lifetime_seconds=MAX_LIFETIME_LIMIT_SECONDS).max_lifetime_seconds == (
        30 * 86400
    )
    for wrong in (0, -1, MAX_LIFETIME_LIMIT_SECONDS + 1, "3600", 3600.5, True):
        assert "max_lifetime_seconds" in refusal(max_lifetime_seconds=wrong), wrong


def test_unknown_clearance_refused():
    assert "unknown classification level 'top-secret'" in refusal(max_clearance="top-secret")


def test_unknown_keys_refused_by_name():
    message = refusal(audience="x", colour="red")
    assert "unknown keys: audience, colour" in message


@pytest.mark.parametrize("issuer", ["", "   "])
def test_empty_issuer_refused(issuer):
    message = refusal(issuer=issuer)
    assert "issuer" in message


def test_jwks_file_must_exist(tmp_path: Path):
    missing = tmp_path / "nowhere.json"
    assert f"jwks: no such file {str(missing)!r}" in refusal(jwks=str(missing))
    assert "jwks: no such file" in refusal(jwks=str(tmp_path))  # a directory is no file
    present = tmp_path / "jwks.json"
    present.write_text('{"keys": []}')
    config = trusted(jwks=str(present))
    assert not config.jwks_is_url


def test_http_urls_are_urls_not_files():
    assert trusted(jwks="http://idp.internal/jwks.json").jwks_is_url


def test_frozen():
    config = trusted()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.issuer = "https://evil.example"  # type: ignore[misc]
    assert config.issuer == IDP


async def test_trust_for_a_jwks_file_reads_its_keys(tmp_path: Path, issuer):
    path = tmp_path / "jwks.json"
    path.write_bytes(orjson.dumps(issuer.jwks()))
    config = trusted(jwks=str(path), algorithms=["ES256"], max_clearance="secret")
    trust = trust_for(config)
    assert isinstance(trust, Trust)
    assert (trust.issuer, trust.algorithms, trust.max_clearance, trust.max_lifetime) == (
        IDP,
        ("ES256",),
        Level.SECRET,
        86400,
    )
    key = await trust.keys.key(issuer.current.kid)
    assert key is not None
    assert key.key_id == issuer.current.kid
    assert await trust.keys.key("a-made-up-kid") is None
