"""gateway/cli/main.py: `bma-gateway policy check` and `policy show`; every command's failures
as one line each (what is wrong, what to do), exit 2 for usage and configuration errors."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from gateway.http.serving import free_port
from policies.model import DEFAULT_POLICY, load_policy
from support import REQUIRED_ENV, CliRun, settings_for, wait_until

POLICY = load_policy()


def _policy_without(tmp_path: Path, drop: str, add: str = "") -> Path:
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    assert drop in text
    path = tmp_path / "policy.toml"
    path.write_text(text.replace(drop, add), encoding="utf-8")
    return path


def test_policy_cli_check_and_show(tmp_path, capsys):
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


# ---------------------------------------------------------------------------- failures


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> CliRun:
    """The command in this process: an exception escaping it fails the test (a traceback)."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return CliRun(code, captured.out, captured.err)


def _one_line_each(err: str) -> list[str]:
    lines = err.splitlines()
    assert lines and all(line.startswith("bma-gateway") for line in lines), err
    assert "Traceback" not in err
    return lines


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The settings `serve` requires, valid (nothing is connected to by the checks)."""
    for name in [n for n in os.environ if n.startswith("BMA_") or n == "REDIS_URL"]:
        monkeypatch.delenv(name)
    for name, value in REQUIRED_ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize("content", [None, "x = [\n"], ids=["missing", "not-toml"])
def test_a_bad_policy_file_is_one_line_naming_its_option_or_variable_and_exit_2(
    tmp_path: Path, capsys, settings_env: pytest.MonkeyPatch, content: str | None
):
    path = tmp_path / "policy.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    done = _run(capsys, "policy", "check", "--file", str(path))
    assert done.code == 2, done
    [line] = _one_line_each(done.err)
    assert f"--file {path}" in line
    settings_env.setenv("BMA_POLICY_FILE", str(path))
    for argv in (["policy", "show"], ["config", "check"], ["serve"]):
        done = _run(capsys, *argv)
        assert done.code == 2, (argv, done)
        [line] = _one_line_each(done.err)
        assert f"BMA_POLICY_FILE {path}" in line, (argv, line)
        assert ("cannot read" if content is None else "not valid TOML") in line
        assert done.out == ""


def test_config_check_reports_every_problem_at_once_and_refuses_other_databases(
    tmp_path: Path, capsys, settings_env: pytest.MonkeyPatch
):
    settings_env.setenv("BMA_TAX_DATABASE_URL", "mysql://root:secret@db.example/tax")
    settings_env.setenv("BMA_GATEWAY_DATABASE_URL", "sqlite:///gateway.db")
    settings_env.delenv("BMA_TRAFFY_BASE_URL")
    settings_env.delenv("BMA_FINANCE_DATABASE_URL")
    settings_env.setenv("BMA_POLICY_FILE", str(tmp_path / "missing.toml"))
    done = _run(capsys, "config", "check")
    assert done.code == 2, done
    lines = _one_line_each(done.err)
    assert len(lines) == 5, lines
    for variable, problem in (
        ("BMA_TAX_DATABASE_URL", "must be a PostgreSQL URL"),
        ("BMA_GATEWAY_DATABASE_URL", "must be a PostgreSQL URL"),
        ("BMA_TRAFFY_BASE_URL", "is required"),
        ("BMA_FINANCE_DATABASE_URL", "is required"),
        ("BMA_POLICY_FILE", "cannot read"),
    ):
        assert any(variable in line and problem in line for line in lines), (variable, lines)
    assert "secret" not in done.err


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"bma-gateway {metadata.version('bma-gateway')}"


def test_a_usage_error_is_one_line_with_exit_2(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["audit", "export", "--since", "yesterday"])
    assert exited.value.code == 2
    [line] = _one_line_each(capsys.readouterr().err)
    assert "--since" in line and "'yesterday'" in line and "--help" in line


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_taken_port_is_one_line_suggesting_port_before_anything_starts(
    taken_port: int, tmp_path: Path, capsys, settings_env: pytest.MonkeyPatch
):
    done = _run(capsys, "serve", "--port", str(taken_port))
    assert done.code == 2, done
    [line] = _one_line_each(done.err)
    assert f"port {taken_port} on 127.0.0.1 is already in use" in line and "--port" in line
    # The demo: before its databases (this URL would fail with exit 1) and before its banner.
    done = _run(
        capsys,
        "demo",
        "--port",
        str(taken_port),
        "--state-dir",
        str(tmp_path),
        "--database-url",
        "postgresql://nobody@127.0.0.1:1/none",
    )
    assert done.code == 2, done
    [line] = _one_line_each(done.err)
    assert f"port {taken_port}" in line and "--port" in line
    assert done.out == ""  # no banner, no credentials


def test_unreachable_databases_and_files_are_one_line_each(
    tmp_path: Path, capsys, settings_env: pytest.MonkeyPatch
):
    for argv, status, words in (
        (["keys", "list", "--database-url", "postgresql://u@127.0.0.1:1/x"], 1, "cannot connect"),
        (["keys", "list", "--database-url", "mysql://u:pw@127.0.0.1/x"], 2, "not a PostgreSQL URL"),
        (["audit", "export", "--database-url", "postgresql://u@127.0.0.1:1/x"], 1, "cannot connect"),
        (["config", "docs", "--write", str(tmp_path / "none" / "x.md")], 2, "--write"),
        (["catalog", "check", "--policy", str(tmp_path / "none.toml")], 1, "cannot read"),
        (["demo", "--state-dir", str(tmp_path), "--port", str(free_port()), "--database-url", "postgresql://u@127.0.0.1:1/x"], 1, "cannot prepare the demo's databases"),
    ):  # fmt: skip
        done = _run(capsys, *argv)
        assert done.code == status, (argv, done)
        assert "Traceback" not in done.err
        assert words in done.err, (argv, done.err)
        assert "pw@" not in done.err


def test_serve_takes_workers_host_and_port_as_options(db, traffy_url, tmp_path: Path):
    """`serve --workers 2 --port P`: uvicorn's supervisor and its two workers, answering on P."""
    port = free_port()
    env = {**os.environ, **settings_for(db, traffy_url).to_env(), "BMA_PORT": "1"}
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--workers", "2", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success
            return False

        wait_until(up, timeout=90, what="serve --workers 2")
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) >= 2, children  # two workers (and multiprocessing's tracker)
    finally:
        process.terminate()
        process.wait(30)
