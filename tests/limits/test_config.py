"""Operation limits per audience: values merged onto each audience's defaults, checked strictly."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import TypeAdapter, ValidationError

from gateway.limits.config import AUDIENCES, DEFAULTS, AudienceLimits, OperationLimits

ADAPTER = TypeAdapter(AudienceLimits)


def test_defaults_when_nothing_is_given():
    limits = ADAPTER.validate_python({})
    for audience in AUDIENCES:
        assert limits.of(audience) == DEFAULTS[audience]
    assert limits.changes() == {}


def test_values_merge_onto_their_own_audiences_defaults():
    limits = ADAPTER.validate_python(
        {"anonymous": {"max_depth": 8, "introspection": False}, "agency": {"max_cost": 600_000}}
    )
    anonymous = limits.of("anonymous")
    assert anonymous.max_depth == 8
    assert anonymous.introspection is False
    # Everything else is the anonymous default, not a generic one.
    assert anonymous == dataclasses.replace(DEFAULTS["anonymous"], max_depth=8, introspection=False)
    assert anonymous.suggestions is False
    assert anonymous.max_body_bytes == 131_072
    agency = limits.of("agency")
    assert agency == dataclasses.replace(DEFAULTS["agency"], max_cost=600_000)
    assert agency.max_depth == 20  # the agency default, not anonymous's
    # Audiences not named keep their defaults.
    assert limits.of("app") == DEFAULTS["app"]
    assert limits.of("partner") == DEFAULTS["partner"]


def test_changes_lists_only_what_differs_from_the_defaults():
    limits = ADAPTER.validate_python(
        {
            "anonymous": {"max_depth": 8, "introspection": False},
            "app": {"max_depth": DEFAULTS["app"].max_depth},  # the same value: no change
            "partner": {"max_batch": 5},
        }
    )
    assert limits.changes() == {
        "anonymous": {"max_depth": 8, "introspection": False},
        "partner": {"max_batch": 5},
    }


def test_changes_round_trip():
    given = {"app": {"max_cost": 123_456, "suggestions": False}}
    limits = ADAPTER.validate_python(given)
    assert ADAPTER.validate_python(limits.changes()) == limits
    assert limits.changes() == given


def test_unknown_audience_refused_by_name():
    with pytest.raises(ValidationError) as raised:
        ADAPTER.validate_python({"robots": {"max_depth": 3}})
    assert "unknown audience 'robots'" in str(raised.value)
    assert "anonymous, app, partner, agency" in str(raised.value)


def test_unknown_key_refused_by_name():
    with pytest.raises(ValidationError) as raised:
        ADAPTER.validate_python({"app": {"max_dept": 3}})
    message = str(raised.value)
    assert "unknown key 'max_dept'" in message
    assert "max_depth" in message  # the known keys are listed


def test_unknown_key_refused_on_operation_limits_directly():
    with pytest.raises(ValidationError, match="unknown key 'colour'"):
        TypeAdapter(OperationLimits).validate_python(
            {**dataclasses.asdict(DEFAULTS["app"]), "colour": "red"}
        )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_depth", True),  # a bool is not an int
        ("max_depth", "5"),  # nor is a string
        ("max_cost", 1.0),
        ("max_batch", "10"),
        ("introspection", 1),  # an int is not a bool
        ("suggestions", "false"),
    ],
)
def test_strict_types(key, value):
    with pytest.raises(ValidationError) as raised:
        ADAPTER.validate_python({"partner": {key: value}})
    assert f"partner.{key}" in str(raised.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_depth", 0),
        ("max_depth", 101),  # past MAX_DEPTH_CEILING
        ("max_batch", 1001),
        ("max_body_bytes", 1023),
        ("max_root_fields", 0),
        ("max_variable_depth", 0),
    ],
)
def test_bounds(key, value):
    with pytest.raises(ValidationError, match=f"app.{key}"):
        ADAPTER.validate_python({"app": {key: value}})


def test_of_an_unknown_kind_is_the_anonymous_limits():
    limits = ADAPTER.validate_python({"anonymous": {"max_depth": 4}})
    assert limits.of("robot") is limits.anonymous
    assert limits.of("robot").max_depth == 4
    assert limits.of("__class__") is limits.anonymous  # not an attribute lookup
    assert limits.of("agency") is limits.agency


def test_limits_are_frozen():
    limits = ADAPTER.validate_python({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.of("app").max_depth = 99  # type: ignore[misc]


def test_batch_page_size_and_body_bytes_only_lower_the_gateway_value():
    unset = DEFAULTS["app"]
    assert unset.max_batch is None and unset.max_page_size is None
    assert unset.batch(20) == 20
    assert unset.page_size(100) == 100
    assert unset.body_bytes(1_000_000) == 1_000_000
    lower = dataclasses.replace(unset, max_batch=5, max_page_size=10, max_body_bytes=2048)
    assert lower.batch(20) == 5
    assert lower.page_size(100) == 10
    assert lower.body_bytes(1_000_000) == 2048
    higher = dataclasses.replace(unset, max_batch=500, max_page_size=10_000, max_body_bytes=10**9)
    assert higher.batch(20) == 20
    assert higher.page_size(100) == 100
    assert higher.body_bytes(1_000_000) == 1_000_000


def test_anonymous_default_body_limit_lowers_the_gateway_value():
    anonymous = DEFAULTS["anonymous"]
    assert anonymous.body_bytes(1_000_000) == 131_072
    assert anonymous.body_bytes(65_536) == 65_536
