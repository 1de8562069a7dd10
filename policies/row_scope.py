"""Row scope: the districts whose rows a principal may read.

A district officer's token names her district (``district`` claim); her lists hold only its
rows, and a record of another district is not found. A principal without one reads the
whole city. Resolvers ask here and push the answer into the upstream query, so rows out of
scope never leave their source. Aggregates (a district's revenue, counts) are not rows:
they stay whole for everyone.
"""

from __future__ import annotations

from policies.principal import Principal


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
