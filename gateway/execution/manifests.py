"""A client's documents to register, read from the files its build produces.

- ``.graphql`` (or ``.gql``): the file's text is one document; when it holds several
  operations, each is also a document of its own, printed with the fragments it uses
  (graphql-core's ``separate_operations`` and ``print_ast``: the text a client that prints one
  operation at a time sends).
- ``.json``: a map of hash to document text — GraphQL Code Generator's client preset
  (``persistedDocuments``), Relay's and Hive's manifests, keys bare or ``sha256:``-prefixed —
  or Apollo's ``apollo-persisted-query-manifest`` (``@apollo/generate-persisted-query-manifest``:
  ``{"format": ..., "version": 1, "operations": [{"id", "name", "type", "body"}]}``).

Every hash given is checked: it must be the SHA-256 of its document's text, exactly (an MD5
or SHA-1 manifest is refused, naming the key). Every document must parse and be valid against
the gateway's schema, so a manifest built against another schema is refused before anything
is stored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    GraphQLSchema,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    parse,
    print_ast,
    separate_operations,
    specified_rules,
    validate,
)

from gateway.execution.document_registry import NewDocument

APOLLO_FORMAT = "apollo-persisted-query-manifest"
_HEX = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """A manifest that cannot be registered; the message names the file and what is wrong."""


def read_manifest(path: Path, schema: GraphQLSchema) -> list[NewDocument]:
    """The documents of a manifest or GraphQL file, checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from None
    if path.suffix in (".graphql", ".gql"):
        found = _graphql_file(text)
    elif path.suffix == ".json":
        found = _json_manifest(path, text)
    else:
        raise ManifestError(f"{path}: give a .graphql file or a .json manifest")
    documents = [_checked(path, sha, body, schema) for sha, body in found]
    if not documents:
        raise ManifestError(f"{path} holds no document")
    unique = {d.sha256: d for d in documents}
    return sorted(unique.values(), key=lambda d: d.sha256)


def _graphql_file(text: str) -> list[tuple[str | None, str]]:
    """The file as one document and, when it holds several operations, each on its own."""
    found: list[tuple[str | None, str]] = [(None, text)]
    try:
        document = parse(text)
    except GraphQLSyntaxError:
        return found  # reported by the check, with its location
    if sum(isinstance(d, OperationDefinitionNode) for d in document.definitions) > 1:
        found += [(None, print_ast(part)) for part in separate_operations(document).values()]
    return found


def _json_manifest(path: Path, text: str) -> list[tuple[str | None, str]]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(data, Mapping) and data.get("format") == APOLLO_FORMAT:
        return list(_apollo_operations(path, data))
    if isinstance(data, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        return [(key, body) for key, body in data.items()]
    raise ManifestError(
        f"{path}: expected a JSON object of hash to document text, or an {APOLLO_FORMAT}"
    )


def _apollo_operations(path: Path, data: Mapping[str, Any]) -> Iterable[tuple[str | None, str]]:
    if data.get("version") != 1:
        raise ManifestError(f"{path}: only version 1 of the {APOLLO_FORMAT} is known")
    operations = data.get("operations")
    if not isinstance(operations, list):
        raise ManifestError(f"{path}: `operations` must be a list")
    for n, operation in enumerate(operations):
        if not (
            isinstance(operation, Mapping)
            and isinstance(operation.get("id"), str)
            and isinstance(operation.get("body"), str)
        ):
            raise ManifestError(f"{path}: operation {n} needs a string `id` and `body`")
        yield operation["id"], operation["body"]


def _checked(path: Path, given: str | None, body: str, schema: GraphQLSchema) -> NewDocument:
    sha = hashlib.sha256(body.encode()).hexdigest()
    if given is not None:
        key = given.removeprefix("sha256:")
        if not _HEX.fullmatch(key):
            raise ManifestError(
                f"{path}: {given!r} is not a SHA-256 (64 lower-case hex digits): register "
                "documents by the SHA-256 of their text"
            )
        if key != sha:
            raise ManifestError(
                f"{path}: the document under {given} has the SHA-256 {sha}: the manifest "
                "does not match its documents"
            )
    name = given or f"sha256:{sha}"
    try:
        document = parse(body)
    except GraphQLSyntaxError as exc:
        raise ManifestError(f"{path}: {name} is not GraphQL: {exc.message}") from None
    invalid = validate(schema, document, specified_rules)
    if invalid:
        reasons = "; ".join(e.message for e in invalid[:3])
        raise ManifestError(f"{path}: {name} does not fit the gateway's schema: {reasons}")
    return NewDocument(sha, body, _operation_names(document))


def _operation_names(document: DocumentNode) -> tuple[str, ...]:
    return tuple(
        d.name.value if d.name else "-"
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )
