"""gateway/cli/credentials.py: `bma-gateway keys` (create, list, revoke) and `bma-gateway token`
(issue, rotate, retire)."""

from __future__ import annotations

import pytest

from gateway.auth.api_keys import find_key
from gateway.auth.authenticator import Authenticator
from gateway.auth.issuer import EmbeddedIssuer, embedded_trust
from gateway.cli import main as cli
from support import (
    QUERY,
    Gateway,
    authenticate,
    bearer,
    issuer_key_file,
    run,
    token_claims,
    with_conn,
)


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
    record = run(with_conn(url, lambda conn: find_key(conn, key_id)))
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
    claims = token_claims(token)
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


@pytest.mark.parametrize(
    ("scopes", "unknown", "hint"),
    [
        ("tax:reed", "tax:reed", ""),
        ("tax:read,tax:personal", "tax:read,tax:personal", "separated by spaces"),
        ("tax:read registry:raed", "registry:raed", ""),
    ],
)
def test_token_issue_refuses_a_scope_the_policy_does_not_name(
    tmp_path, capsys, monkeypatch, scopes, unknown, hint
):
    monkeypatch.delenv("BMA_POLICY_FILE", raising=False)
    key_file = tmp_path / "k.pem"
    EmbeddedIssuer.open(key_file)
    args = ["token", "issue", "--audience", "partner", "--org", "p", "--key-file", str(key_file)]
    assert cli([*args, "--scopes", scopes]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert f"--scopes: unknown scope {unknown!r}" in line and hint in line
    # The valid ones listed: the policy's, and the gateway's own metrics:read.
    assert "tax:read, tax:personal" not in line  # sorted, not echoed
    for valid in ("audit:read", "metrics:read", "registry:read", "tax:personal", "tax:read"):
        assert valid in line
    assert cli([*args, "--scopes", "tax:read  metrics:read"]) == 0
    token = capsys.readouterr().out.strip()
    assert token_claims(token)["scope"] == "tax:read metrics:read"


def test_token_issue_says_when_it_creates_a_signing_key(tmp_path, capsys):
    key_file = tmp_path / "fresh" / "issuer-key.pem"
    args = ["token", "issue", "--audience", "partner", "--org", "p", "--key-file", str(key_file)]
    assert cli(args) == 0
    created = capsys.readouterr()
    kid = EmbeddedIssuer.open(key_file).current.kid
    assert created.out.count(".") == 2  # the token alone on stdout
    assert f"no issuer key file at {key_file}" in created.err and kid in created.err
    assert "BMA_ISSUER_KEY_FILE" in created.err
    assert cli(args) == 0  # the key exists now: nothing to say
    assert capsys.readouterr().err == ""
