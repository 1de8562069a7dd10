"""Token attacks: every forged, stale, misdirected or malformed credential is a 401 with its
reason and a ``WWW-Authenticate`` challenge — never an answer, never a fall-back to anonymous.

Tokens are forged by hand (base64url + HMAC/ECDSA) where pyjwt refuses to make them. The
attacks that need a trusted key — time claims that are not numbers, lifetimes beyond the
issuer's maximum, repeated JSON keys — are signed properly, by the embedded issuer and by an
outside identity provider whose JWKS is served on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import ECAlgorithm

from gateway.auth.api_keys import create_key, ensure_schema, revoke_key
from gateway.auth.issuer import MAX_TOKEN_LIFETIME, EmbeddedIssuer, SigningKey
from gateway.auth.trust import TrustedIssuer
from gateway.demo.embedded import DatabaseUrls
from policies.principal import Level
from support import IDP, Gateway, JwksServer, run, settings_for, start_gateway

QUERY = "{ districts { code } }"
HOUR = timedelta(hours=1)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(document: dict[str, Any]) -> str:
    return b64(json.dumps(document, separators=(",", ":")).encode())


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{segment(header)}.{segment(claims)}.{b64(signature)}"


def valid_claims(issuer: EmbeddedIssuer, **changes: Any) -> dict[str, Any]:
    """Claims the gateway accepts, with ``changes`` applied (None removes a claim)."""
    claims = issuer.claims(
        "partner", "utility-partner", "tax:read", "internal", None, "research", HOUR, None
    )
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def signed(
    issuer: EmbeddedIssuer, claims: dict[str, Any], key: SigningKey | None = None, **header: Any
) -> str:
    """Properly ES256-signed by ``key`` (default: the issuer's), with the issuer's kid."""
    key = key or issuer.current
    headers = {"kid": issuer.current.kid, **header}
    return jwt.encode(claims, key.private_key, algorithm="ES256", headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(response: Any) -> str:
    """The reason of a 401, after checking the answer gives nothing away."""
    body = response.json()
    assert response.status_code == 401, body
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    reason = error["extensions"]["reason"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(("Bearer ", "ApiKey ")), challenge
    assert f'error_description="{reason}"' in challenge
    return reason


def now() -> int:
    return int(time.time())


def _alg_none(issuer: EmbeddedIssuer) -> str:
    return forge({"alg": "none", "typ": "JWT", "kid": issuer.current.kid}, valid_claims(issuer))


def _alg_none_mixed_case(issuer: EmbeddedIssuer) -> str:
    return forge({"alg": "nOnE", "kid": issuer.current.kid}, valid_claims(issuer))


def _hs256_with_public_key(issuer: EmbeddedIssuer) -> str:
    """The classic key confusion: HMAC keyed with the issuer's public PEM."""
    public_pem = issuer.current.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.current.kid}
    signing_input = f"{segment(header)}.{segment(valid_claims(issuer))}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _hs256_with_public_jwk(issuer: EmbeddedIssuer) -> str:
    secret = json.dumps(issuer.current.public_jwk()).encode()
    header = {"alg": "HS256", "kid": issuer.current.kid}
    signing_input = f"{segment(header)}.{segment(valid_claims(issuer))}"
    return (
        f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    )


def _expired(issuer: EmbeddedIssuer) -> str:
    return signed(issuer, valid_claims(issuer, iat=now() - 7200, nbf=None, exp=now() - 3600))


def _expired_beyond_leeway(issuer: EmbeddedIssuer) -> str:
    # The test gateways' leeway is the default 30 s.
    return signed(issuer, valid_claims(issuer, iat=now() - 600, nbf=None, exp=now() - 45))


def _not_yet_valid_nbf(issuer: EmbeddedIssuer) -> str:
    return signed(issuer, valid_claims(issuer, nbf=now() + 3600, exp=now() + 7200))


def _issued_in_the_future(issuer: EmbeddedIssuer) -> str:
    return signed(issuer, valid_claims(issuer, iat=now() + 600, nbf=None, exp=now() + 7200))


def _wrong_issuer(issuer: EmbeddedIssuer) -> str:
    return signed(issuer, valid_claims(issuer, iss="https://idp.example.org"))


