"""Which fields of the graph reach an upstream system, read from the schema itself.

By this package's convention (see schema/types.py) a field reaches another system exactly
when its resolver is a coroutine: plain fields are filled from the record already fetched,
and synchronous resolvers (``Parcel.district``, ``Licence.valid``) compute from it. The cost
model weighs these fields by the upstream work they cause, so a new resolver that loads from
a connector is costed without being listed anywhere.
"""

from __future__ import annotations

from graphql import GraphQLField

# Where strawberry keeps its own definition of a field in the graphql-core schema it builds.
_DEFINITION = "strawberry-definition"


def reads_upstream(field: GraphQLField) -> bool:
    definition = (field.extensions or {}).get(_DEFINITION)
    resolver = getattr(definition, "base_resolver", None)
    return resolver is not None and bool(resolver.is_async)
