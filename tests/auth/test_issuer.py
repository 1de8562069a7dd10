"""gateway/auth/issuer.py: the embedded issuer's key file (private, its key id stable), its
public JWKS served by the gateway (none without an issuer), key rotation: an old token
holds until its key is retired, and a key rotated by the CLI reaches a running gateway; and
no token valid longer than the lifetime the issuer declares."""

from __future__ import annotations

from datetime import timedelta

import httpx
import jwt
import pytest

from gateway.auth.authenticator import Authenticator
from gateway.auth.issuer import MAX_TOKEN_LIFETIME, EmbeddedIssuer, embedded_trust, jwk_thumbprint
from gateway.cli import main as cli
from gateway.http.app import create_app
from support import (
    QUERY,
    Gateway,
    authenticate,
    bearer,
    reason_of,
    run,
    settings_for,
    start_gateway,
)


def test_the_gateway_serves_its_public_jwks(anonymous: Gateway, issuer):
    response = anonymous.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json() == issuer.jwks()
    for key in response.json()["keys"]:
        assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert "d" not in key
        assert key["kid"] == jwk_thumbprint(key)
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")


def test_no_embedded_issuer_no_jwks(db, traffy_url):
    app = create_app(settings_for(db, traffy_url, issuer_key_file=None))

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # no lifespan: no connector is started
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.get("/.well-known/jwks.json")

    assert run(get()).status_code == 404


def test_the_key_file_is_private_and_the_kid_stable(tmp_path):
    path = tmp_path / "keys" / "issuer.pem"
    first = EmbeddedIssuer.open(path)
    assert path.stat().st_mode & 0o077 == 0
    again = EmbeddedIssuer.open(path)
    assert again.current.kid == first.current.kid
    assert b"PRIVATE KEY" in path.read_bytes()


def test_rotation_keeps_old_tokens_until_their_key_is_retired(tmp_path):
    issuer = EmbeddedIssuer.open(tmp_path / "issuer.pem")
    authenticator = Authenticator([embedded_trust(issuer, max_age=0)])
    old = issuer.issue("partner", "p", "tax:read")
    old_kid = issuer.current.kid
    issuer.rotate()
    new = issuer.issue("partner", "p", "tax:read")
    assert issuer.current.kid != old_kid
    assert {k["kid"] for k in issuer.jwks()["keys"]} == {old_kid, issuer.current.kid}
    assert authenticate(authenticator, bearer(old)).kind == "partner"
    assert authenticate(authenticator, bearer(new)).kind == "partner"

    issuer.retire(old_kid)
    assert reason_of(authenticator, bearer(old)) == "unknown_key"
    assert authenticate(authenticator, bearer(new)).kind == "partner"


def test_a_key_rotated_by_the_cli_reaches_a_running_gateway(db, traffy_url, tmp_path):
    key_file = tmp_path / "issuer.pem"
    server, gw = start_gateway(settings_for(db, traffy_url, issuer_key_file=key_file))
    try:
        first = EmbeddedIssuer.open(key_file)
        old = first.issue("partner", "p", "tax:read")
        assert gw.post(QUERY, headers=bearer(old)).status_code == 200

        assert cli(["token", "rotate", "--key-file", str(key_file)]) == 0
        new_token = EmbeddedIssuer.open(key_file).issue("partner", "p", "tax:read")
        assert gw.post(QUERY, headers=bearer(new_token)).status_code == 200
        assert gw.post(QUERY, headers=bearer(old)).status_code == 200
        kids = {k["kid"] for k in gw.client.get("/.well-known/jwks.json").json()["keys"]}
        assert len(kids) == 2 and first.current.kid in kids
    finally:
        gw.client.close()
        server.stop()


def test_no_token_longer_than_the_lifetime_it_declares(tmp_path):
    """The embedded issuer refuses to sign what the gateway would refuse to accept."""
    issuer = EmbeddedIssuer.open(tmp_path / "key.pem")
    assert embedded_trust(issuer).max_lifetime == MAX_TOKEN_LIFETIME.total_seconds()
    token = issuer.issue("partner", "p", "", ttl=MAX_TOKEN_LIFETIME)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == MAX_TOKEN_LIFETIME.total_seconds()
    with pytest.raises(ValueError, match="at most 30 days"):
        issuer.issue("partner", "p", "", ttl=MAX_TOKEN_LIFETIME + timedelta(seconds=1))
