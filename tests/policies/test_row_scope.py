"""Row scope: the districts whose rows a principal may read."""

from __future__ import annotations

import pytest

from policies.principal import ANONYMOUS, Level, Principal
from policies.row_scope import admits, narrowed

CITY_WIDE = Principal("agency", "bma-finance", clearance=Level.CONFIDENTIAL)
BANG_RAK = Principal("agency", "officer-1039", districts=frozenset({"1039"}))
TWO = Principal("agency", "officer-two", districts=frozenset({"1050", "1001"}))


# ---------------------------------------------------------------------------- narrowed


@pytest.mark.parametrize("codes", [(), ("1001",), ("1039", "1001", "1050")])
def test_city_wide_principals_keep_the_filter_as_given(codes):
    assert narrowed(CITY_WIDE, codes) == codes
    assert narrowed(ANONYMOUS, codes) == codes


def test_no_filter_becomes_the_principals_districts_in_order():
    assert narrowed(BANG_RAK, ()) == ("1039",)
    assert narrowed(TWO, ()) == ("1001", "1050")  # sorted: a stable query and cache key


def test_a_filter_is_narrowed_to_the_row_scope():
    assert narrowed(TWO, ("1050", "1039", "1001")) == ("1050", "1001")  # the filter's order
    assert narrowed(BANG_RAK, ("1039",)) == ("1039",)
    assert narrowed(BANG_RAK, ("1039", "1039")) == ("1039", "1039")


def test_nothing_left_is_none_not_every_district():
    assert narrowed(BANG_RAK, ("1001",)) is None
    assert narrowed(TWO, ("1039", "1002")) is None


def test_an_empty_row_scope_leaves_nothing():
    nowhere = Principal("agency", "officer-nowhere", districts=frozenset())
    assert not admits(nowhere, "1039")
    assert narrowed(nowhere, ("1039",)) is None
    assert narrowed(nowhere, ()) is None


# ---------------------------------------------------------------------------- admits


@pytest.mark.parametrize("code", ["1001", "1039", "1050"])
def test_city_wide_principals_admit_every_district(code):
    assert admits(CITY_WIDE, code)
    assert admits(ANONYMOUS, code)


def test_a_scoped_principal_admits_only_its_districts():
    assert admits(BANG_RAK, "1039")
    assert not admits(BANG_RAK, "1001")
    assert admits(TWO, "1001") and admits(TWO, "1050")
    assert not admits(TWO, "1039")
    assert not admits(BANG_RAK, "")
    assert not admits(BANG_RAK, "10391")  # a code, not a prefix


def test_admits_agrees_with_narrowed():
    for principal in (CITY_WIDE, BANG_RAK, TWO):
        for code in ("1001", "1039", "1050"):
            assert admits(principal, code) == (narrowed(principal, (code,)) is not None)
