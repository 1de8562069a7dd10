"""The layering contracts of pyproject.toml hold, and a wrong import breaks them.

``lint-imports`` (import-linter) reads the packages as they are imported; the second test
copies them beside the project's settings, adds one import that points back up, and expects
the contract it breaks to be named.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "connectors", "schema", "policies")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_of_the_packages(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold(tmp_path: Path):
    result = lint_imports(copy_of_the_packages(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "contract"),
    [
        (
            "connectors/base.py",
            "from gateway.observability import metrics",
            "connectors import neither the gateway nor the schema",
        ),
        ("policies/masks.py", "import schema", "policies import none of our other packages"),
        (
            "gateway/auth/claims.py",
            "from gateway.http import app",
            "the gateway's packages follow the request, top to bottom",
        ),
    ],
)
def test_a_wrong_import_breaks_its_contract(
    tmp_path: Path, module: str, wrong_import: str, contract: str
):
    tree = copy_of_the_packages(tmp_path)
    source = tree / module
    text = source.read_text(encoding="utf-8")
    # After the module's `from __future__` line, where an import may stand.
    head, future, rest = text.partition("from __future__ import annotations\n")
    source.write_text(head + future + wrong_import + "\n" + rest, encoding="utf-8")
    result = lint_imports(tree)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert f"{contract} BROKEN" in broken, result.stdout
