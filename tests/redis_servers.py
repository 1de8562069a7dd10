"""Redis servers and a Sentinel of a test's own, on free loopback ports, to stop, restart and
fail over without touching the shared Redis (``REDIS_URL``).

They need Debian's ``redis-server`` (the same binary runs a Sentinel with ``--sentinel``):
a test asking for one is skipped, with the reason, where it is absent; under CI (``.ci/run``
installs it) that is a failure instead, as for the browser tests.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import redis

from gateway.http.serving import free_port
from support import unavailable, wait_until

REDIS_SERVER = shutil.which("redis-server")
MASTER_NAME = "bmatest"


def redis_server_binary() -> str:
    if REDIS_SERVER is None:
        unavailable("no redis-server on this machine (Debian: apt-get install redis-server)")
    return REDIS_SERVER


class RedisServer:
    """One ``redis-server`` process, keeping its port across restarts as a restarted server
    (or a pod behind its Service) does. Nothing is persisted: a restarted server is empty."""

    def __init__(self, directory: Path, *config: str, sentinel: bool = False) -> None:
        self.binary = redis_server_binary()
        self.port = free_port()
        self.directory = directory
        self.config = config
        self.sentinel = sentinel
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        # A Sentinel rewrites its file (what it learns of the replicas): one of its own.
        path = self.directory / ("sentinel.conf" if self.sentinel else "redis.conf")
        persistence = () if self.sentinel else ('save ""', "appendonly no")
        lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.directory}"]
        path.write_text("\n".join([*lines, *persistence, *self.config]) + "\n")
        with open(self.directory / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, str(path), *(["--sentinel"] if self.sentinel else [])],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self.answers, what=f"redis-server answering on port {self.port}")
        return self

    def answers(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"redis-server exited: {self.directory / 'server.log'}")
        with contextlib.suppress(redis.RedisError), self.client() as client:
            return bool(client.ping())
        return False

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=2)

    def stop(self) -> None:
        """As an orderly restart stops it (SIGTERM): clients' connections are closed."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        """As a crashed host loses it (SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def sentinel_config(
    master: RedisServer, down_after_ms: int, failover_timeout_ms: int
) -> tuple[str, ...]:
    """A Sentinel watching ``master`` alone (quorum 1), quick to call it down."""
    return (
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 1",
        f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}",
        f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}",
    )
