"""A real PgBouncer (Debian's ``/usr/sbin/pgbouncer``) in transaction pooling mode in front
of the test PostgreSQL server, for the tests of the gateway behind one (tests/test_pgbouncer.py).

Its pools are small (``POOL_SIZE`` server connections per database and user), so clients
really do share server connections: session state one client leaves behind (a ``SET ROLE``,
a named prepared statement) is met by another.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from connectors.pg import PgBouncerMode
from gateway.demo.embedded import DatabaseUrls
from gateway.http.serving import free_port
from support import wait_until

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None
)
POOL_SIZE = 2  # server connections per database and user: fewer than the tests' clients


class PgBouncer:
    """PgBouncer on a free loopback port, relaying to the server of ``server_url`` (TCP, or a
    unix socket directory as the embedded server's URL gives it)."""

    def __init__(self, server_url: str) -> None:
        assert PGBOUNCER is not None
        self.server_url = server_url
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bma-test-pgbouncer-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PgBouncer:
        parts = urlsplit(self.server_url)
        query = dict(parse_qsl(parts.query))
        host = query.get("host") or parts.hostname or "127.0.0.1"
        user = unquote(parts.username or "postgres")
        server = f"host={host} port={parts.port or query.get('port', 5432)}"
        if parts.password:
            server += f" password={unquote(parts.password)}"
        (self.dir / "users.txt").write_text(f'"{user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"""[databases]
* = {server}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir / "users.txt"}
pool_mode = transaction
default_pool_size = {POOL_SIZE}
max_client_conn = 200
"""
        )
        command = [PGBOUNCER, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root: as whoever may reach the server
            command[1:1] = ["-u", _unprivileged_user(host)]
            self.dir.chmod(0o755)
        with open(self.dir / "pgbouncer.log", "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._listening, timeout=10, what=f"PgBouncer listening: {self.log()}")
        return self

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited: {self.log()}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def log(self) -> str:
        return (self.dir / "pgbouncer.log").read_text(errors="replace")

    def url(self, direct_url: str) -> str:
        """``direct_url`` (a database on the test server) reached through this PgBouncer."""
        parts = urlsplit(direct_url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")]
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _unprivileged_user(host: str) -> str:
    """The owner of the server's socket directory (the embedded server runs as its own user,
    and only it may enter that directory), else ``nobody``."""
    if host.startswith("/"):
        owner = pwd.getpwuid(os.stat(host).st_uid).pw_name
        if owner != "root":
            return owner
    return "nobody"


@dataclass(frozen=True)
class DatabaseRoute:
    """How a test reaches the test server: straight (no ``bouncer``), or through PgBouncer."""

    bouncer: PgBouncer | None = None

    @property
    def mode(self) -> PgBouncerMode:
        """The gateway's ``BMA_PGBOUNCER`` for this route."""
        return "off" if self.bouncer is None else "transaction"

    def url(self, direct_url: str) -> str:
        return direct_url if self.bouncer is None else self.bouncer.url(direct_url)

    def urls(self, direct: DatabaseUrls) -> DatabaseUrls:
        """The gateway's databases on this route (the Traffy stand-in's stays direct)."""
        return replace(
            direct,
            **{
                name: self.url(getattr(direct, name))
                for name in ("tax", "registry", "gateway", "finance")
            },
        )


async def server_sessions(url: str) -> list[tuple[str, str]]:
    """``(session_user, current_user)`` of every server connection PgBouncer keeps for
    ``url``'s database and user: ``POOL_SIZE`` clients each hold a transaction at once, so
    each is on a server connection of its own. A role some client set on the session (and
    left there) shows as a current_user that is not the session_user."""
    conns = [await asyncpg.connect(url, statement_cache_size=0) for _ in range(POOL_SIZE)]
    try:
        seen = []
        for conn in conns:  # each keeps its transaction (and its server connection) open
            await conn.execute("BEGIN")
            row = await conn.fetchrow("SELECT session_user::text AS s, current_user::text AS c")
            seen.append((row["s"], row["c"]))
        for conn in conns:
            await conn.execute("ROLLBACK")
        return seen
    finally:
        for conn in conns:
            await conn.close()
