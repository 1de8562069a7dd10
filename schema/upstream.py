"""Which fields of the graph reach an upstream system, read from the schema itself.

By this package's convention (see schema/types.py) a field reaches another system exactly
when its resolver is a coroutine, or is marked ``@loads_upstream``: plain fields are filled
from the record already fetched, and synchronous resolvers (``Parcel.district``,
``Licence.valid``) compute from it. A resolver that answers at once when its page loaded the
records, and loads them itself otherwise (``Parcel.owner``), is synchronous but reads
upstream: it carries the mark. The cost model weighs these fields by the upstream work they
cause, so a new resolver that loads from a connector is costed without being listed
anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from graphql import GraphQLField

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__loads_upstream__"

# Where strawberry keeps its own definition of a field in the graphql-core schema it builds.
_DEFINITION = "strawberry-definition"


def loads_upstream(resolver: F) -> F:
    """Mark a synchronous resolver that may load from a connector (it returns the value, or
    an awaitable that loads it)."""
    setattr(resolver, _MARK, True)
    return resolver


def reads_upstream(field: GraphQLField) -> bool:
    definition = (field.extensions or {}).get(_DEFINITION)
    resolver = getattr(definition, "base_resolver", None)
    if resolver is None:
        return False
    return bool(resolver.is_async) or getattr(resolver.wrapped_func, _MARK, False)
