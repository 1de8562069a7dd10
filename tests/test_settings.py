"""gateway/settings.py: one declaration per setting, read and checked all at once, and the
reference in docs/configuration.md made from the declarations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import SECTIONS, ConfigError, Settings, variable
from gateway.settings_reference import LIMITS, reference, rewritten, table, tables_of
from support import REQUIRED_ENV

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"


def test_the_configuration_doc_holds_the_tables_the_declarations_make():
    document = CONFIGURATION.read_text(encoding="utf-8")
    found = tables_of(document)
    assert set(found) == {*SECTIONS, LIMITS}
    for section, text in found.items():
        assert text == table(section), (
            f"docs/configuration.md's {section!r} table differs from the declarations: "
            "run `bma-gateway config docs --write docs/configuration.md`"
        )
    assert rewritten(document) == document


def test_every_setting_is_in_the_reference_once():
    text = reference()
    for name, field in Settings.model_fields.items():
        rows = [
            line for line in text.splitlines() if line.startswith(f"| `{variable(name, field)}` |")
        ]
        assert len(rows) == 1, name
    assert "BMA_REGISTRY_DATABASE_URL_<code>" in text and "REDIS_URL" in text


def test_a_section_without_settings_is_an_error():
    with pytest.raises(KeyError):
        table("nonsense")


def test_every_bad_setting_is_named_at_once():
    env = {
        "BMA_TAX_DATABASE_URL": "postgresql://x/tax",
        "BMA_PORT": "99999",
        "BMA_WORKERS": "many",
        "BMA_TRACING": "maybe",
        "REDIS_URL": "http://cache",
    }
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env)
    named = [problem.split()[0] for problem in refused.value.problems]
    assert named == [
        "BMA_REGISTRY_DATABASE_URL",
        "BMA_FINANCE_DATABASE_URL",
        "BMA_TRAFFY_BASE_URL",
        "BMA_PORT",
        "BMA_WORKERS",
        "BMA_TRACING",
        "REDIS_URL",
    ]
    assert "BMA_PORT must be 1..65535, got '99999'" in refused.value.problems


def test_settings_given_as_arguments_read_no_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BMA_PORT", "9999")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    settings = Settings(
        tax_database_url="postgresql://x/a",
        registry_database_url="postgresql://x/b",
        finance_database_url="postgresql://x/f",
        traffy_base_url="c",
    )
    assert settings.port == 8000 and settings.redis_url is None
    for name, value in REQUIRED_ENV.items():
        monkeypatch.setenv(name, value)
    from_environment = Settings.from_env()
    assert from_environment.port == 9999
    assert from_environment.redis_url == "redis://elsewhere:6379/0"
    with pytest.raises(TypeError):
        Settings("a", "b", "c")  # type: ignore[misc]  # keywords only


def test_empty_values_keep_the_defaults():
    settings = Settings.from_env({**REQUIRED_ENV, "BMA_PORT": "", "BMA_JWT_AUDIENCE": "  "})
    assert settings.port == 8000 and settings.jwt_audience == "bma-gateway"


def test_config_check_reports_every_problem_and_exits_2():
    env = {"PATH": "/usr/bin:/bin", "BMA_PORT": "0", "BMA_MAX_BATCH": "x"}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "config", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if "configuration error" in line]
    assert [line.split("configuration error: ")[1].split()[0] for line in lines] == [
        "BMA_TAX_DATABASE_URL",
        "BMA_REGISTRY_DATABASE_URL",
        "BMA_FINANCE_DATABASE_URL",
        "BMA_TRAFFY_BASE_URL",
        "BMA_PORT",
        "BMA_MAX_BATCH",
    ]
    assert "Traceback" not in done.stderr
