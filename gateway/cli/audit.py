"""``bma-gateway audit …``: create the store and its key, verify the chain, export records.

``verify`` exits 0 when the chain is intact, 1 naming the first broken record. ``export``
writes CSV or JSON Lines to stdout or a file; notes go to stderr.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from gateway.audit import archives, checkpoints
from gateway.audit import store as audit_store
from gateway.cli.credentials import on_database
from gateway.cli.failures import CommandError

EXPORT_COLUMNS = (
    "seq",
    "at",
    "requestId",
    "subject",
    "organisation",
    "audience",
    "issuer",
    "credentialId",
    "clientAddress",
    "purpose",
    "lawfulBasis",
    "operationName",
    "documentHash",
    "outcome",
    "fields",
    "records",
    "subjects",
    "hash",
)


def add_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="the audit log of restricted reads")
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database-url",
        default=os.environ.get("BMA_AUDIT_DATABASE_URL")
        or os.environ.get("BMA_GATEWAY_DATABASE_URL"),
        help="the audit store (default: BMA_AUDIT_DATABASE_URL, else BMA_GATEWAY_DATABASE_URL)",
    )
    key = argparse.ArgumentParser(add_help=False)
    key.add_argument(
        "--key-file",
        type=Path,
        default=_env_path("BMA_AUDIT_KEY_FILE"),
        help="the chain key (default: BMA_AUDIT_KEY_FILE)",
    )
    actions = audit.add_subparsers(dest="action", required=True)
    keygen = actions.add_parser("keygen", help="write a new chain key file")
    keygen.add_argument("path", type=Path)
    keygen.set_defaults(handler=_keygen)
    init = actions.add_parser(
        "init", parents=[database], help="create the store (as a database administrator)"
    )
    init.set_defaults(handler=_init)
    checkpoint_keygen = actions.add_parser(
        "checkpoint-keygen", help="write a new checkpoint signing key (and PATH.pub)"
    )
    checkpoint_keygen.add_argument("path", type=Path)
    checkpoint_keygen.set_defaults(handler=_checkpoint_keygen)
    verify = actions.add_parser("verify", parents=[database, key], help="check the hash chain")
    verify.add_argument(
        "--checkpoints",
        type=Path,
        action="append",
        help="a file of signed checkpoints (repeat for several): also find records missing "
        "after the log's end",
    )
    verify.add_argument(
        "--checkpoint-key",
        type=Path,
        help="the public key the checkpoints are signed with (the signing key's .pub)",
    )
    verify.add_argument(
        "--archives",
        type=Path,
        metavar="DIR",
        help="the directory of the archive files: walk the archived records too",
    )
    verify.set_defaults(handler=_verify)
    archive = actions.add_parser(
        "archive",
        parents=[database, key],
        help="move the records before a time into a closed archive file (as the store's owner)",
    )
    archive.add_argument(
        "--until", type=_moment, required=True, help="archive records before this (ISO 8601)"
    )
    archive.add_argument("--output-dir", type=Path, required=True, help="where archives are kept")
    archive.set_defaults(handler=_archive)
    export = actions.add_parser("export", parents=[database], help="records of a time range")
    export.add_argument("--since", type=_moment, help="from (ISO 8601, inclusive)")
    export.add_argument("--until", type=_moment, help="to (ISO 8601, exclusive)")
    export.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
    export.add_argument("--output", type=Path, help="a file (default: stdout)")
    export.set_defaults(handler=_export)


def run(args: argparse.Namespace) -> int:
    try:
        status: int = args.handler(args)
        return status
    except (ValueError, audit_store.AuditStoreError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:  # a file to read or write (keys, checkpoints, archives, --output)
        where = f" {exc.filename}" if exc.filename else ""
        raise CommandError(f"cannot use{where}: {exc.strerror or exc}") from None


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _with_database(args: argparse.Namespace, operation: Callable[[Any], Awaitable[Any]]) -> Any:
    return on_database(args.database_url, "BMA_AUDIT_DATABASE_URL", operation)


def _keygen(args: argparse.Namespace) -> int:
    try:
        audit_store.create_key(args.path)
    except FileExistsError:
        raise ValueError(f"{args.path} exists: a chain key is never overwritten") from None
    print(f"chain key written to {args.path}; give every replica the same file", file=sys.stderr)
    return 0


def _init(args: argparse.Namespace) -> int:
    _with_database(args, audit_store.ensure_store)
    print("audit store ready")
    return 0


def _checkpoint_keygen(args: argparse.Namespace) -> int:
    try:
        public = checkpoints.create_signing_key(args.path)
    except FileExistsError:
        raise ValueError(f"{args.path} exists: a signing key is never overwritten") from None
    print(
        f"checkpoint signing key written to {args.path}, its public key to {public}; keep the "
        "signing key away from the database and its owner",
        file=sys.stderr,
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    if args.key_file is None:
        raise ValueError("give --key-file or set BMA_AUDIT_KEY_FILE")
    key = audit_store.load_key(args.key_file)
    anchors = _anchors(args)
    archived = archives.ArchiveFiles(args.archives) if args.archives else None
    result: audit_store.Verification = _with_database(
        args, lambda conn: audit_store.verify(conn, key, anchors, archived)
    )
    if result.intact:
        print(
            f"audit chain intact: {result.records} records; head record {result.head_seq}, "
            f"hash {result.head_hash}"
        )
        if result.archived:
            print(
                f"records 1 to {result.archived} are archived and were not read "
                "(give --archives DIR to walk them too)",
                file=sys.stderr,
            )
        if args.checkpoints:
            print(f"{len(anchors)} checkpoints match the log", file=sys.stderr)
        return 0
    if result.wrong_key:
        raise CommandError(
            f"the key in {args.key_file} does not match the audit chain: no record's hash "
            "verifies with it; give the key the gateway writes the chain with (--key-file or "
            "BMA_AUDIT_KEY_FILE)"
        )
    print(f"audit chain BROKEN at record {result.broken_at}: {result.reason}")
    print(f"({result.records} records verified before it)", file=sys.stderr)
    return 1


def _archive(args: argparse.Namespace) -> int:
    if args.key_file is None:
        raise ValueError("give --key-file or set BMA_AUDIT_KEY_FILE")
    key = audit_store.load_key(args.key_file)
    args.output_dir.mkdir(parents=True, exist_ok=True)

    async def made(conn: Any) -> archives.Made | None:
        await audit_store.ensure_store(conn)
        return await archives.archive(conn, key, args.until, args.output_dir)

    archived: archives.Made | None = _with_database(args, made)
    if archived is None:
        print(f"nothing to archive before {args.until.isoformat()}")
        return 0
    row = archived.row
    print(
        f"archived records {row.first_seq} to {row.last_seq} ({archived.records} records) to "
        f"{archived.path}, SHA-256 {row.digest.hex()}"
    )
    return 0


def _anchors(args: argparse.Namespace) -> list[audit_store.Anchor]:
    """The checkpoints of ``--checkpoints``, every signature checked, as anchors of the walk."""
    if not args.checkpoints:
        return []
    if args.checkpoint_key is None:
        raise ValueError("--checkpoints needs --checkpoint-key (the signing key's .pub)")
    public = checkpoints.load_verify_key(args.checkpoint_key)
    return [
        audit_store.Anchor(c.seq, bytes.fromhex(c.hash), f"the checkpoint of {c.at}")
        for file in args.checkpoints
        for c in checkpoints.read_checkpoints(file, public)
    ]


def _export(args: argparse.Namespace) -> int:
    async def write(conn: Any) -> int:
        out: TextIO = (
            args.output.open("w", encoding="utf-8", newline="") if args.output else sys.stdout
        )
        try:
            return await _write_rows(conn, args, out)
        finally:
            if args.output:
                out.close()

    count = _with_database(args, write)
    print(f"{count} records exported", file=sys.stderr)
    return 0


async def _write_rows(conn: Any, args: argparse.Namespace, out: TextIO) -> int:
    writer = csv.DictWriter(out, EXPORT_COLUMNS) if args.format == "csv" else None
    if writer:
        writer.writeheader()
    count = 0
    async for row in audit_store.rows_between(conn, args.since, args.until):
        if writer:
            writer.writerow({c: _cell(row.get(c)) for c in EXPORT_COLUMNS})
        else:
            out.write(orjson.dumps(row).decode() + "\n")
        count += 1
    return count


def _cell(value: Any) -> Any:
    """CSV cells: lists and objects as JSON, so a spreadsheet shows them whole."""
    return orjson.dumps(value).decode() if isinstance(value, list | dict) else value
