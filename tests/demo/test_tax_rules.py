"""gateway/demo/tax_rules.py: the land and building tax, the signboard tax and Thai ID check
digits the synthetic data is computed with, against hand-computed values."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.demo.tax_rules import (
    TaxResult,
    is_valid_thai_id,
    land_building_tax,
    signboard_tax,
    thai_id_check_digit,
)

M = Decimal(1_000_000)


def test_commercial_60m_spans_two_brackets():
    # 50M x 0.3% + 10M x 0.4% = 150,000 + 40,000
    assert land_building_tax("commercial_other", 60 * M, "juristic", False) == TaxResult(
        base=60 * M,
        exemption=Decimal(0),
        taxable=60 * M,
        tax_due=Decimal("190000.00"),
        rate=Decimal("0.31667"),  # 190,000 / 60M = 0.316666...%
    )


def test_primary_residence_of_a_person_has_the_first_50m_exempt():
    result = land_building_tax("residential", 60 * M, "person", True)
    assert (result.exemption, result.taxable) == (50 * M, 10 * M)
    assert result.tax_due == Decimal("2000.00")  # 10M x 0.02%
    assert result.rate == Decimal("0.02000")


def test_residential_without_the_exemption():
    # 50M x 0.02% + 10M x 0.03% = 10,000 + 3,000, for a second home or a company
    assert land_building_tax("residential", 60 * M, "person", False).tax_due == Decimal("13000.00")
    company = land_building_tax("residential", 60 * M, "juristic", True)
    assert (company.exemption, company.tax_due) == (Decimal(0), Decimal("13000.00"))


def test_fully_exempt_residence_has_zero_tax_and_zero_rate():
    result = land_building_tax("residential", 40 * M, "person", True)
    assert result == TaxResult(40 * M, 40 * M, Decimal(0), Decimal("0.00"), Decimal(0))


def test_agricultural_land_of_a_person_and_of_a_company():
    person = land_building_tax("agricultural", 120 * M, "person", False)
    assert (person.exemption, person.taxable) == (50 * M, 70 * M)
    assert person.tax_due == Decimal("7000.00")  # 70M x 0.01%
    # 75M x 0.01% + 25M x 0.03% + 20M x 0.05% = 7,500 + 7,500 + 10,000
    company = land_building_tax("agricultural", 120 * M, "juristic", False)
    assert company.tax_due == Decimal("25000.00")
    assert company.rate == Decimal("0.02083")  # 25,000 / 120M = 0.0208333...%


def test_agricultural_every_bracket():
    # 7,500 + 7,500 + 400M x 0.05% + 500M x 0.07% + 200M x 0.1%
    # = 7,500 + 7,500 + 200,000 + 350,000 + 200,000
    result = land_building_tax("agricultural", 1_200 * M, "juristic", False)
    assert result.tax_due == Decimal("765000.00")


def test_vacant_land_every_commercial_bracket():
    # 50M x 0.3% + 150M x 0.4% + 800M x 0.5% + 4,000M x 0.6% + 1,000M x 0.7%
    # = 150,000 + 600,000 + 4,000,000 + 24,000,000 + 7,000,000
    result = land_building_tax("vacant", 6_000 * M, "person", False)
    assert result.tax_due == Decimal("35750000.00")
    assert result.rate == Decimal("0.59583")  # 35.75M / 6,000M = 0.5958333...%


def test_tax_is_rounded_half_up_to_the_satang():
    # 12,525 x 0.02% = 2.505 -> 2.51 (half-even would give 2.50)
    assert land_building_tax("residential", Decimal(12_525), "juristic", False).tax_due == Decimal(
        "2.51"
    )
    # 1,234.57 x 0.3% = 3.70371 -> 3.70
    assert land_building_tax(
        "commercial_other", Decimal("1234.57"), "juristic", False
    ).tax_due == Decimal("3.70")


@pytest.mark.parametrize(
    ("land_use", "base", "owner_kind"),
    [
        ("industrial", 1 * M, "person"),
        ("residential", Decimal(-1), "person"),
        ("residential", 1 * M, "government"),
    ],
)
def test_land_building_tax_refuses_bad_input(land_use, base, owner_kind):
    with pytest.raises(ValueError):
        land_building_tax(land_use, base, owner_kind, False)


@pytest.mark.parametrize(
    ("sign_type", "area_cm2", "moving", "expected"),
    [
        (1, 1_200, False, "200.00"),  # ceil(2.4) = 3 units x 5 = 15 -> the 200 minimum
        (1, 500, True, "200.00"),  # 1 unit x 10 -> minimum
        (3, 10_000, True, "1040.00"),  # 20 units x 52
        (2, 10_001, False, "546.00"),  # a started unit counts: ceil(20.002) = 21 x 26
        (2, 5_000, True, "520.00"),  # 10 x 52
        (3, 100_000, False, "10000.00"),  # 200 x 50
        (1, 200_000, True, "4000.00"),  # 400 x 10
    ],
)
def test_signboard_tax(sign_type, area_cm2, moving, expected):
    assert signboard_tax(sign_type, area_cm2, moving) == Decimal(expected)


@pytest.mark.parametrize(("sign_type", "area_cm2"), [(4, 1_000), (1, 0), (2, -500)])
def test_signboard_tax_refuses_bad_input(sign_type, area_cm2):
    with pytest.raises(ValueError):
        signboard_tax(sign_type, area_cm2, False)


@pytest.mark.parametrize(
    ("first12", "check"),
    [
        # 1x13 + 1x12 + 0x11 + 1x10 + 7x9 + 0x8 + 0x7 + 2x6 + 0x5 + 3x4 + 4x3 + 5x2 = 144;
        # 144 % 11 = 1; (11 - 1) % 10 = 0
        ("110170020345", 0),
        # ... = 352 = 32 x 11, so 352 % 11 = 0; (11 - 0) % 10 = 1
        ("123456789012", 1),
        # ... = 138; 138 % 11 = 6; 11 - 6 = 5
        ("310100123456", 5),
        # a Bangkok limited company registered in B.E. 2556: ... = 219; 219 % 11 = 10 -> 1
        ("010555601234", 1),
    ],
)
def test_thai_id_check_digit(first12, check):
    assert thai_id_check_digit(first12) == check
    assert is_valid_thai_id(first12 + str(check))


@pytest.mark.parametrize(
    "value",
    [
        "1101700203451",  # wrong check digit
        "110170020345",  # 12 digits
        "11017002034500",  # 14 digits
        "11017OO203450",  # letters
        "๑๑๐๑๗๐๐๒๐๓๔๕๐",  # Thai digits are digits to Python, not in an ID
        "",
    ],
)
def test_invalid_thai_ids(value):
    assert not is_valid_thai_id(value)


def test_check_digit_needs_twelve_ascii_digits():
    with pytest.raises(ValueError):
        thai_id_check_digit("11017002034")
    with pytest.raises(ValueError):
        thai_id_check_digit("๑๑๐๑๗๐๐๒๐๓๔๕")
