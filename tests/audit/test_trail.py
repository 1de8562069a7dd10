"""gateway/audit/trail.py, the audit entry of one operation: a refusal's entry is bounded by
the policy whatever the query, and what was revealed is listed in full. (Through the gateway,
with the real store: tests/test_audit.py.)"""

from __future__ import annotations

from typing import Any

from gateway.audit.store import canonical
from gateway.audit.trail import AccessTrail, Caller, access_entry
from policies.model import Decision, Verdict, load_policy
from policies.principal import ANONYMOUS

POLICY = load_policy()
RESTRICTED = [rule for rule in POLICY.rules.values() if not rule.open]


class Row:
    """A record of any type, numbered: every attribute a key function reads is its number."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __getattr__(self, name: str) -> Any:
        return self if name == "owner" else f"{self.n:013d}"


def refused_everywhere(rows: int) -> AccessTrail:
    """A trail that was refused every restricted field of the policy on ``rows`` records."""
    trail = AccessTrail()
    for rule in RESTRICTED:
        verdict = Verdict(Decision.DENY, rule)
        for n in range(rows):
            trail.saw(rule.type_name, rule.field_name, verdict, Row(n))
    return trail


def test_a_refusal_entry_is_bounded_by_the_policy_not_by_the_query():
    caller = Caller(ANONYMOUS, "r" * 64, "203.0.113.9")
    entry = access_entry(POLICY, caller, "0" * 64, "Q" * 100_000, refused_everywhere(2_000))
    assert entry["records"] == [] and entry["subjects"] == []
    assert len(entry["fields"]) == len(RESTRICTED)
    assert {f["count"] for f in entry["fields"]} == {2_000}
    assert len(entry["operationName"]) <= 200  # the document hash identifies the query
    # A header of fixed fields, then one short line per restricted field of the policy.
    per_field = max(len(r.coordinate) for r in RESTRICTED) * 2 + 100
    assert len(canonical(entry)) <= 1_024 + per_field * len(RESTRICTED)
    # ... and the same size as one refused on a single record, but for the counts' digits.
    one = access_entry(POLICY, caller, "0" * 64, "Q" * 100_000, refused_everywhere(1))
    assert len(canonical(entry)) - len(canonical(one)) == 3 * len(RESTRICTED)


def test_a_revealed_field_lists_every_record_and_subject():
    trail = AccessTrail()
    rule = POLICY.rules[("Owner", "nationalId")]
    for n in range(3_000):
        trail.saw("Owner", "nationalId", Verdict(Decision.ALLOW, rule), Row(n))
    entry = access_entry(POLICY, Caller(ANONYMOUS, "r", None), "0" * 64, None, trail)
    [read] = entry["fields"]
    assert read["access"] == "clear" and len(read["records"]) == 3_000
    assert len(entry["subjects"]) == 6_000  # owner:<id> and id:<national id> of each