def _no_issuer(issuer: EmbeddedIssuer) -> str:
    return signed(issuer, valid_claims(issuer, iss=None))


def _wrong_audience(issuer: EmbeddedIssuer) -> str:
    return signed(issuer, valid_claims(issuer, aud="another-service"))


def _audience_list(issuer: EmbeddedIssuer) -> str:
    # Exact match only: a token for several services is not a token for this one.
    return signed(issuer, valid_claims(issuer, aud=["bma-gateway", "another-service"]))


def _unknown_kid(issuer: EmbeddedIssuer) -> str:
    return signed(issuer, valid_claims(issuer), kid="not-a-key-of-this-issuer")


def _no_kid(issuer: EmbeddedIssuer) -> str:
    return jwt.encode(valid_claims(issuer), issuer.current.private_key, algorithm="ES256")


def _foreign_key_with_our_kid(issuer: EmbeddedIssuer) -> str:
    return signed(issuer, valid_claims(issuer), key=SigningKey.generate())


def _tampered_payload(issuer: EmbeddedIssuer) -> str:
    header, _, signature = signed(issuer, valid_claims(issuer)).split(".")
    raised = segment(valid_claims(issuer, clearance="secret", scope="tax:read tax:personal"))
    return f"{header}.{raised}.{signature}"


def _tampered_header(issuer: EmbeddedIssuer) -> str:
    _, payload, signature = signed(issuer, valid_claims(issuer)).split(".")
    header = segment({"alg": "ES256", "kid": issuer.current.kid, "typ": "JWT", "x": 1})
    return f"{header}.{payload}.{signature}"


def _truncated_signature(issuer: EmbeddedIssuer) -> str:
    return signed(issuer, valid_claims(issuer))[:-10]


def _truncated_to_two_parts(issuer: EmbeddedIssuer) -> str:
    return signed(issuer, valid_claims(issuer)).rsplit(".", 1)[0]


def _truncated_mid_payload(issuer: EmbeddedIssuer) -> str:
    token = signed(issuer, valid_claims(issuer))
    return token[: token.index(".") + 21]


def _empty_signature(issuer: EmbeddedIssuer) -> str:
    return signed(issuer, valid_claims(issuer)).rsplit(".", 1)[0] + "."


def _oversized_header(issuer: EmbeddedIssuer) -> str:
    return signed(issuer, valid_claims(issuer), pad="A" * 9000)


def _missing(claim: str) -> Callable[[EmbeddedIssuer], str]:
    def make(issuer: EmbeddedIssuer) -> str:
        return signed(issuer, valid_claims(issuer, **{claim: None}))

    make.__name__ = f"_missing_{claim}"
    return make


def _claim(**changes: Any) -> Callable[[EmbeddedIssuer], str]:
    def make(issuer: EmbeddedIssuer) -> str:
        return signed(issuer, valid_claims(issuer, **changes))

    return make


ATTACKS: dict[str, tuple[Callable[[EmbeddedIssuer], str], str]] = {
    "alg none": (_alg_none, "algorithm_not_allowed"),
    "alg nOnE": (_alg_none_mixed_case, "algorithm_not_allowed"),
    "HS256 keyed with the public PEM": (_hs256_with_public_key, "algorithm_not_allowed"),
    "HS256 keyed with the public JWK": (_hs256_with_public_jwk, "algorithm_not_allowed"),
    "expired": (_expired, "token_expired"),
    "expired beyond the leeway": (_expired_beyond_leeway, "token_expired"),
    "not yet valid (nbf)": (_not_yet_valid_nbf, "not_yet_valid"),
    "issued in the future (iat)": (_issued_in_the_future, "not_yet_valid"),
    "wrong iss": (_wrong_issuer, "unknown_issuer"),
    "no iss": (_no_issuer, "missing_claim"),
    "wrong aud": (_wrong_audience, "invalid_audience"),
    "aud list": (_audience_list, "invalid_audience"),
    "unknown kid": (_unknown_kid, "unknown_key"),
    "no kid": (_no_kid, "malformed_token"),
    "another key under our kid": (_foreign_key_with_our_kid, "invalid_signature"),
    "tampered payload": (_tampered_payload, "invalid_signature"),
    "tampered header": (_tampered_header, "invalid_signature"),
    "truncated signature": (_truncated_signature, "invalid_signature"),
    "truncated to two parts": (_truncated_to_two_parts, "malformed_token"),
    "truncated mid-payload": (_truncated_mid_payload, "malformed_token"),
    "empty signature": (_empty_signature, "invalid_signature"),
    "oversized header": (_oversized_header, "malformed_token"),
    "missing exp": (_missing("exp"), "missing_claim"),
    "missing iat": (_missing("iat"), "missing_claim"),
    "missing aud": (_missing("aud"), "missing_claim"),
    "missing sub": (_missing("sub"), "missing_claim"),
    "missing bma_audience": (_missing("bma_audience"), "missing_claim"),
    "bma_audience anonymous": (_claim(bma_audience="anonymous"), "invalid_claim"),
    "clearance unknown": (_claim(clearance="top-secret"), "invalid_claim"),
    "district not in Bangkok": (_claim(district="9999"), "invalid_claim"),
    "district empty list": (_claim(district=[]), "invalid_claim"),
    "scope not a string": (_claim(scope={"tax:read": True}), "invalid_claim"),
    "purpose with spaces": (_claim(purpose="any purpose at all"), "invalid_claim"),
    "exp not a number": (_claim(exp="tomorrow"), "malformed_token"),
}


