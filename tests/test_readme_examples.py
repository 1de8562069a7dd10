"""Every shell and GraphQL example of the README, run as written against the demo's data (the
session's gateway over the same deterministic seed, on a loopback port) and each answer's
shape checked: the tour cannot drift from the code again.

Shell commands run in bash, one at a time, with the ``export`` lines written before them in
the same block (as a reader pasting the block would have them), the demo's address, database
URL and home directory put in place of the README's, and the virtual environment's
``bin`` first on PATH; ``bma-gateway`` commands run through its ``main`` in this process, the
same way (exports, ``~``, the working directory). Each command must match exactly one expectation below, so a new
example without a check fails here too.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.cache import DEFAULT_TTLS
from gateway.audit.checkpoints import create_signing_key, load_signing_key, sign
from gateway.cli import main
from support import Gateway, audit_key_file, run, settings_for, start_gateway, with_conn

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEMO_URL = "http://127.0.0.1:8000"
DEMO_STATE = "~/.local/share/bma-gateway"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`((?:curl|bma-gateway) [^`]+)`")


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README) if lang == language]


# ---------------------------------------------------------------------------- shell


@dataclass(frozen=True)
class Command:
    text: str
    exports: tuple[str, ...]  # the block's `export` lines before it


def shell_commands() -> Iterator[Command]:
    for block in blocks("sh"):
        exports: list[str] = []
        for line in _logical_lines(block):
            if line.startswith("export "):
                exports.append(line)
            else:
                yield Command(line, tuple(exports))
    for inline in INLINE.findall(README):
        yield Command(inline, ())


def _logical_lines(block: str) -> Iterator[str]:
    """Commands: lines joined where they end in a backslash or a quote is still open;
    comment-only lines left out."""
    pending = ""
    for raw in block.splitlines():
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        pending += raw
        if pending.count("'") % 2:  # inside a quoted argument: the newline is part of it
            pending += "\n"
            continue
        yield pending.strip()
        pending = ""


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str
    cwd: Path

    def json(self) -> Any:
        assert self.code == 0, self
        return json.loads(self.out)


def _graphql_answer(ran: Ran) -> dict[str, Any]:
    body: dict[str, Any] = ran.json()
    assert "errors" not in body, body["errors"]
    return body


def _jsonl(path: Path, key: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines and all(key in json.loads(line) for line in lines), path


def _fifty_districts(ran: Ran) -> None:
    districts = _graphql_answer(ran)["data"]["districts"]
    assert len(districts) == 50
    filled(districts)


def _too_costly(ran: Ran) -> None:
    [error] = ran.json()["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "limit": 50000, "actual": 102601}


def _ckan_search(ran: Ran) -> None:
    found = ran.json()
    assert found["count"] >= 1 and 1 <= len(found["results"]) <= 5
    assert {r["organization"]["name"] for r in found["results"]} == {"traffy-fondue"}


def _downloaded_csv(ran: Ran) -> None:
    assert ran.code == 0, ran
    text = (ran.cwd / "complaints.csv").read_text(encoding="utf-8")
    assert text.startswith("\ufeff") and len(text.splitlines()) > 1000


def _fiscal_package(ran: Ran) -> None:
    assert ran.code == 0, ran
    package = json.loads((ran.cwd / "datapackage.json").read_text(encoding="utf-8"))
    assert package["resources"]
    assert len((ran.cwd / "budget.csv").read_text(encoding="utf-8").splitlines()) > 1


def _verified(ran: Ran) -> None:
    assert ran.code == 0, ran
    assert re.match(r"audit chain intact: \d+ records; head record \d+, hash [0-9a-f]{64}", ran.out)


def _exported(ran: Ran) -> None:
    assert ran.code == 0, ran
    with (ran.cwd / "audit.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["seq"] and r["hash"] for r in rows)


def _sdl(name: str, present: str, absent: str) -> Callable[[Ran], None]:
    """A caller's schema saved to ``name``: it holds ``present``, never ``absent``."""

    def check(ran: Ran) -> None:
        assert ran.code == 0, ran
        sdl = (ran.cwd / name).read_text(encoding="utf-8")
        assert "type Query" in sdl and present in sdl and absent not in sdl, sdl[:300]

    return check


def _not_run(why: str) -> Callable[[Ran], None]:
    def check(_ran: Ran) -> None:
        raise AssertionError(why)

    check.not_run = why  # type: ignore[attr-defined]
    return check


