"""The README's two commands are what a newcomer runs; CI must run the same test command."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _command_after(marker: str, text: str) -> str:
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if marker in line)
    return next(
        line for line in lines[index + 1 :] if line.strip() and not line.startswith("#")
    ).strip()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = _command_after("# 2. Install and run the tests", readme)
    assert test_command.endswith(".venv/bin/pytest")
    assert test_command in ci.splitlines()


def test_readme_starts_with_the_demo_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    demo = _command_after("# 1. Install and run the demo", readme)
    assert demo.endswith("bma-gateway demo")
    assert readme.index("bma-gateway demo") < readme.index("## A tour")


def _graphql_after(marker: str, text: str) -> str:
    """The first ```graphql block after ``marker``, without its comment lines."""
    start = text.index("```graphql", text.index(marker)) + len("```graphql")
    block = text[start : text.index("```", start)]
    return "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#"))


def test_the_tour_query_across_tax_registry_and_procurement_answers_anonymously(anonymous):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    query = _graphql_after("### Where the money goes", readme)
    anonymous.reset_counters()
    district = anonymous.query(query)["district"]
    assert Decimal(district["taxRevenue"]["collected"]) > 0
    assert Decimal(district["spending"]["contracted"]) > 0
    contracts = [c for e in district["businesses"]["edges"] for c in e["node"]["contracts"]]
    assert contracts and all(c["process"]["ocid"].startswith("ocds-bq4ldt-") for c in contracts)
    # One finance call for the spending, one for every business's contracts.
    assert anonymous.connectors.finance.counter.calls["finance"] == 2
