"""What one operation's restricted reads leave behind: the trail execution keeps, and the
audit entry it becomes.

Execution notes every restricted field it reads, masks or refuses (``AccessTrail``); the
executor turns the trail into one entry per operation (``access_entry``): who asked, for what
purpose and under which lawful basis, which fields of which records, and whose data they are
(``schema.audit_keys``). The writer (``gateway.audit.writer``) commits it to the chain.

A refused field revealed nothing, so its entry says how many records it was refused on, not
which: a refusal's entry is bounded by the policy (one line per restricted field), whatever
the page size asked for. A revealed field lists every record it was read from — the
data-subject report needs each one — so an allowed read's entry grows with what it revealed,
which the audience's page and cost limits bound (docs/audit.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import denial_code
from gateway.observability import metrics
from policies.model import Decision, Policy, Verdict
from policies.principal import Principal
from schema.audit_keys import keys_of

# Longest operation name kept in an entry; the document hash identifies the query anyway.
MAX_OPERATION_NAME = 128

ACCESS = {
    Decision.ALLOW: "clear",
    Decision.MASK: "masked",
    Decision.DENY: "denied",
    Decision.PURPOSE_REQUIRED: "denied",
}


@dataclass
class AccessTrail:
    """The restricted fields one operation touched, and the objects they were read from."""

    # (type, field) -> the plan's verdict on it and every object it was resolved on.
    seen: dict[tuple[str, str], tuple[Verdict, list[Any]]] = field(default_factory=dict)

    def saw(self, type_name: str, field_name: str, verdict: Verdict, source: Any) -> None:
        if ACCESS[verdict.decision] == "denied":
            metrics.observe_denial(verdict.rule.coordinate, denial_code(verdict).code)
        found = self.seen.get((type_name, field_name))
        if found is None:
            found = self.seen[(type_name, field_name)] = (verdict, [])
        found[1].append(source)

    def refused(self, verdicts: list[Verdict]) -> None:
        """Fields refused before execution (reject mode): no record was read."""
        for v in verdicts:
            metrics.observe_denial(v.rule.coordinate, denial_code(v).code)
            self.seen.setdefault((v.rule.type_name, v.rule.field_name), (v, []))

    @property
    def touched(self) -> bool:
        return bool(self.seen)

    @property
    def revealed(self) -> bool:
        """Some restricted value (clear or masked) is in the answer."""
        return any(ACCESS[v.decision] != "denied" for v, _ in self.seen.values())


@dataclass(frozen=True)
class Caller:
    """Who asked, as the audit record names them."""

    principal: Principal
    request_id: str
    client: str | None


def access_entry(
    policy: Policy,
    caller: Caller,
    document_hash: str,
    operation_name: str | None,
    trail: AccessTrail,
) -> dict[str, Any]:
    """The audit entry of one operation (the JSON the chain hashes)."""
    fields: list[dict[str, Any]] = []
    records: set[str] = set()
    subjects: set[str] = set()
    for (type_name, _field), (verdict, sources) in trail.seen.items():
        access = ACCESS[verdict.decision]
        if access == "denied":  # revealed nothing: which records it was refused on is noise
            refused = {"field": verdict.rule.coordinate, "access": access, "count": len(sources)}
            fields.append({**refused, "rule": _rule_text(verdict)})
            continue
        keys: set[str] = set()
        for source in sources:
            found, whose = keys_of(type_name, source)
            keys.update(found)
            subjects.update(whose)
        records |= keys
        fields.append({"field": verdict.rule.coordinate, "access": access, "records": sorted(keys)})
    principal = caller.principal
    return {
        "requestId": caller.request_id,
        "subject": principal.subject,
        "organisation": principal.organisation,
        "audience": principal.kind,
        "issuer": principal.issuer,
        "credentialId": principal.credential_id,
        "clientAddress": caller.client,
        "purpose": principal.purpose,
        "lawfulBasis": policy.lawful_basis(principal.purpose),
        "operationName": _bounded(operation_name),
        "documentHash": document_hash,
        "outcome": _outcome(trail),
        "fields": sorted(fields, key=lambda f: (f["field"], f["access"])),
        "records": sorted(records),
        "subjects": sorted(subjects),
    }


def _bounded(name: str | None) -> str | None:
    if name is None or len(name) <= MAX_OPERATION_NAME:
        return name
    return name[: MAX_OPERATION_NAME - 1] + "…"


def _outcome(trail: AccessTrail) -> str:
    accesses = {ACCESS[verdict.decision] for verdict, _ in trail.seen.values()}
    if "denied" not in accesses:
        return "allowed"
    return "partially_denied" if accesses - {"denied"} else "denied"


def _rule_text(verdict: Verdict) -> str:
    rule = verdict.rule
    tags = f" {' '.join(sorted(rule.tags))}" if rule.tags else ""
    return f"{rule.coordinate}: {rule.level.label}{tags} ({denial_code(verdict).code})"