# (pattern matching exactly one README command, its check)
EXPECTATIONS: list[tuple[str, Callable[[Ran], None]]] = [
    (r"&& \.venv/bin/bma-gateway demo$", _not_run("tests/test_demo.py runs the demo")),
    (r"&& \.venv/bin/pytest$", _not_run("CI runs it (tests/test_readme.py)")),
    (r"^bma-gateway serve$", _not_run("tests/cli/test_main.py runs serve")),
    (r"^pip install ckanapi", _not_run("ckanapi is a test dependency")),
    (r"taxRevenue\(year: 2025\)", _fifty_districts),
    (r"/ocds/records\?", lambda ran: filled(ran.json()["records"])),
    (r"-O \S+/ocds/releases\.jsonl", lambda ran: _jsonl(ran.cwd / "releases.jsonl", "ocid")),
    (r"/oc4ids/projects\?", lambda ran: filled(ran.json()["projects"])),
    (r"-o projects\.jsonl", lambda ran: _jsonl(ran.cwd / "projects.jsonl", "id")),
    (r"^ckanapi action package_search", _ckan_search),
    (r"-R -o complaints\.csv", _downloaded_csv),
    (r"-z complaints\.csv", lambda ran: ran.out.strip() == "304" or _fail(ran)),
    (r"/fiscal/budget/datapackage\.json", _fiscal_package),
    (r"audit verify +#", _verified),
    (r"audit verify --checkpoints", lambda ran: "checkpoints match the log" in ran.err or _fail(ran)),
    (r"audit export --since", _exported),
    (r"complaints\(first: 1000\)", _too_costly),
    (r"^bma-gateway policy show --format markdown$", lambda ran: "| Owner | nationalId |" in ran.out or _fail(ran)),
    (r"persistedQuery|documentId=sha256|documents add --client", _not_run("tests/test_trusted_documents.py runs them against a gateway that allows documents by hash, as the demo does")),
    (r"schema print --audience …$", _not_run("prose naming the command; the block below runs it")),
    (r"^bma-gateway catalog check$", lambda ran: ran.out.startswith("catalogue ok") or _fail(ran)),
    (r"schema\.graphql .*> partner\.graphql", _sdl("partner.graphql", "appraisedValue", "accessLog")),
    (r"schema print --audience agency", _sdl("finance.graphql", "nationalId", "accessLog")),
]  # fmt: skip


def _fail(ran: Ran) -> bool:
    raise AssertionError(ran)


def expectation(command: Command) -> Callable[[Ran], None]:
    matched = [check for pattern, check in EXPECTATIONS if re.search(pattern, command.text)]
    assert len(matched) == 1, f"{len(matched)} expectations match the README's {command.text!r}"
    return matched[0]


# ---------------------------------------------------------------------------- GraphQL


def graphql_operations() -> Iterator[str]:
    """Each operation of the ```graphql blocks (comment lines separate them)."""
    for block in blocks("graphql"):
        lines: list[str] = []
        for line in [*block.splitlines(), "#"]:
            if line.lstrip().startswith("#"):
                if lines:
                    yield "\n".join(lines)
                lines = []
            elif line.strip():
                lines.append(line)


THREE_AUDIENCES = "owner { kind name nationalId }"


def documented_answers() -> list[dict[str, Any]]:
    """The three ```json answers of "One query, three audiences" (the README's `...`
    stands for the rest of an error's extensions)."""
    start = README.index("### One query, three audiences")
    section = README[start : README.index("\n## ", start)]
    return [
        json.loads(body.replace(",...", ""))
        for lang, body in BLOCK.findall(section)
        if lang == "json"
    ]


# Integrity indicators that are null unless they fire ("null if none"): none need fire in one
# district's contracts.
NULL_UNLESS_FIRED = ("justUnderThreshold", "splitThreshold", "supplierRegisteredDaysBefore")


def filled(value: Any) -> None:
    """Every field of the answer has a value somewhere in it: no list that is empty wherever
    it occurs, no field that is null everywhere (an example showing nothing has drifted)."""
    seen: dict[str, bool] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, list):
            seen[path] = seen.get(path, False) or bool(node)
            for item in node:
                walk(item, path + "[]")
        elif isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{path}.{key}")
        else:
            seen[path] = seen.get(path, False) or node is not None

    walk(value, "")
    empty = sorted(
        path for path, some in seen.items() if not some and not path.endswith(NULL_UNLESS_FIRED)
    )
    assert not empty, f"always empty or null: {empty}"


# ---------------------------------------------------------------------------- the test


