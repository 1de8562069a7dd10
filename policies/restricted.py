"""Fields that are not open data, refused until the full policy model is in place.

Until per-field policies with principals exist (issue #3), the gateway has no way to tell who
may read a personal or confidential field, so it denies them to everyone unless the operator
explicitly exposes them (``BMA_EXPOSE_RESTRICTED=1``, meant for the synthetic demo data).
The check is a validation rule: it sees fields reached through aliases and every kind of
fragment, and it runs once per document because validation results are cached.
"""

from __future__ import annotations

from typing import Any

from graphql import FieldNode, GraphQLError, ValidationRule, get_named_type

# (type, field) in GraphQL names. Personal data (PDPA) and confidential tax data.
RESTRICTED_FIELDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("Owner", "name"),
        ("Owner", "nationalId"),
        ("BusinessOwner", "name"),
        ("BusinessOwner", "nationalId"),
        ("BuildingPermit", "applicantName"),
        ("Parcel", "appraisedValue"),
        ("Parcel", "assessments"),
    }
)


class RestrictedFieldsRule(ValidationRule):
    """Reports every restricted field an operation selects, with ``FORBIDDEN``."""

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        parent = self.context.get_parent_type()
        if parent is None:
            return
        parent_name = get_named_type(parent).name
        if (parent_name, node.name.value) in RESTRICTED_FIELDS:
            self.report_error(
                GraphQLError(
                    f"{parent_name}.{node.name.value} is restricted data and is not served yet",
                    node,
                    extensions={"code": "FORBIDDEN", "field": f"{parent_name}.{node.name.value}"},
                )
            )
