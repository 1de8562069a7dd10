"""``bma-gateway keys …`` and ``bma-gateway token …``: API keys and embedded-issuer tokens.

What a script wants to capture (a new key, a token) goes to stdout alone; notes go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from connectors.pg import PGBOUNCER_MODES, PgBouncerMode, connect_options
from gateway.auth.api_keys import ApiKeyRecord, create_key, ensure_schema, list_keys, revoke_key
from gateway.auth.issuer import MAX_TOKEN_LIFETIME, EmbeddedIssuer
from gateway.auth.trust import DEFAULT_AUDIENCE
from gateway.cli.failures import FAILED, CommandError, unreachable
from gateway.settings import POSTGRESQL_SCHEMES, redacted_url
from policies.principal import Level

_TTL = re.compile(r"(\d+)([smhd]?)")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def default_key_file() -> Path:
    """``BMA_ISSUER_KEY_FILE``, else the demo's key file."""
    configured = os.environ.get("BMA_ISSUER_KEY_FILE", "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".local" / "share" / "bma-gateway" / "issuer-key.pem"


def add_commands(commands: Any) -> None:
    """Add ``keys`` and ``token`` to the top-level subcommands."""
    _add_keys(commands.add_parser("keys", help="API keys for app developers"))
    _add_token(commands.add_parser("token", help="tokens of the embedded issuer"))


def _add_keys(keys: argparse.ArgumentParser) -> None:
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database-url",
        default=os.environ.get("BMA_GATEWAY_DATABASE_URL"),
        help="the gateway's database (default: BMA_GATEWAY_DATABASE_URL)",
    )
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[database], help="create a key, shown once")
    create.add_argument("--name", required=True, help="what the key is for, e.g. the app")
    create.add_argument("--org", required=True, help="the organisation holding it")
    create.set_defaults(handler=_keys_create)
    listing = actions.add_parser("list", parents=[database], help="list keys (never secrets)")
    listing.set_defaults(handler=_keys_list)
    revoke = actions.add_parser("revoke", parents=[database], help="revoke a key by its id")
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(handler=_keys_revoke)


def _add_token(token: argparse.ArgumentParser) -> None:
    key_file = argparse.ArgumentParser(add_help=False)
    key_file.add_argument(
        "--key-file",
        type=Path,
        default=None,
        help="the embedded issuer's key file (default: BMA_ISSUER_KEY_FILE, else the demo's)",
    )
    actions = token.add_subparsers(dest="action", required=True)
    issue = actions.add_parser("issue", parents=[key_file], help="print a signed token")
    issue.add_argument("--audience", required=True, choices=["partner", "agency"])
    issue.add_argument("--org", required=True)
    issue.add_argument("--scopes", default="", help='space-separated, e.g. "tax:read"')
    issue.add_argument("--clearance", default="public", choices=[lv.label for lv in Level])
    issue.add_argument("--district", action="append", help="row scope; repeat for several")
    issue.add_argument("--purpose")
    issue.add_argument("--subject", help="the `sub` claim (default: <audience>:<org>)")
    issue.add_argument("--ttl", default="1h", help="lifetime: 90s, 30m, 12h, 7d (max 30d)")
    issue.set_defaults(handler=_token_issue)
    rotate = actions.add_parser("rotate", parents=[key_file], help="add a new signing key")
    rotate.set_defaults(handler=_token_rotate)
    retire = actions.add_parser("retire", parents=[key_file], help="drop a key from the JWKS")
    # An option, not a positional: a thumbprint kid may start with "-", which argparse would
    # take for a flag.
    retire.add_argument("--kid", required=True, help="the key id to drop")
    retire.set_defaults(handler=_token_retire)


def run(args: argparse.Namespace) -> int:
    try:
        status: int = args.handler(args)
        return status
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:  # a key file that cannot be read or written
        where = f" {exc.filename}" if exc.filename else ""
        raise CommandError(f"cannot use{where}: {exc.strerror or exc}") from None


# --- keys ---------------------------------------------------------------------------------


def on_database(url: str | None, variable: str, operation: Any) -> Any:
    """Run ``operation(conn)`` on one connection to ``url`` (the CLI's database commands);
    without a URL, say which option or variable gives it; a URL that is not PostgreSQL's, a
    server that cannot be reached or refuses the login, or a statement it refuses: one line."""
    if not url:
        raise CommandError(f"give --database-url or set {variable}")
    if urlsplit(url).scheme.lower() not in POSTGRESQL_SCHEMES:
        raise CommandError(
            f"--database-url or {variable}: not a PostgreSQL URL ({redacted_url(url)}); "
            "use postgresql://user:password@host:port/database"
        )

    async def call() -> Any:
        try:
            conn = await asyncpg.connect(url, timeout=10, **connect_options(_pgbouncer()))
        except (TimeoutError, OSError, asyncpg.PostgresError, ValueError) as exc:
            raise unreachable(f"the database of {variable}", url, exc) from None
        try:
            return await operation(conn)
        except asyncpg.PostgresError as exc:
            raise CommandError(
                f"the database at {redacted_url(url)} refused: {exc}", FAILED
            ) from None
        finally:
            await conn.close()

    return asyncio.run(call())


def _pgbouncer() -> PgBouncerMode:
    """``BMA_PGBOUNCER`` as ``serve`` reads it: the commands may reach the database through
    the same PgBouncer."""
    given = os.environ.get("BMA_PGBOUNCER", "off").strip().lower() or "off"
    for mode in PGBOUNCER_MODES:
        if given == mode:
            return mode
    raise CommandError(f"BMA_PGBOUNCER: {given!r} is not one of {', '.join(PGBOUNCER_MODES)}")