@pytest.mark.parametrize("name", ATTACKS)
def test_forged_or_bad_token_is_refused(anonymous: Gateway, issuer, name):
    make, reason = ATTACKS[name]
    response = anonymous.post(QUERY, headers=bearer(make(issuer)))
    assert refused(response) == reason


# --- signed by a trusted key: time claims, lifetimes, repeated keys ---------------------------
# Each case runs against the embedded issuer and an outside identity provider, each with the
# maximum lifetime the gateway allows its tokens.

OUTSIDE_MAX_LIFETIME = 3600


@dataclass(frozen=True)
class Signer:
    """An issuer the gateway trusts, the gateway, and how long its tokens may be valid."""

    issuer: EmbeddedIssuer
    gateway: Gateway
    max_lifetime: int


@pytest.fixture(scope="module")
def outside(db: DatabaseUrls, traffy_url: str) -> Iterator[Signer]:
    """An identity provider with its own key, its JWKS on loopback, trusted for an hour."""
    idp = JwksServer(EmbeddedIssuer([SigningKey.generate()], issuer=IDP))
    idp.server.start()
    trusted = TrustedIssuer(
        IDP, idp.url, ("ES256",), Level.INTERNAL, max_lifetime_seconds=OUTSIDE_MAX_LIFETIME
    )
    server, gw = start_gateway(settings_for(db, traffy_url, trusted_issuers=(trusted,)))
    yield Signer(idp.issuer, gw, OUTSIDE_MAX_LIFETIME)
    gw.client.close()
    server.stop()
    idp.server.stop()


@pytest.fixture(params=["embedded issuer", "outside issuer"])
def signer(request: pytest.FixtureRequest, anonymous: Gateway, issuer: EmbeddedIssuer) -> Signer:
    if request.param == "embedded issuer":
        return Signer(issuer, anonymous, int(MAX_TOKEN_LIFETIME.total_seconds()))
    outside: Signer = request.getfixturevalue("outside")
    return outside


def claims_text(issuer: EmbeddedIssuer, extra: str = "", **changes: Any) -> str:
    """Valid claims as JSON text, with ``extra`` members appended verbatim."""
    text = json.dumps(valid_claims(issuer, **changes), separators=(",", ":"))
    return text[:-1] + extra + "}"


def signed_text(issuer: EmbeddedIssuer, header: str, payload: str) -> str:
    """Header and payload exactly as given (repeated keys and all), ES256-signed by the
    issuer's current key: a valid signature over JSON no library would write."""
    signing_input = f"{b64(header.encode())}.{b64(payload.encode())}"
    signature = ECAlgorithm(ECAlgorithm.SHA256).sign(
        signing_input.encode(), issuer.current.private_key
    )
    return f"{signing_input}.{b64(signature)}"


def header_text(issuer: EmbeddedIssuer) -> str:
    return f'{{"alg":"ES256","typ":"JWT","kid":"{issuer.current.kid}"}}'


