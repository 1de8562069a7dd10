"""Which record a restricted field was read from, and whose data it is — for the audit log.

For an object of a type with restricted fields, ``keys_of`` answers its record keys
(``parcel:17``, ``owner:5``, ``business:1039-2566-00123``, ``permit:…``, ``signboard:…``,
``supplier:…``, ``audit:…``) and its data subjects: ``id:<13-digit id>`` where the record carries the
person's national or juristic id, and ``owner:<id>`` (the BMA TAX owner record) for a parcel
and its assessments. The data-subject report (docs/audit.md) looks records up by both.

Every type with a personal field must name its data subjects here: ``subject_problems`` stops
the gateway at start (and ``bma-gateway policy check``) when one does not, since its reads
would be missing from every data-subject report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from policies.model import Policy

Keys = tuple[tuple[str, ...], tuple[str, ...]]  # (record keys, data subjects)

NO_KEYS: Keys = ((), ())


@dataclass(frozen=True)
class RecordKeys:
    """How the audit log names an object of one type."""

    records: Callable[[Any], tuple[str, ...]]
    # Whose data the object holds; None for a type that holds no one's personal data.
    subjects: Callable[[Any], tuple[str, ...]] | None = None


def _id(national_id: str | None) -> tuple[str, ...]:
    return (f"id:{national_id}",) if national_id else ()


def _business_subjects(b: Any) -> tuple[str, ...]:
    return _id(b.owner.national_id if b.owner else None)


KEYS: dict[str, RecordKeys] = {
    "Parcel": RecordKeys(lambda p: (f"parcel:{p.id}",), lambda p: (f"owner:{p.owner_id}",)),
    "Assessment": RecordKeys(
        lambda a: (f"parcel:{a.parcel_id}",), lambda a: (f"owner:{a.owner_id}",)
    ),
    "Owner": RecordKeys(
        lambda o: (f"owner:{o.id}",), lambda o: (f"owner:{o.id}", *_id(o.national_id))
    ),
    "Business": RecordKeys(lambda b: (f"business:{b.registration_no}",), _business_subjects),
    "BusinessOwner": RecordKeys(
        lambda o: (f"business:{o.registration_no}",), lambda o: _id(o.national_id)
    ),
    "BuildingPermit": RecordKeys(
        lambda p: (f"permit:{p.permit_no}",), lambda p: _id(p.applicant_id)
    ),
    # A supplier who is a natural person: its national id names the person.
    "Supplier": RecordKeys(lambda s: (f"supplier:{s.id}",), lambda s: _id(s.national_id)),
    "Signboard": RecordKeys(
        lambda s: (f"signboard:{s.id}", f"business:{s.business_registration_no}")
    ),
    # Reading the log is recorded, but it is not a read of the people the log mentions:
    # otherwise every data-subject report would add to the next one.
    "AccessRecord": RecordKeys(lambda r: (f"audit:{r.seq}",)),
}


def keys_of(type_name: str, source: Any) -> Keys:
    """Record keys and data subjects of one object; none for the root and for types whose
    restricted fields identify no record (connections, edges)."""
    key = KEYS.get(type_name)
    if key is None or source is None:
        return NO_KEYS
    return key.records(source), key.subjects(source) if key.subjects else ()


def _names_subjects(type_name: str) -> bool:
    key = KEYS.get(type_name)
    return key is not None and key.subjects is not None


def subject_problems(policy: Policy) -> list[str]:
    """Every personal field whose type names no data subject, as a policy problem."""
    return [
        f"personal field {rule.coordinate} names no data subject: give {rule.type_name} "
        "its subjects in schema/audit_keys.py"
        for rule in sorted(policy.rules.values(), key=lambda r: r.coordinate)
        if rule.personal and not _names_subjects(rule.type_name)
    ]
