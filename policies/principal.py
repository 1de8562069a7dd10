"""Who is asking: the principal a request's credentials prove, and the clearance levels.

The gateway's authentication (``gateway.auth``) builds a ``Principal`` from an API key or a
JWT; the policy planner decides from ``Principal.grants`` only, so that two principals with
the same grants share one cached plan whoever they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal


class Level(IntEnum):
    """The Thai government data-classification tiers, lowest first (so they compare)."""

    PUBLIC = 0  # เปิดเผย
    INTERNAL = 1  # ใช้ภายใน
    CONFIDENTIAL = 2  # ลับ
    SECRET = 3  # ลับมาก

    @classmethod
    def parse(cls, text: str) -> Level:
        """A level from its English name (any case) or its Thai name; ValueError otherwise."""
        key = text.strip()
        # Not `a or b`: PUBLIC is 0, which is falsy.
        level = _BY_NAME.get(key.lower(), _BY_THAI.get(key))
        if level is None:
            names = ", ".join(member.label for member in cls)
            raise ValueError(f"unknown classification level {text!r} (one of {names})")
        return level

    @property
    def label(self) -> str:
        """The name used in policy files, tokens and settings: ``public`` … ``secret``."""
        return self.name.lower()

    @property
    def thai(self) -> str:
        return _THAI[self]


_THAI = {
    Level.PUBLIC: "เปิดเผย",
    Level.INTERNAL: "ใช้ภายใน",
    Level.CONFIDENTIAL: "ลับ",
    Level.SECRET: "ลับมาก",
}
_BY_NAME = {level.label: level for level in Level}
_BY_THAI = {thai: level for level, thai in _THAI.items()}

AudienceKind = Literal["anonymous", "app", "partner", "agency"]

Grants = tuple[AudienceKind, Level, tuple[str, ...], tuple[str, ...] | None, str | None]


@dataclass(frozen=True)
class Principal:
    kind: AudienceKind
    subject: str  # "anonymous", "key:<key id>", or the JWT sub
    organisation: str | None = None
    clearance: Level = Level.PUBLIC
    scopes: frozenset[str] = frozenset()
    districts: frozenset[str] | None = None  # row scope: None = city-wide, else district codes
    purpose: str | None = None  # declared purpose (X-Purpose header, else token claim)
    credential_id: str | None = None  # API key id or JWT jti
    issuer: str | None = None

    @property
    def grants(self) -> Grants:
        """Everything a policy decision may depend on, hashable, in a canonical order.

        Subject, organisation and credential are left out on purpose: they identify, they do
        not grant, and keeping them out lets every principal with the same rights share one
        cached plan.
        """
        districts = tuple(sorted(self.districts)) if self.districts is not None else None
        return (self.kind, self.clearance, tuple(sorted(self.scopes)), districts, self.purpose)


ANONYMOUS = Principal(kind="anonymous", subject="anonymous")
