"""``bma-gateway documents add|list|remove``: each client's registered (trusted) documents.

The gateway's database (``--database-url``, else ``BMA_GATEWAY_DATABASE_URL``) holds them;
an operator registers them, logged in as its owner (the gateway's own role only reads them).
What a script wants to capture (the hashes) goes to stdout; notes go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg

from gateway.cli.credentials import on_database
from gateway.execution.document_registry import (
    RegisteredDocument,
    add_documents,
    ensure_schema,
    list_documents,
    remove_documents,
)
from gateway.execution.manifests import read_manifest


def add_commands(commands: Any) -> None:
    documents = commands.add_parser(
        "documents", help="trusted documents: each client's registered operations"
    )
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database-url",
        default=os.environ.get("BMA_GATEWAY_DATABASE_URL"),
        help="the gateway's database (default: BMA_GATEWAY_DATABASE_URL)",
    )
    actions = documents.add_subparsers(dest="action", required=True)
    add = actions.add_parser(
        "add",
        parents=[database],
        help="register a client's documents: a .graphql file or a .json manifest (hash -> text)",
    )
    add.add_argument("--client", required=True, help="the client (app) they belong to")
    add.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add.set_defaults(handler=_add)
    listing = actions.add_parser("list", parents=[database], help="list registered documents")
    listing.add_argument("--client", help="only this client's")
    listing.set_defaults(handler=_list)
    remove = actions.add_parser(
        "remove", parents=[database], help="remove a client's document, or all of them"
    )
    remove.add_argument("--client", required=True)
    remove.add_argument("sha256", nargs="?", metavar="HASH", help="sha256:<hex> (default: all)")
    remove.set_defaults(handler=_remove)


def run(args: argparse.Namespace) -> int:
    try:
        status: int = args.handler(args)
        return status
    except ValueError as exc:  # a bad manifest or option, a missing database URL
        print(f"bma-gateway: {exc}", file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"bma-gateway: cannot reach the gateway's database: {exc}", file=sys.stderr)
        return 1


def _with_database(args: argparse.Namespace, operation: Any) -> Any:
    async def with_schema(conn: Any) -> Any:
        await ensure_schema(conn)
        return await operation(conn)

    return on_database(args.database_url, "BMA_GATEWAY_DATABASE_URL", with_schema)


def _add(args: argparse.Namespace) -> int:
    from schema import graphql_schema

    schema = graphql_schema()
    # Every file checked before anything is stored: a bad one registers nothing.
    documents = {d.sha256: d for path in args.files for d in read_manifest(path, schema)}
    ordered = sorted(documents.values(), key=lambda d: d.sha256)
    added = _with_database(args, lambda conn: add_documents(conn, args.client, ordered))
    for document in ordered:
        print(f"sha256:{document.sha256}\t{' '.join(document.operations)}")
    print(
        f"Registered {len(added)} new document(s) for {args.client} "
        f"({len(ordered) - len(added)} already registered).",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    records: list[RegisteredDocument] = _with_database(
        args, lambda conn: list_documents(conn, args.client)
    )
    rows = [("client", "document", "operations", "added")]
    rows += [
        (
            r.client,
            f"sha256:{r.sha256}",
            " ".join(r.operations),
            r.added_at.strftime("%Y-%m-%d %H:%M"),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _remove(args: argparse.Namespace) -> int:
    sha = args.sha256.removeprefix("sha256:") if args.sha256 else None
    removed = _with_database(args, lambda conn: remove_documents(conn, args.client, sha))
    what = f"document sha256:{sha}" if sha else "documents"
    if not removed:
        print(f"bma-gateway: no {what} registered for client {args.client!r}", file=sys.stderr)
        return 1
    print(
        f"Removed {removed} {'document' if removed == 1 else 'documents'} of {args.client}; "
        "gateways stop running them within BMA_TRUSTED_DOCUMENTS_CACHE_SECONDS."
    )
    return 0
