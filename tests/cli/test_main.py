"""gateway/cli/main.py: `bma-gateway policy check` and `policy show`."""

from __future__ import annotations

from pathlib import Path

from policies.model import DEFAULT_POLICY, load_policy

POLICY = load_policy()


def _policy_without(tmp_path: Path, drop: str, add: str = "") -> Path:
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    assert drop in text
    path = tmp_path / "policy.toml"
    path.write_text(text.replace(drop, add), encoding="utf-8")
    return path


def test_policy_cli_check_and_show(tmp_path, capsys):
    from gateway.cli import main

    assert main(["policy", "check"]) == 0
    assert f"{len(POLICY.rules)} fields classified" in capsys.readouterr().out
    assert main(["policy", "show", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "type,field,level,tags,mask,dataset,scopes,derived_from"
    assert "Owner,nationalId,confidential,personal,national_id,tax,tax:read," in out
    assert 'Signboard,taxDue,public,,,tax,,"Signboard.signType, Signboard.areaCm2' in out
    broken = _policy_without(tmp_path, 'star = "public", ')
    assert main(["policy", "check", "--file", str(broken)]) == 1
    assert "unclassified field Complaint.star" in capsys.readouterr().err