def _with_database(args: argparse.Namespace, operation: Any) -> Any:
    async def with_schema(conn: Any) -> Any:
        await ensure_schema(conn)
        return await operation(conn)

    return on_database(args.database_url, "BMA_GATEWAY_DATABASE_URL", with_schema)


def _keys_create(args: argparse.Namespace) -> int:
    record, key = _with_database(args, lambda conn: create_key(conn, args.name, args.org))
    print(key)
    print(
        f"Created API key {record.id} ({record.name}, {record.organisation}). Store it now: "
        "the gateway keeps only a hash and cannot show it again.",
        file=sys.stderr,
    )
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    records: list[ApiKeyRecord] = _with_database(args, list_keys)
    rows: list[tuple[str, ...]] = [("id", "name", "organisation", "created", "last used", "state")]
    rows += [_key_row(r) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def _key_row(record: ApiKeyRecord) -> tuple[str, ...]:
    def when(moment: Any) -> str:
        return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"

    state = f"revoked {when(record.revoked_at)}" if record.revoked else "active"
    return (
        record.id,
        record.name,
        record.organisation,
        when(record.created_at),
        when(record.last_used_at),
        state,
    )


def _keys_revoke(args: argparse.Namespace) -> int:
    record = _with_database(args, lambda conn: revoke_key(conn, args.key_id))
    if record is None:
        print(f"bma-gateway: no API key {args.key_id!r}", file=sys.stderr)
        return 1
    print(f"Revoked {record.id} ({record.name}, {record.organisation}) at {record.revoked_at}.")
    return 0


# --- tokens -------------------------------------------------------------------------------


def _issuer(args: argparse.Namespace, *, create: bool = True) -> EmbeddedIssuer:
    """The issuer of the key file; a missing file is created with a first key, and said so
    (a gateway trusts that key only if its BMA_ISSUER_KEY_FILE names the same file)."""
    audience = os.environ.get("BMA_JWT_AUDIENCE", "").strip() or DEFAULT_AUDIENCE
    path = (args.key_file or default_key_file()).expanduser()
    if path.exists():
        return EmbeddedIssuer.open(path, audience=audience)
    if not create:
        raise CommandError(
            f"no issuer key file at {path}; give --key-file or set BMA_ISSUER_KEY_FILE"
        )
    issuer = EmbeddedIssuer.open(path, audience=audience)
    print(
        f"bma-gateway: note: there was no issuer key file at {path}, so a new signing key "
        f"({issuer.current.kid}) was created there; gateways accept its tokens only if their "
        "BMA_ISSUER_KEY_FILE names this file",
        file=sys.stderr,
    )
    return issuer


def _known(args: argparse.Namespace) -> tuple[frozenset[str], frozenset[str]]:
    """The scopes and purposes a token may carry: those the policy (``BMA_POLICY_FILE``, else
    the shipped one) names, and the gateway's own ``metrics:read``."""
    from gateway.http.preflight import POLICY_VARIABLE
    from gateway.http.probes import METRICS_SCOPE
    from policies.model import DEFAULT_POLICY, PolicyError, load_policy

    configured = os.environ.get(POLICY_VARIABLE, "").strip()
    path = Path(configured).expanduser() if configured else DEFAULT_POLICY
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        raise CommandError(f"{POLICY_VARIABLE} {path}: {'; '.join(exc.problems)}") from None
    return policy.scopes() | {METRICS_SCOPE}, frozenset(policy.purposes)


def checked_scopes(text: str, known: frozenset[str]) -> str:
    """``--scopes`` as the token will carry it (space-separated), every scope one the policy
    names: a misspelt one, or a comma-separated list, grants nothing and is refused."""
    scopes = text.split()
    unknown = [s for s in scopes if s not in known]
    if not unknown:
        return " ".join(scopes)
    hint = " (scopes are separated by spaces, not commas)" if any("," in s for s in unknown) else ""
    raise CommandError(
        f"--scopes: unknown scope {unknown[0]!r}{hint}; the policy's scopes are "
        f"{', '.join(sorted(known))}"
    )


def _token_issue(args: argparse.Namespace) -> int:
    scopes, purposes = _known(args)
    if args.purpose is not None and args.purpose not in purposes:
        raise CommandError(
            f"--purpose: unknown purpose {args.purpose!r}; the policy's purposes are "
            f"{', '.join(sorted(purposes))}"
        )
    token = _issuer(args).issue(
        args.audience,
        args.org,
        checked_scopes(args.scopes, scopes),
        args.clearance,
        district=_district(args.district),
        purpose=args.purpose,
        ttl=parse_ttl(args.ttl),
        subject=args.subject,
    )
    print(token)
    return 0


def _district(values: list[str] | None) -> str | list[str] | None:
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _token_rotate(args: argparse.Namespace) -> int:
    issuer = _issuer(args)
    key = issuer.rotate()
    print(key.kid)
    print(
        f"New signing key {key.kid} in {issuer.path}; older keys keep verifying until retired.",
        file=sys.stderr,
    )
    return 0


def _token_retire(args: argparse.Namespace) -> int:
    issuer = _issuer(args, create=False)
    issuer.retire(args.kid)
    print(f"Retired {args.kid}; tokens it signed are refused once gateways reload their keys.")
    return 0


def parse_ttl(text: str) -> timedelta:
    """``90``, ``90s``, ``30m``, ``12h`` or ``7d``; positive and at most 30 days."""
    match = _TTL.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"--ttl {text!r}: use a number with s, m, h or d, e.g. 12h")
    ttl = timedelta(seconds=int(match[1]) * _TTL_UNITS[match[2]])
    if not timedelta(0) < ttl <= MAX_TOKEN_LIFETIME:
        raise ValueError(
            f"--ttl {text!r}: must be more than 0 and at most {MAX_TOKEN_LIFETIME.days} days"
        )
    return ttl
