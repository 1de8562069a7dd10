"""A document's way from text to something that may run: limits, parse, validation, cached.

Before anything else a document is held to the limits of the caller's audience
(``gateway.limits``): its tokens read by the scan, then — once parsed — its depth through
fragments, root fields, introspection and a lower bound of its cost; only then validation,
whose time grows faster than the document. All of it depends only on the document's text and
the audience (its limits, whether suggestions are shown), so it is done once per pair.

A document named by hash (a registered or automatically persisted one,
``gateway.execution.trusted``) is kept by its hash and audience instead of its text: its
lookup costs no pass over the text, and a registered document is kept whatever its length.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    NoFragmentCyclesRule,
    parse,
    recommended_rules,
    specified_rules,
    validate,
)

from gateway import errors
from gateway.execution.input_values import TextOnlyRule
from gateway.execution.introspection import Split, split
from gateway.execution.outcome import with_code
from gateway.limits.config import AudienceLimits
from gateway.limits.cost import CostModel, too_costly
from gateway.limits.scan import scan
from gateway.limits.shape import Analysis

CACHE_SIZE = 1024
# Documents longer than this are prepared every time: caching them would let a client fill
# memory with large one-off documents (1,024 entries of 1 MB each).
CACHEABLE_LENGTH = 20_000
# Documents kept by hash: registered ones (an operator's choice, whatever their length) and
# automatically persisted ones (no longer than CACHEABLE_LENGTH).
BY_HASH_SIZE = 4096
# The specified rules, graphql-core's recommended MaxIntrospectionDepthRule, which stops
# introspection that recurses through `fields { type { fields { type ...`, and ours: string
# literals hold only text.
RULES = (*specified_rules, *recommended_rules, TextOnlyRule)


@dataclass(frozen=True)
class Parsed:
    document: DocumentNode
    introspects: bool  # selects __schema or __type: runs against the principal's schema
    # The cost of each operation by name, when no variable changes it.
    static_costs: Mapping[str | None, int] = field(default_factory=dict)
    # SHA-256 of the text: computed once per document, like the parse, not once per request.
    digest: str = ""
    # When it introspects: its data and its introspection, to run apart (``introspection``).
    parts: Split | None = None


@dataclass(frozen=True)
class Refused:
    """A document that does not run: over a limit, not GraphQL, or invalid."""

    errors: list[GraphQLError]
    invalid: DocumentNode | None = None  # the document, when validation refused it


class Documents:
    """Documents prepared for execution, by text and audience."""

    def __init__(self, schema: GraphQLSchema, limits: AudienceLimits, cost: CostModel) -> None:
        self.schema = schema
        self.limits = limits
        self.cost = cost
        self._cached = lru_cache(maxsize=CACHE_SIZE)(self._prepare)
        self._by_hash: OrderedDict[tuple[str, str], Parsed | Refused] = OrderedDict()

    def prepared(self, query: str, audience: str, known: str | None = None) -> Parsed | Refused:
        """``query`` ready to run (or why it does not); ``known``: its SHA-256, when it was
        named by hash (then it is kept by hash)."""
        if known is not None:
            return self._known(query, audience, known)
        if len(query) > CACHEABLE_LENGTH:
            return self._prepare(query, audience)
        return self._cached(query, audience)

    def _known(self, query: str, audience: str, digest: str) -> Parsed | Refused:
        key = (digest, audience)
        found = self._by_hash.get(key)
        if found is None:
            found = self._prepare(query, audience)
            self._by_hash[key] = found
            if len(self._by_hash) > BY_HASH_SIZE:
                self._by_hash.popitem(last=False)
        else:
            self._by_hash.move_to_end(key)
        return found

    def _prepare(self, query: str, audience: str) -> Parsed | Refused:
        limits = self.limits.of(audience)
        exceeded = scan(query, limits)  # before parsing: one pass over the tokens
        if exceeded:
            return Refused([exceeded.graphql_error()])
        try:
            # The scan has counted the same tokens: the parser's own bound is a safety net.
            document = parse(query, max_lexical_tokens=limits.max_tokens)
        except GraphQLSyntaxError as exc:
            return Refused([with_code(exc, errors.GRAPHQL_PARSE_FAILED)])
        analysis = Analysis.of(document)
        exceeded = analysis.exceeds(limits)
        if exceeded:
            return Refused([exceeded.graphql_error()])
        if analysis.fragments:
            # Cycles first, with their own rule (linear): in the full validation a ring of
            # 150 fragments costs a quarter of a second.
            cycles = validate(self.schema, document, [NoFragmentCyclesRule])
            if cycles:
                return Refused([with_code(e, errors.GRAPHQL_VALIDATION_FAILED) for e in cycles])
        # Before validation as well: a document of thousands of fields is refused for its
        # cost without being validated. A `first` given by a variable counts 0 here.
        costs, dynamic = self.cost.bounds(document)
        lowest = min(costs.values(), default=0)
        if lowest > limits.max_cost:
            return Refused([too_costly(limits, lowest).graphql_error()])
        invalid = validate(self.schema, document, RULES, hide_suggestions=not limits.suggestions)
        if invalid:
            return Refused(
                [with_code(e, errors.GRAPHQL_VALIDATION_FAILED) for e in invalid], document
            )
        digest = hashlib.sha256(query.encode()).hexdigest()
        parts = split(self.schema, document) if analysis.introspects else None
        return Parsed(document, analysis.introspects, {} if dynamic else costs, digest, parts)
