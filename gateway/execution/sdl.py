"""The schema a principal may see, as SDL: what ``bma-gateway schema print`` prints for an
audience and ``/graphql/schema.graphql`` serves to its caller.

It is the schema introspection answers the same principal (``policies.visibility``: denied
fields and the types they emptied left out), printed by graphql-core, so a client generating
code from it, or validating its operations against it, sees exactly what it may read.
"""

from __future__ import annotations

from functools import lru_cache

from graphql import GraphQLSchema, print_schema

# Visible schemas are few (one per set of grants) and cached by the executor: their SDL too.
_SDL_CACHE_SIZE = 64


@lru_cache(maxsize=_SDL_CACHE_SIZE)
def schema_sdl(visible: GraphQLSchema) -> str:
    """``visible`` as SDL, ending with a newline like any text file."""
    return print_schema(visible) + "\n"
