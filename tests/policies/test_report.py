"""policies/report.py: the policy as a table for the committee, in text, CSV and Markdown."""

from __future__ import annotations

import pytest

from policies.model import load_policy
from policies.report import render

POLICY = load_policy()


@pytest.mark.parametrize("fmt", ["text", "csv", "markdown"])
def test_policy_table_for_the_committee(fmt):
    out = render(POLICY, fmt)
    assert "nationalId" in out and "confidential" in out and "national_id" in out
    assert out.count("\n") == len(POLICY.rules) + (2 if fmt == "markdown" else 1)
