"""policies/principal.py: clearance levels, read from their names in English or Thai."""

from __future__ import annotations

import pytest

from policies.principal import Level


def test_level_parse():
    assert Level.parse("confidential") is Level.CONFIDENTIAL
    assert Level.parse(" Public ") is Level.PUBLIC
    assert Level.parse("ลับมาก") is Level.SECRET
    assert Level.INTERNAL.label == "internal" and Level.INTERNAL.thai == "ใช้ภายใน"
    assert Level.PUBLIC < Level.INTERNAL < Level.CONFIDENTIAL < Level.SECRET
    with pytest.raises(ValueError):
        Level.parse("top-secret")
