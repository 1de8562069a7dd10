"""Credentials that work: the principal each one proves, key rotation, JWKS from a file and
from a URL, the gateway's own JWKS, API key storage and the ``keys``/``token`` commands."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.auth.api_keys import ApiKeyStore, create_key, ensure_schema, find_key, revoke_key
from gateway.auth.authenticator import Authenticator
from gateway.auth.issuer import EmbeddedIssuer, SigningKey, embedded_trust, jwk_thumbprint
from gateway.auth.trust import TrustedIssuer, trust_for
from gateway.cli import main as cli
from gateway.demo.credentials import ensure_demo_key
from gateway.errors import AuthenticationUnavailable as AuthUnavailable
from gateway.errors import Unauthenticated as AuthError
from gateway.http.app import create_app
from gateway.http.serving import BackgroundServer, free_port
from gateway.settings import ConfigError, Settings
from policies.principal import ANONYMOUS, Level, Principal
from support import REQUIRED_ENV, Gateway, issuer_key_file, run, settings_for, sql, start_gateway

QUERY = "{ districts { code } }"
IDP = "https://idp.example.test"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def authenticate(authenticator: Authenticator, headers: dict[str, str]) -> Principal:
    return run(authenticator.authenticate(headers))


def reason_of(authenticator: Authenticator, headers: dict[str, str]) -> str:
    with pytest.raises(AuthError) as refused:
        authenticate(authenticator, headers)
    return refused.value.reason


async def _with_conn(url: str, operation: Any) -> Any:
    conn = await asyncpg.connect(url)
    try:
        await ensure_schema(conn)
        return await operation(conn)
    finally:
        await conn.close()


def new_key(url: str, name: str = "test-app", org: str = "test-org") -> tuple[Any, str]:
    return run(_with_conn(url, lambda conn: create_key(conn, name, org)))


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
    claims = issuer_claims(token)
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


def test_level_parse():
    assert Level.parse("confidential") is Level.CONFIDENTIAL
    assert Level.parse(" Public ") is Level.PUBLIC
    assert Level.parse("ลับมาก") is Level.SECRET
    assert Level.INTERNAL.label == "internal" and Level.INTERNAL.thai == "ใช้ภายใน"
    assert Level.PUBLIC < Level.INTERNAL < Level.CONFIDENTIAL < Level.SECRET
    with pytest.raises(ValueError):
        Level.parse("top-secret")


def issuer_claims(token: str) -> dict[str, Any]:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})


# --- over HTTP ------------------------------------------------------------------------------


def test_a_valid_partner_token_is_answered(anonymous: Gateway, issuer):
    token = issuer.issue("partner", "utility-partner", "tax:read", "internal", purpose="research")
    response = anonymous.post(QUERY, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["districts"]) == 50


def test_a_valid_api_key_is_answered_and_its_use_recorded(anonymous: Gateway, db):
    record, key = new_key(db.gateway)
    response = anonymous.post(QUERY, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["districts"]) == 50
    [row] = sql(db.gateway, "SELECT last_used_at FROM gateway.api_keys WHERE id = $1", record.id)
    assert row["last_used_at"] is not None


def test_an_api_key_makes_an_app_principal(db):
    record, key = new_key(db.gateway, "civic-dashboard", "Open Data Club")

    async def check() -> Principal:
        store = ApiKeyStore(db.gateway)
        await store.start()
        try:
            return await Authenticator(api_keys=store).authenticate({"X-API-Key": key})
        finally:
            await store.stop()

    assert run(check()) == Principal(
        kind="app",
        subject=f"key:{record.id}",
        organisation="Open Data Club",
        clearance=Level.PUBLIC,
        credential_id=record.id,
    )


def test_only_a_hash_of_the_secret_is_stored(db):
    record, key = new_key(db.gateway)
    secret = key.rsplit("_", 1)[1]
    assert len(bytes.fromhex(secret)) * 8 >= 128
    [row] = sql(db.gateway, "SELECT * FROM gateway.api_keys WHERE id = $1", record.id)
    assert bytes(row["secret_sha256"]) == hashlib.sha256(secret.encode()).digest()
    assert secret not in repr(row) and key not in repr(row)


def test_revocation_takes_effect_within_the_cache_time(db):
    record, key = new_key(db.gateway)

    async def check(cache_seconds: float) -> list[str]:
        store = ApiKeyStore(db.gateway, cache_seconds=cache_seconds)
        await store.start()
        authenticator = Authenticator(api_keys=store)
        outcomes = []
        try:
            await authenticator.authenticate({"X-API-Key": key})
            outcomes.append("accepted")
            await _with_conn(db.gateway, lambda conn: revoke_key(conn, record.id))
            try:
                await authenticator.authenticate({"X-API-Key": key})
                outcomes.append("accepted")
            except AuthError as exc:
                outcomes.append(exc.reason)
        finally:
            await store.stop()
        return outcomes

    # A long cache still holds the key it read before the revocation ...
    assert run(check(60)) == ["accepted", "accepted"]
    # ... and a fresh read sees the revocation at once (the gateway's default cache is 5 s).
    record, key = new_key(db.gateway)
    assert run(check(0)) == ["accepted", "revoked_api_key"]


def test_an_unreachable_key_database_is_503_not_anonymous():
    async def check() -> None:
        store = ApiKeyStore(f"postgresql://nobody@127.0.0.1:{free_port()}/none", timeout=2)
        await store.start()
        try:
            await Authenticator(api_keys=store).authenticate(
                {"X-API-Key": "bma_" + "0" * 16 + "_" + "0" * 48}
            )
        finally:
            await store.stop()

    with pytest.raises(AuthUnavailable):
        run(check())


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


# --- key rotation ---------------------------------------------------------------------------


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


# --- JWKS from a URL ------------------------------------------------------------------------


class JwksServer:
    """An identity provider's JWKS endpoint on a loopback port, counting fetches."""

    def __init__(self, issuer: EmbeddedIssuer) -> None:
        self.issuer = issuer
        self.fetches = 0
        app = Starlette(routes=[Route("/jwks", self.serve)])
        self.server = BackgroundServer(app)

    async def serve(self, _request: Request) -> Response:
        self.fetches += 1
        return JSONResponse(self.issuer.jwks())

    @property
    def url(self) -> str:
        return f"{self.server.url}/jwks"


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