@pytest.fixture
def home(tmp_path: Path, db: Any) -> Path:
    """A home whose demo state holds the session's audit key and a signed checkpoint of the
    chain's head, as the demo leaves them."""
    state = tmp_path / "home" / ".local" / "share" / "bma-gateway"
    state.mkdir(parents=True)
    shutil.copy(audit_key_file(), state / "audit.key")
    create_signing_key(state / "audit-checkpoint.key")
    head = run(
        with_conn(db.gateway, lambda c: c.fetchrow("SELECT seq, hash FROM audit.chain_head"))
    )
    checkpoint = sign(
        load_signing_key(state / "audit-checkpoint.key"),
        (head["seq"], bytes(head["hash"])),
        datetime.now(UTC),
    )
    (state / "audit-checkpoints.jsonl").write_text(json.dumps(checkpoint.as_dict()) + "\n")
    return tmp_path / "home"


@pytest.fixture(scope="module")
def gateway(db: Any, traffy_url: str) -> Iterator[Gateway]:
    """A gateway configured as the demo's (its caches on: a download's conditional GET is
    answered from the kept copy); rate limits off, as this test asks fast."""
    server, gw = start_gateway(
        settings_for(db, traffy_url, cache_ttls=dict(DEFAULT_TTLS), rate_limits=None)
    )
    yield gw
    gw.client.close()
    server.stop()


def test_every_readme_example_answers_as_the_readme_says(
    gateway: Gateway,
    principals: dict[str, dict[str, str]],
    db: Any,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    # GraphQL first: the three audiences' reads leave the audit records the DPO then reads
    # and the audit commands then verify and export.
    operations = list(graphql_operations())
    assert len(operations) >= 7
    answers = documented_answers()
    assert len(answers) == 3
    for operation in operations:
        if THREE_AUDIENCES in operation:
            _three_audiences(gateway, principals, operation, answers)
            continue
        caller = principals["dpo"] if "accessLog" in operation else {}
        response = gateway.post(operation, headers=caller)
        assert response.status_code == 200, (operation, response.text)
        body = response.json()
        assert "errors" not in body, (operation, body["errors"])
        filled(body["data"])

    commands = list(shell_commands())
    assert len(commands) >= 15
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("BMA_")}
    # The partner's token, as the demo prints it for the README's `$BMA_PARTNER_TOKEN`.
    env["BMA_PARTNER_TOKEN"] = principals["partner"]["Authorization"].removeprefix("Bearer ")
    work = tmp_path / "work"
    work.mkdir()
    for command in commands:
        check = expectation(command)
        if hasattr(check, "not_run"):
            continue
        lines = [
            line.replace(DEMO_URL, gateway.url).replace("postgresql://…", db.gateway)
            for line in (*command.exports, command.text)
        ]
        if CLI.match(command.text) and ">" not in command.text:  # in this process: no
            # interpreter start per command (bash runs those that redirect their output)
            ran = _in_process(lines, env, work, monkeypatch, capsys)
        else:
            done = subprocess.run(
                ["bash", "-c", "\n".join(lines)],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            ran = Ran(done.returncode, done.stdout, done.stderr, work)
        check(ran)


CLI = re.compile(r"^(\.venv/bin/)?bma-gateway ")


def _in_process(
    lines: list[str],
    env: dict[str, str],
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Ran:
    """``export NAME=value`` lines, then one ``bma-gateway`` command, as bash would run them
    (``~`` is the home given), through the command's ``main``."""
    with monkeypatch.context() as patched:
        for name in [n for n in os.environ if n.startswith("BMA_")]:
            patched.delenv(name)
        patched.setenv("HOME", env["HOME"])
        patched.chdir(work)
        *exports, command = lines
        for line in exports:
            name, _, value = shlex.split(line, comments=True)[1].partition("=")
            patched.setenv(name, os.path.expanduser(value))
        argv = [os.path.expanduser(a) for a in shlex.split(command, comments=True)[1:]]
        capsys.readouterr()
        code = main(argv)
        captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err, work)


def _three_audiences(
    gateway: Gateway,
    principals: dict[str, dict[str, str]],
    operation: str,
    answers: list[dict[str, Any]],
) -> None:
    """The same query as anonymous, the partner and the finance officer: the README's three
    answers, value for value (errors by path, code and message)."""
    for caller, documented in zip(("anonymous", "partner", "finance"), answers, strict=True):
        body = gateway.post(operation, headers=principals[caller]).json()
        assert body["data"] == documented["data"], (caller, body)
        errors = {tuple(e["path"]): e for e in body.get("errors", [])}
        assert set(errors) == {tuple(e["path"]) for e in documented.get("errors", [])}, caller
        for shown in documented.get("errors", []):
            actual = errors[tuple(shown["path"])]
            assert actual["message"] == shown["message"], caller
            assert shown["extensions"].items() <= actual["extensions"].items(), caller
