"""Everything the gateway needs before it starts, checked at once: the settings, the policy
and the catalogue they name (against the schema), the key files, that its login may write
the audit store, and the listening port.

``config check`` prints what this finds; ``serve``, the demo and ``catalog export`` refuse to
start on it. Every problem is a line of its own naming its variable (or option) — never a
traceback, never one problem at a time when several can be found.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from graphql import GraphQLSchema

from connectors.pg import connect_options
from gateway.audit.checkpoints import load_signing_key
from gateway.audit.store import AuditStoreError, load_key, writer_problem
from gateway.audit.writer import STORE_DOWN
from gateway.settings import ConfigError, Settings, read_config_file
from policies.catalog import DEFAULT_CATALOG, Catalog, CatalogError, load_catalog
from policies.model import DEFAULT_POLICY, Policy, PolicyError, load_policy

POLICY_VARIABLE = "BMA_POLICY_FILE"
CATALOG_VARIABLE = "BMA_CATALOG_FILE"


class StartRefused(Exception):
    """The gateway cannot start here and now (its port is taken, its database unreachable):
    ``message`` says why and what to do; ``status`` is the command's exit status."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Checked:
    settings: Settings
    policy: Policy
    catalog: Catalog
    schema: GraphQLSchema


def environment() -> dict[str, str]:
    """The process's environment over ``BMA_CONFIG_FILE``'s lines (when it can be read: when
    it cannot, reading the settings says so)."""
    given = dict(os.environ)
    config_file = given.get("BMA_CONFIG_FILE", "").strip()
    if config_file:
        try:
            given = {**read_config_file(Path(config_file)), **given}
        except ConfigError:
            pass
    return given


def checked(env: Mapping[str, str] | None = None, *, databases: bool = True) -> Checked:
    """The settings of ``env`` (default: the process's environment) and the files they name,
    all checked, and with ``databases`` that the login may write the audit store; ConfigError
    lists everything wrong. (The demo, which creates its databases and roles after this
    check, checks without them.)"""
    from schema import graphql_schema

    given = environment() if env is None else dict(env)
    problems: list[str] = []
    settings = None
    try:
        settings = Settings.from_env(given)
    except ConfigError as exc:
        problems += exc.problems
    schema = graphql_schema()
    policy_path = (settings.policy_file if settings else given.get(POLICY_VARIABLE, "")).strip()
    catalog_path = (settings.catalog_file if settings else given.get(CATALOG_VARIABLE, "")).strip()
    policy = policy_problems(policy_path, POLICY_VARIABLE, schema, problems)
    catalog = None
    if policy is not None:
        catalog = catalog_problems(catalog_path, CATALOG_VARIABLE, policy, schema, problems)
    if settings is not None:
        problems += key_problems(settings)
        if databases:
            problems += audit_writer_problems(settings)
    if problems or settings is None or policy is None or catalog is None:
        raise ConfigError(problems)
    return Checked(settings, policy, catalog, schema)


def policy_problems(
    path: str | Path, where: str, schema: GraphQLSchema, problems: list[str]
) -> Policy | None:
    """The policy at ``path`` (empty: the shipped one) checked against the schema; None
    after adding its problems, each naming ``where`` it came from (a variable, an option)."""
    from schema import check_policy

    source = Path(path).expanduser() if str(path) else DEFAULT_POLICY
    try:
        policy = load_policy(source)
        check_policy(policy, schema)
    except PolicyError as exc:
        problems += [f"{_named(where, path)}: {p}" for p in exc.problems]
        return None
    return policy


def catalog_problems(
    path: str | Path, where: str, policy: Policy, schema: GraphQLSchema, problems: list[str]
) -> Catalog | None:
    source = Path(path).expanduser() if str(path) else DEFAULT_CATALOG
    try:
        catalog = load_catalog(source)
        catalog.check(policy, schema)
    except CatalogError as exc:
        problems += [f"{_named(where, path)}: {p}" for p in exc.problems]
        return None
    return catalog


def _named(where: str, path: str | Path) -> str:
    return f"{where} {path}" if str(path) else f"the shipped file ({where} unset)"


def key_problems(settings: Settings) -> list[str]:
    """The key files the settings name, read as the gateway reads them at start."""
    problems = []
    if settings.audit_key_file:
        try:
            load_key(settings.audit_key_file)
        except AuditStoreError as exc:
            problems.append(f"BMA_AUDIT_KEY_FILE: {exc}")
    if settings.audit_checkpoint_key_file:
        try:
            load_signing_key(settings.audit_checkpoint_key_file)
        except AuditStoreError as exc:
            problems.append(f"BMA_AUDIT_CHECKPOINT_KEY_FILE: {exc}")
    return problems


def audit_writer_problems(settings: Settings) -> list[str]:
    """Whether the gateway's login may append to the audit store as its writer role (a
    rolled-back attempt: nothing is written). A store that cannot be reached now is no
    problem here: the gateway starts, serves public data, and refuses restricted reads
    until the store is back."""
    url = settings.audit_store_url
    if not (url and settings.audit_key_file):
        return []

    async def check() -> str | None:
        try:
            conn = await asyncpg.connect(
                url,
                timeout=settings.audit_timeout,
                command_timeout=settings.audit_timeout,
                **connect_options(settings.pgbouncer),
            )
        except STORE_DOWN:
            return None
        try:
            return await writer_problem(conn)
        except STORE_DOWN:
            return None
        finally:
            await conn.close()

    problem = asyncio.run(check())
    variable = (
        "BMA_AUDIT_DATABASE_URL" if settings.audit_database_url else "BMA_GATEWAY_DATABASE_URL"
    )
    return [f"{variable}: {problem}"] if problem else []


def check_port(host: str, port: int, variable: str | None = None) -> None:
    """Refuse, before anything is printed or started, to listen where another process
    already does, suggesting a free port (``--port``, or ``variable`` too)."""
    try:
        _bind(host, port)
    except OSError as exc:
        choose = "--port" + (f" (or {variable})" if variable else "")
        if exc.errno != errno.EADDRINUSE:
            raise StartRefused(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and {choose}"
            ) from None
        free = next((p for p in range(port + 1, min(port + 50, 65536)) if _free(host, p)), None)
        example = f", e.g. --port {free}" if free else ""
        raise StartRefused(
            f"port {port} on {host} is already in use (another gateway or demo?); choose "
            f"another with {choose}{example}"
        ) from None


def _bind(host: str, port: int) -> None:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn binds: a port held only by connections closing (TIME_WAIT) is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)


def _free(host: str, port: int) -> bool:
    try:
        _bind(host, port)
    except OSError:
        return False
    return True