# --- settings -------------------------------------------------------------------------------


def test_authentication_settings_from_the_environment(tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    issuers = [
        {"issuer": IDP, "jwks": "https://idp.example.test/jwks", "max_clearance": "secret"},
        {"issuer": "file-idp", "jwks": str(jwks), "algorithms": ["ES256", "RS256"]},
    ]
    env = {
        **REQUIRED_ENV,
        "BMA_GATEWAY_DATABASE_URL": "postgresql://x/gateway",
        "BMA_JWT_AUDIENCE": "bma-gateway-test",
        "BMA_JWT_LEEWAY": "60",
        "BMA_TRUSTED_ISSUERS": json.dumps(issuers),
        "BMA_ISSUER_KEY_FILE": str(tmp_path / "issuer.pem"),
        "BMA_API_KEY_CACHE_SECONDS": "2",
    }
    settings = Settings.from_env(env)
    assert settings.gateway_database_url == "postgresql://x/gateway"
    assert settings.jwt_audience == "bma-gateway-test" and settings.jwt_leeway == 60
    assert settings.trusted_issuers == (
        TrustedIssuer(IDP, "https://idp.example.test/jwks", ("ES256",), Level.SECRET),
        TrustedIssuer("file-idp", str(jwks), ("ES256", "RS256"), Level.PUBLIC),
    )
    assert settings.issuer_key_file == tmp_path / "issuer.pem"
    assert settings.api_key_cache_seconds == 2
    assert Settings.from_env(settings.to_env()) == settings


def test_authentication_defaults():
    settings = Settings.from_env(REQUIRED_ENV)
    assert settings.gateway_database_url is None and settings.issuer_key_file is None
    assert settings.trusted_issuers == ()
    assert (settings.jwt_audience, settings.jwt_leeway) == ("bma-gateway", 30)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BMA_JWT_LEEWAY", "61", "BMA_JWT_LEEWAY"),
        ("BMA_JWT_LEEWAY", "-1", "BMA_JWT_LEEWAY"),
        ("BMA_TRUSTED_ISSUERS", "{", "not valid JSON"),
        ("BMA_TRUSTED_ISSUERS", '{"issuer": "x"}', "JSON list"),
        (
            "BMA_TRUSTED_ISSUERS",
            '[{"issuer": "x", "jwks": "https://a/j", "algorithms": ["HS256"]}]',
            "HS256",
        ),
        (
            "BMA_TRUSTED_ISSUERS",
            '[{"issuer": "x", "jwks": "https://a/j", "algorithms": ["none"]}]',
            "none",
        ),
        (
            "BMA_TRUSTED_ISSUERS",
            '[{"issuer": "x", "jwks": "https://a/j", "max_clearance": "top"}]',
            "max_clearance",
        ),
        ("BMA_TRUSTED_ISSUERS", '[{"issuer": "x", "jwks": "/no/such/file.json"}]', "no such file"),
        (
            "BMA_TRUSTED_ISSUERS",
            '[{"issuer": "x", "jwks": "https://a/j", "alg": ["ES256"]}]',
            "unknown keys",
        ),
        ("BMA_TRUSTED_ISSUERS", '[{"jwks": "https://a/j"}]', "issuer"),
        (
            "BMA_TRUSTED_ISSUERS",
            '[{"issuer": "x", "jwks": "https://a/j"}, {"issuer": "x", "jwks": "https://b/j"}]',
            "twice",
        ),
        ("BMA_API_KEY_CACHE_SECONDS", "120", "BMA_API_KEY_CACHE_SECONDS"),
    ],
)
def test_bad_authentication_settings_name_the_variable(variable, value, message):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**REQUIRED_ENV, variable: value})
    assert message in str(error.value)
    assert variable in str(error.value) or variable == "BMA_TRUSTED_ISSUERS"
    if variable == "BMA_TRUSTED_ISSUERS":
        assert "BMA_TRUSTED_ISSUERS" in str(error.value)