YEAR_9999 = 253402300799  # 9999-12-31T23:59:59Z

# name -> (token from an issuer and its maximum lifetime, the reason it is refused)
SIGNED_ATTACKS: dict[str, tuple[Callable[[EmbeddedIssuer, int], str], str]] = {
    "exp a numeric string": (
        lambda i, _: signed(i, valid_claims(i, exp=str(now() + 600))),
        "malformed_token",
    ),
    "exp a numeric string in 9999": (
        lambda i, _: signed(i, valid_claims(i, exp=str(YEAR_9999))),
        "malformed_token",
    ),
    "nbf a numeric string": (
        lambda i, _: signed(i, valid_claims(i, nbf=str(now()))),
        "malformed_token",
    ),
    "iat a numeric string": (
        lambda i, _: signed(i, valid_claims(i, iat=str(now()))),
        "malformed_token",
    ),
    "iat a boolean": (lambda i, _: signed(i, valid_claims(i, iat=True)), "malformed_token"),
    "nbf a number overflowing to infinity": (
        lambda i, _: signed_text(i, header_text(i), claims_text(i, ',"nbf":1e999', nbf=None)),
        "malformed_token",
    ),
    "nbf NaN": (
        lambda i, _: signed_text(i, header_text(i), claims_text(i, ',"nbf":NaN', nbf=None)),
        "malformed_token",
    ),
    "exp in 9999": (
        lambda i, _: signed(i, valid_claims(i, exp=YEAR_9999)),
        "invalid_claim",
    ),
    "valid one second longer than the issuer allows": (
        lambda i, most: signed(i, valid_claims(i, iat=now(), nbf=None, exp=now() + most + 1)),
        "invalid_claim",
    ),
    "issued long ago, expiring soon": (
        lambda i, most: signed(i, valid_claims(i, iat=now() - most, nbf=None, exp=now() + 600)),
        "invalid_claim",
    ),
    # Without `iat` the lifetime cannot be known: the gateway requires it.
    "no iat": (lambda i, _: signed(i, valid_claims(i, iat=None)), "missing_claim"),
    "clearance repeated": (
        lambda i, _: signed_text(i, header_text(i), claims_text(i, ',"clearance":"secret"')),
        "malformed_token",
    ),
    "exp repeated": (
        lambda i, _: signed_text(i, header_text(i), claims_text(i, f',"exp":{YEAR_9999}')),
        "malformed_token",
    ),
    "a key repeated in a nested object": (
        lambda i, _: signed_text(i, header_text(i), claims_text(i, ',"x":{"a":1,"a":2}')),
        "malformed_token",
    ),
    "kid repeated in the header": (
        lambda i, _: signed_text(
            i, header_text(i)[:-1] + f',"kid":"{i.current.kid}"}}', claims_text(i)
        ),
        "malformed_token",
    ),
    "alg repeated in the header": (
        lambda i, _: signed_text(
            i, f'{{"alg":"none","kid":"{i.current.kid}","alg":"ES256"}}', claims_text(i)
        ),
        "malformed_token",
    ),
}


@pytest.mark.parametrize("name", SIGNED_ATTACKS)
def test_a_validly_signed_token_with_bad_time_claims_or_repeated_keys(signer: Signer, name):
    make, reason = SIGNED_ATTACKS[name]
    response = signer.gateway.post(QUERY, headers=bearer(make(signer.issuer, signer.max_lifetime)))
    assert refused(response) == reason
    message = response.json()["errors"][0]["message"]
    if reason == "invalid_claim":
        assert f"at most {signer.max_lifetime:,} seconds" in message
    if "repeated" in name:
        assert "repeats the key" in message


def test_the_signed_controls_are_accepted(signer: Signer):
    """The bases of the cases above pass: hand-signed JSON without repeats, a lifetime of
    exactly the maximum, and a NumericDate with a fraction (RFC 7519 allows one)."""
    issuer, most = signer.issuer, signer.max_lifetime
    for token in (
        signed_text(issuer, header_text(issuer), claims_text(issuer)),
        signed(issuer, valid_claims(issuer, iat=now(), nbf=None, exp=now() + most)),
        signed(issuer, valid_claims(issuer, exp=now() + 600.5)),
    ):
        response = signer.gateway.post(QUERY, headers=bearer(token))
        assert response.status_code == 200, response.text


