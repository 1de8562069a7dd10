"""gateway/auth/authenticator.py: the principal each credential proves (none, a partner's or
an agency's token, districts and purpose), clearance capped by the issuer, the issuer's own
algorithms, and a token answered over HTTP."""

from __future__ import annotations

import json

from gateway.auth.authenticator import Authenticator
from gateway.auth.issuer import EmbeddedIssuer, SigningKey, embedded_trust
from gateway.auth.trust import TrustedIssuer, trust_for
from policies.principal import ANONYMOUS, Level, Principal
from support import IDP, QUERY, Gateway, authenticate, bearer, reason_of, token_claims

# --- principals -----------------------------------------------------------------------------


def test_no_credentials_is_anonymous():
    authenticator = Authenticator()
    assert authenticate(authenticator, {}) is ANONYMOUS
    with_purpose = authenticate(authenticator, {"X-Purpose": "Research"})
    assert with_purpose.kind == "anonymous" and with_purpose.purpose == "research"


def test_a_partner_token_makes_a_partner(issuer):
    token = issuer.issue(
        "partner", "utility-partner", "tax:read registry:read", "internal", purpose="research"
    )
    principal = authenticate(Authenticator([embedded_trust(issuer)]), bearer(token))
    claims = token_claims(token)
    assert principal == Principal(
        kind="partner",
        subject="partner:utility-partner",
        organisation="utility-partner",
        clearance=Level.INTERNAL,
        scopes=frozenset({"tax:read", "registry:read"}),
        districts=None,
        purpose="research",
        credential_id=claims["jti"],
        issuer="bma-gateway-embedded",
    )


def test_an_agency_token_with_a_district_and_a_purpose_header(issuer):
    token = issuer.issue(
        "agency", "bma-district-1039", ["registry:read"], "confidential", district="1039"
    )
    headers = {**bearer(token), "x-purpose": "district-service"}
    principal = authenticate(Authenticator([embedded_trust(issuer)]), headers)
    assert principal.kind == "agency"
    assert principal.clearance is Level.CONFIDENTIAL
    assert principal.districts == frozenset({"1039"})
    assert principal.purpose == "district-service"


def test_the_purpose_header_overrides_the_token_claim(issuer):
    token = issuer.issue("partner", "p", "tax:read", purpose="research")
    headers = {**bearer(token), "X-Purpose": "tax-collection"}
    assert authenticate(Authenticator([embedded_trust(issuer)]), headers).purpose == (
        "tax-collection"
    )


def test_several_districts(issuer):
    token = issuer.issue("agency", "bma", "", "internal", district=["1039", "1001"])
    principal = authenticate(Authenticator([embedded_trust(issuer)]), bearer(token))
    assert principal.districts == frozenset({"1001", "1039"})


def test_grants_leave_out_who_and_keep_what(issuer):
    trust = Authenticator([embedded_trust(issuer)])
    one = authenticate(trust, bearer(issuer.issue("partner", "a", "x y", subject="alice")))
    two = authenticate(trust, bearer(issuer.issue("partner", "b", "y x", subject="bob")))
    assert one.subject != two.subject and one.credential_id != two.credential_id
    assert one.grants == two.grants == ("partner", Level.PUBLIC, ("x", "y"), None, None)
    assert hash(one.grants) == hash(two.grants)
    wider = authenticate(trust, bearer(issuer.issue("partner", "a", "x y", "internal")))
    assert wider.grants != one.grants


def test_clearance_is_capped_by_the_issuer(tmp_path):
    idp = EmbeddedIssuer([SigningKey.generate()], issuer=IDP)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(idp.jwks()))
    config = TrustedIssuer(IDP, str(jwks), ("ES256",), Level.INTERNAL)
    token = idp.issue("agency", "somewhere", "tax:read", "secret")
    principal = authenticate(Authenticator([trust_for(config)]), bearer(token))
    assert principal.clearance is Level.INTERNAL
    assert principal.issuer == IDP


def test_the_algorithm_list_is_the_issuers(tmp_path):
    """An ES256 token from an issuer configured for RS256 only is refused before verifying."""
    idp = EmbeddedIssuer([SigningKey.generate()], issuer=IDP)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(idp.jwks()))
    config = TrustedIssuer(IDP, str(jwks), ("RS256",), Level.INTERNAL)
    token = idp.issue("partner", "p", "")
    assert reason_of(Authenticator([trust_for(config)]), bearer(token)) == "algorithm_not_allowed"


# --- over HTTP ------------------------------------------------------------------------------


def test_a_valid_partner_token_is_answered(anonymous: Gateway, issuer):
    token = issuer.issue("partner", "utility-partner", "tax:read", "internal", purpose="research")
    response = anonymous.post(QUERY, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["districts"]) == 50