def test_the_embedded_issuer_name_is_reserved(tmp_path):
    env = {
        **REQUIRED_ENV,
        "BMA_ISSUER_KEY_FILE": str(tmp_path / "k.pem"),
        "BMA_TRUSTED_ISSUERS": '[{"issuer": "bma-gateway-embedded", "jwks": "https://a/j"}]',
    }
    with pytest.raises(ConfigError, match="BMA_TRUSTED_ISSUERS"):
        Settings.from_env(env)


# --- the CLI --------------------------------------------------------------------------------


def test_keys_create_list_revoke(db, anonymous: Gateway, capsys):
    url = db.gateway
    assert (
        cli(["keys", "create", "--name", "traffic-app", "--org", "KMITL", "--database-url", url])
        == 0
    )
    created = capsys.readouterr()
    key = created.out.strip()
    key_id = key.split("_")[1]
    assert key.startswith("bma_") and "cannot show it again" in created.err
    assert anonymous.post(QUERY, headers={"X-API-Key": key}).status_code == 200

    assert cli(["keys", "list", "--database-url", url]) == 0
    listed = capsys.readouterr().out
    [line] = [line for line in listed.splitlines() if line.startswith(key_id)]
    assert "traffic-app" in line and "KMITL" in line and line.rstrip().endswith("active")
    assert key.split("_")[2] not in listed  # never the secret

    assert cli(["keys", "revoke", key_id, "--database-url", url]) == 0
    assert "Revoked" in capsys.readouterr().out
    record = run(_with_conn(url, lambda conn: find_key(conn, key_id)))
    assert record.revoked
    assert cli(["keys", "list", "--database-url", url]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith(key_id)]
    assert "revoked" in line

    assert cli(["keys", "revoke", "0" * 16, "--database-url", url]) == 1


def test_keys_need_a_database(monkeypatch, capsys):
    monkeypatch.delenv("BMA_GATEWAY_DATABASE_URL", raising=False)
    assert cli(["keys", "list"]) == 2
    assert "BMA_GATEWAY_DATABASE_URL" in capsys.readouterr().err


def test_token_issue_makes_a_token_the_gateway_accepts(anonymous: Gateway, issuer, capsys):
    args = [
        "token", "issue", "--audience", "agency", "--org", "bma-district-1039",
        "--scopes", "tax:read registry:read", "--clearance", "confidential",
        "--district", "1039", "--purpose", "district-service", "--ttl", "2h",
        "--key-file", str(issuer_key_file()),
    ]  # fmt: skip
    assert cli(args) == 0
    token = capsys.readouterr().out.strip()
    assert anonymous.post(QUERY, headers=bearer(token)).status_code == 200
    principal = authenticate(Authenticator([embedded_trust(issuer)]), bearer(token))
    assert principal.kind == "agency" and principal.organisation == "bma-district-1039"
    assert principal.scopes == frozenset({"tax:read", "registry:read"})
    assert principal.districts == frozenset({"1039"}) and principal.purpose == "district-service"
    claims = issuer_claims(token)
    assert claims["exp"] - claims["iat"] == 7200


@pytest.mark.parametrize(
    "extra",
    [["--ttl", "0"], ["--ttl", "31d"], ["--ttl", "soon"], ["--district", "9999"]],
)
def test_token_issue_refuses_bad_arguments(tmp_path, extra, capsys):
    args = ["token", "issue", "--audience", "partner", "--org", "p", "--key-file"]
    assert cli([*args, str(tmp_path / "k.pem"), *extra]) == 2
    assert capsys.readouterr().out == ""


def test_token_retire_by_cli(tmp_path, capsys):
    key_file = tmp_path / "k.pem"
    old_kid = EmbeddedIssuer.open(key_file).current.kid
    assert cli(["token", "rotate", "--key-file", str(key_file)]) == 0
    new_kid = capsys.readouterr().out.strip()
    assert cli(["token", "retire", f"--kid={old_kid}", "--key-file", str(key_file)]) == 0
    assert [k.kid for k in EmbeddedIssuer.open(key_file).keys] == [new_kid]
    assert (
        cli(["token", "retire", f"--kid={new_kid}", "--key-file", str(key_file)]) == 2
    )  # the only key


# --- the demo's API key ---------------------------------------------------------------------


def test_the_demo_key_is_reused_while_valid(db, tmp_path: Path):
    path = tmp_path / "demo-api-key"
    first = ensure_demo_key(db.gateway, path)
    assert ensure_demo_key(db.gateway, path) == first
    assert path.read_text().strip() == first and path.stat().st_mode & 0o077 == 0
    key_id = first.split("_")[1]
    run(_with_conn(db.gateway, lambda conn: revoke_key(conn, key_id)))
    replaced = ensure_demo_key(db.gateway, path)
    assert replaced != first and path.read_text().strip() == replaced
    [row] = sql(
        db.gateway, "SELECT name FROM gateway.api_keys WHERE id = $1", replaced.split("_")[1]
    )
    assert row["name"] == "demo"
