"""``bma-gateway schema print``: each audience's SDL is what its introspection answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import CliRun, Gateway, audit_cli, introspected_sdl, token_claims

# Every principal of the suites (conftest.principals) whose grants make a schema of their own
# (the one without a purpose sees what the officer sees: purposes never hide a field).
AUDIENCES = ["anonymous", "app", "partner", "officer", "finance", "dpo"]


def cli_arguments(headers: dict[str, str]) -> list[str]:
    """``schema print``'s options for the principal ``headers`` present: its audience, and
    the scopes and clearance its token carries."""
    if not headers:
        return ["--audience", "anonymous"]
    if "X-API-Key" in headers:
        return ["--audience", "app"]
    claims = token_claims(headers["Authorization"].removeprefix("Bearer "))
    return [
        "--audience",
        claims["bma_audience"],
        "--scopes",
        claims["scope"],
        "--clearance",
        claims["clearance"],
    ]


def schema_print(capsys: pytest.CaptureFixture[str], *argv: str) -> CliRun:
    return audit_cli(capsys, "schema", "print", *argv)


@pytest.fixture(scope="module")
def introspected(anonymous: Gateway, principals: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: introspected_sdl(anonymous, principals[name]) for name in AUDIENCES}


@pytest.mark.parametrize("audience", AUDIENCES)
def test_each_audiences_sdl_is_what_its_introspection_answers(
    capsys, principals, introspected, audience
):
    printed = schema_print(capsys, *cli_arguments(principals[audience]))
    assert printed.code == 0, printed.err
    assert printed.out == introspected[audience] + "\n"
    assert "clearance" in printed.err  # whose schema it is: on stderr, not in the SDL


def test_the_audiences_see_different_schemas(introspected):
    """The comparison above can fail: the schemas differ where the grants do."""
    assert len(set(introspected.values())) == len(AUDIENCES) - 1  # anonymous and app alike
    assert introspected["anonymous"] == introspected["app"]
    public, finance, dpo = (introspected[a] for a in ("anonymous", "finance", "dpo"))
    assert "nationalId" not in public and "nationalId" in finance
    assert "accessLog" not in finance and "accessLog" in dpo


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--audience", "anonymous", "--scopes", "tax:read"], "holds no scopes"),
        (["--audience", "app", "--clearance", "internal"], "reads public fields only"),
        (["--audience", "agency", "--scopes", "tax:read,tax:personal"], "unknown scope(s)"),
        (["--audience", "partner", "--scopes", "tax:raed"], "the policy defines"),
        (["--audience", "partner", "--file", "/no/such/policy.toml"], "cannot read"),
    ],
)
def test_refusals_are_one_line_and_exit_2(capsys, argv, message):
    printed = schema_print(capsys, *argv)
    assert printed.code == 2
    assert printed.out == ""
    assert message in printed.err and printed.err.count("\n") == 1
    assert "Traceback" not in printed.err


def test_the_policy_file_is_the_gateways(capsys, monkeypatch, tmp_path: Path):
    broken = tmp_path / "policy.toml"
    broken.write_text("[datasets\n", encoding="utf-8")
    monkeypatch.setenv("BMA_POLICY_FILE", str(broken))
    printed = schema_print(capsys, "--audience", "anonymous")
    assert printed.code == 2
    assert printed.err.startswith(f"bma-gateway: BMA_POLICY_FILE {broken}: ")
    assert "is not valid TOML" in printed.err and printed.err.count("\n") == 1
