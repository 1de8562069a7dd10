"""Row scope: the districts whose rows a principal may read.

A district officer's token names her district (``district`` claim); her lists hold only its
rows, and a record of another district is not found. A principal without one reads the
whole city. Which types are rows, and scoped by what, the policy says (``row_scope`` on a
type in ``policy.toml``); the gateway holds every object of such a type to the scope
wherever it is reached from (``admits_row``), and resolvers of lists push the scope into the
upstream query (``narrowed``) so that rows out of scope never leave their source and counts
and pages are right. Aggregates (a district's revenue, counts) are not rows: they stay whole
for everyone.
"""

from __future__ import annotations

from collections.abc import Mapping

from policies.principal import Principal

# What a type may be row-scoped by, and the attribute every object of such a type carries
# to say where it belongs. The type must also have a public field of the same name (so a
# caller can see why a row is or is not in its scope).
DIMENSIONS: Mapping[str, str] = {"district": "district_code"}


def narrowed(principal: Principal, codes: tuple[str, ...]) -> tuple[str, ...] | None:
    """A district filter narrowed to the principal's row scope; None when nothing is left.

    ``()`` means "no district filter" (every district), hence None, not (), for "no rows".
    """
    if principal.districts is None:
        return codes
    if not codes:  # every district the scope holds; none at all when it holds none
        return tuple(sorted(principal.districts)) or None
    narrowed = tuple(c for c in codes if c in principal.districts)
    return narrowed or None


def admits(principal: Principal, district_code: str) -> bool:
    """Whether a row of ``district_code`` is in the principal's row scope."""
    return principal.districts is None or district_code in principal.districts


def admits_row(principal: Principal, dimension: str, row: object) -> bool:
    """Whether ``row``, an object of a type row-scoped by ``dimension``, is in the
    principal's scope. A row that does not say where it belongs is not (deny by default)."""
    if principal.districts is None:
        return True
    place = getattr(row, DIMENSIONS[dimension], None)
    return isinstance(place, str) and place in principal.districts
