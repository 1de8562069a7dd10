"""gateway/auth/jwks.py: an issuer's JWKS from a file or a URL: cached, refetched for an unknown
key at most once a minute, a rotation at the issuer picked up, a retired key refused; an
unreachable JWKS is 503."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from gateway.auth.authenticator import Authenticator
from gateway.auth.issuer import EmbeddedIssuer, SigningKey
from gateway.auth.trust import TrustedIssuer, trust_for
from gateway.http.serving import free_port
from policies.principal import Level
from support import (
    IDP,
    QUERY,
    JwksServer,
    authenticate,
    bearer,
    reason_of,
    settings_for,
    start_gateway,
)


def test_a_retired_file_jwks_key_is_refused_after_refetch(tmp_path):
    idp = EmbeddedIssuer([SigningKey.generate()], issuer=IDP)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(idp.jwks()))
    trust = trust_for(TrustedIssuer(IDP, str(jwks)), min_refetch=0, max_age=0)
    authenticator = Authenticator([trust])
    old = idp.issue("partner", "p", "")
    idp.rotate()
    new = idp.issue("partner", "p", "")
    assert reason_of(authenticator, bearer(new)) == "unknown_key"  # not published yet
    jwks.write_text(json.dumps(idp.jwks()))
    assert authenticate(authenticator, bearer(new)).kind == "partner"
    assert authenticate(authenticator, bearer(old)).kind == "partner"
    idp.retire(idp.keys[0].kid)
    jwks.write_text(json.dumps(idp.jwks()))
    assert reason_of(authenticator, bearer(old)) == "unknown_key"


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    server = JwksServer(EmbeddedIssuer([SigningKey.generate()], issuer=IDP))
    server.server.start()
    yield server
    server.server.stop()


def test_a_token_of_an_issuer_with_a_jwks_url(db, traffy_url, idp: JwksServer):
    dead = f"http://127.0.0.1:{free_port()}/jwks"
    issuers = (
        TrustedIssuer(IDP, idp.url, ("ES256",), Level.CONFIDENTIAL),
        TrustedIssuer("https://down.example.test", dead, ("ES256",), Level.INTERNAL),
    )
    server, gw = start_gateway(settings_for(db, traffy_url, trusted_issuers=issuers))
    try:
        token = idp.issuer.issue("agency", "bma-finance", "tax:read", "confidential")
        assert gw.post(QUERY, headers=bearer(token)).status_code == 200
        assert gw.post(QUERY, headers=bearer(token)).status_code == 200
        assert idp.fetches == 1  # cached

        down = EmbeddedIssuer([SigningKey.generate()], issuer="https://down.example.test")
        response = gw.post(QUERY, headers=bearer(down.issue("partner", "p", "")))
        assert response.status_code == 503
        assert response.json()["errors"][0]["extensions"]["code"] == "AUTHENTICATION_UNAVAILABLE"
    finally:
        gw.client.close()
        server.stop()


def test_unknown_kids_refetch_at_most_once_a_minute(idp: JwksServer):
    authenticator = Authenticator([trust_for(TrustedIssuer(IDP, idp.url))])
    good = idp.issuer.issue("partner", "p", "")
    assert authenticate(authenticator, bearer(good)).issuer == IDP
    assert idp.fetches == 1
    for _ in range(5):
        forged = EmbeddedIssuer([SigningKey.generate()], issuer=IDP).issue("partner", "p", "")
        assert reason_of(authenticator, bearer(forged)) == "unknown_key"
    assert idp.fetches == 1  # the first fetch is under a minute old: no refetch


def test_a_rotation_at_the_issuer_is_picked_up(idp: JwksServer):
    trust = trust_for(TrustedIssuer(IDP, idp.url), min_refetch=0)
    authenticator = Authenticator([trust])
    old = idp.issuer.issue("partner", "p", "")
    assert authenticate(authenticator, bearer(old)).kind == "partner"
    idp.issuer.rotate()
    new = idp.issuer.issue("partner", "p", "")
    assert authenticate(authenticator, bearer(new)).kind == "partner"
    assert idp.fetches == 2
