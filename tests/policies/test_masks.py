"""policies/masks.py: national ids to their last digits, names to initials, amounts to the
million."""

from __future__ import annotations

from policies.masks import initials, national_id, round_million


def test_masks():
    assert national_id("1101700203451") == "x-xxxx-xxxxx-45-1"
    assert national_id("12") == "x-xxxx-xxxxx-xx-x"
    assert initials("นายสมชาย ใจดี") == "ส. ใ."
    assert initials("บริษัท สยามพัฒนา จำกัด") == "ส."
    assert round_million("12500000.00") == "13000000"
    assert round_million("oops") is None
