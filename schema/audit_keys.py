"""Which record a restricted field was read from, and whose data it is — for the audit log.

For an object of a type with restricted fields, ``keys_of`` answers its record keys
(``parcel:17``, ``owner:5``, ``business:1039-2566-00123``, ``permit:…``, ``signboard:…``,
``audit:…``) and its data subjects: ``id:<13-digit id>`` where the record carries the
person's national or juristic id, and ``owner:<id>`` (the BMA TAX owner record) for a parcel
and its assessments. The data-subject report (docs/audit.md) looks records up by both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Keys = tuple[tuple[str, ...], tuple[str, ...]]  # (record keys, data subjects)

NO_KEYS: Keys = ((), ())


def _id(national_id: str | None) -> tuple[str, ...]:
    return (f"id:{national_id}",) if national_id else ()


def _parcel(p: Any) -> Keys:
    return (f"parcel:{p.id}",), (f"owner:{p.owner_id}",)


def _assessment(a: Any) -> Keys:
    return (f"parcel:{a.parcel_id}",), (f"owner:{a.owner_id}",)


def _owner(o: Any) -> Keys:
    return (f"owner:{o.id}",), (f"owner:{o.id}", *_id(o.national_id))


def _business(b: Any) -> Keys:
    return (f"business:{b.registration_no}",), _id(b.owner.national_id if b.owner else None)


def _business_owner(o: Any) -> Keys:
    return (f"business:{o.registration_no}",), _id(o.national_id)


def _permit(p: Any) -> Keys:
    return (f"permit:{p.permit_no}",), ()


def _signboard(s: Any) -> Keys:
    return (f"signboard:{s.id}", f"business:{s.business_registration_no}"), ()


def _access_record(r: Any) -> Keys:
    # Reading the log is recorded, but it is not a read of the people the log mentions:
    # otherwise every data-subject report would add to the next one.
    return (f"audit:{r.seq}",), ()


KEYS: dict[str, Callable[[Any], Keys]] = {
    "Parcel": _parcel,
    "Assessment": _assessment,
    "Owner": _owner,
    "Business": _business,
    "BusinessOwner": _business_owner,
    "BuildingPermit": _permit,
    "Signboard": _signboard,
    "AccessRecord": _access_record,
}


def keys_of(type_name: str, source: Any) -> Keys:
    """Record keys and data subjects of one object; none for the root and for types whose
    restricted fields identify no record (connections, edges)."""
    key = KEYS.get(type_name)
    return key(source) if key is not None and source is not None else NO_KEYS