def test_the_same_token_unmodified_is_accepted(anonymous, issuer):
    """The control for the attacks above: their untampered base passes."""
    response = anonymous.post(QUERY, headers=bearer(signed(issuer, valid_claims(issuer))))
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["districts"]) == 50


def test_a_token_expired_within_the_leeway_is_accepted(anonymous, issuer):
    token = signed(issuer, valid_claims(issuer, iat=now() - 600, nbf=None, exp=now() - 5))
    assert anonymous.post(QUERY, headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Basic x", "Basic dXNlcjpwYXNz", "bearer a b", "Token abc", "", "eyJ"],
)
def test_garbage_in_the_authorization_header(anonymous, authorization):
    response = anonymous.post(QUERY, headers={"Authorization": authorization})
    assert refused(response) == "malformed_token"


def test_garbage_bearer_values(anonymous):
    for token in ("a.b.c", "....", "x" * 100, "e30", "e30.W10.AAAA"):
        response = anonymous.client.post(
            "/graphql", json={"query": QUERY}, headers={"Authorization": f"Bearer {token}"}
        )
        assert refused(response) == "malformed_token", token


def test_both_an_api_key_and_a_bearer_token(anonymous, issuer, db):
    _, key = run(_new_key(db.gateway))
    headers = {**bearer(signed(issuer, valid_claims(issuer))), "X-API-Key": key}
    assert refused(anonymous.post(QUERY, headers=headers)) == "ambiguous_credentials"


def test_two_authorization_headers(anonymous, issuer):
    token = signed(issuer, valid_claims(issuer))
    response = anonymous.client.post(
        "/graphql",
        json={"query": QUERY},
        headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")],
    )
    assert refused(response) == "ambiguous_credentials"


def test_a_revoked_api_key(anonymous, db):
    record, key = run(_new_key(db.gateway))
    run(_revoke(db.gateway, record.id))
    response = anonymous.post(QUERY, headers={"X-API-Key": key})
    assert refused(response) == "revoked_api_key"
    assert response.headers["www-authenticate"].startswith("ApiKey ")


@pytest.mark.parametrize(
    "key",
    [
        "bma_0123456789abcdef_" + "0" * 48,  # well formed, never issued
        "bma_0123456789abcdef",
        "not-a-key",
        "",
        "bma_" + "x" * 200,
    ],
)
def test_an_unknown_api_key(anonymous, key):
    assert refused(anonymous.post(QUERY, headers={"X-API-Key": key})) == "unknown_api_key"


def test_a_known_key_id_with_the_wrong_secret(anonymous, db):
    record, key = run(_new_key(db.gateway))
    forged = f"bma_{record.id}_{'f' * 48}"
    assert forged != key
    assert refused(anonymous.post(QUERY, headers={"X-API-Key": forged})) == "unknown_api_key"


def test_a_malformed_purpose_header(anonymous):
    for purpose in ("", "two words", "x" * 65, "../etc", "drop;table", "-research"):
        response = anonymous.post(QUERY, headers={"X-Purpose": purpose})
        assert refused(response) == "invalid_purpose", purpose


def test_get_requests_and_batches_are_authenticated_too(anonymous, issuer):
    bad = bearer(_expired(issuer))
    get = anonymous.client.get("/graphql", params={"query": QUERY}, headers=bad)
    assert refused(get) == "token_expired"
    batch = anonymous.client.post(
        "/graphql", json=[{"query": QUERY}, {"query": QUERY}], headers=bad
    )
    assert refused(batch) == "token_expired"


def test_refusals_name_no_secret(anonymous, issuer):
    """The 401 body says what is wrong with the token, not what the gateway holds."""
    body = anonymous.post(QUERY, headers=bearer(_foreign_key_with_our_kid(issuer))).text
    assert "PRIVATE" not in body and '"d"' not in body


async def _new_key(url: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        await ensure_schema(conn)
        return await create_key(conn, "attack-test", "test-org")
    finally:
        await conn.close()


async def _revoke(url: str, key_id: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await revoke_key(conn, key_id)
    finally:
        await conn.close()
