"""Redis restarting, and failing over through Sentinel, under a gateway serving a steady load
with the response cache on and a rate limit set: not one request fails (memory stands in
meanwhile, with one warning per outage for the caches and one for the rate limits), and
afterwards the caches and the one shared rate limit are back in Redis — the restarted
server, or the replica Sentinel promoted.

Real ``redis-server`` processes of the test's own on free ports (tests/redis_servers.py),
stopped, killed and restarted by the test; the gateway in process, on a loopback port. The
fallback's retry interval is 1 s here instead of 5 s, so that Redis is asked again soon.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from connectors import redis_client
from connectors.cache import DEFAULT_TTLS, NAMESPACE
from gateway.auth.issuer import EmbeddedIssuer
from gateway.demo.embedded import DatabaseUrls
from gateway.ratelimit.buckets import REDIS_PREFIX, TAKE_SCRIPT
from gateway.ratelimit.config import RateLimit, RateLimits
from redis_servers import MASTER_NAME, RedisServer, redis_server_binary, sentinel_config
from support import GRAPHQL_ACCEPT, settings_for, start_gateway, wait_until

RETRY_SECONDS = 1.0
# The load (anonymous, one address) is never refused; a partner gets three requests, then
# (almost) no refill: the shared bucket shows.
LIMITS = RateLimits(
    anonymous=RateLimit(rate=1000.0, burst=1000),
    partner=RateLimit(rate=0.01, burst=3),
)
LOGGERS = {"bma.cache": "Redis cache", "bma.gateway.rate_limit": "rate limits"}
CODES = [f"{1001 + n}" for n in range(50)]
LOAD_BUCKET = f"{REDIS_PREFIX}ip:127.0.0.1"


def district_query(code: str) -> str:
    return f'{{ district(code: "{code}") {{ code nameEn businessCount }} }}'


@dataclass
class SteadyLoad:
    """Clients asking open queries one after another until stopped, every answer kept."""

    url: str
    clients: int = 4
    answers: list[tuple[int, bool]] = field(default_factory=list)  # status, had errors
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> SteadyLoad:
        for n in range(self.clients):
            thread = threading.Thread(target=self._ask, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _ask(self, n: int) -> None:
        headers = {"accept": GRAPHQL_ACCEPT}
        with httpx.Client(base_url=self.url, timeout=10, headers=headers) as client:
            while not self._stop.is_set():
                n += self.clients
                query = district_query(CODES[n % len(CODES)])
                try:
                    response = client.post("/graphql", json={"query": query})
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                errors = response.status_code != 200 or "errors" in response.json()
                self.answers.append((response.status_code, errors))
                if errors:
                    self.failures.append(response.text)

    def more(self, count: int) -> Callable[[], bool]:
        """A condition: ``count`` more answers than now."""
        target = len(self.answers) + count
        return lambda: len(self.answers) >= target

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


@pytest.fixture
def gateway_on(
    db: DatabaseUrls, traffy_url: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], contextlib.AbstractContextManager[str]]:
    redis_server_binary()  # skipped (or failed under CI) before a database is set up
    monkeypatch.setattr(redis_client, "RETRY_SECONDS", RETRY_SECONDS)

    @contextlib.contextmanager
    def serving(redis_url: str) -> Iterator[str]:
        """A gateway with its caches and rate limits in ``redis_url``, serving a steady
        load; its address."""
        settings = settings_for(db, traffy_url, redis_url=redis_url, cache_ttls=DEFAULT_TTLS)
        settings = settings.model_copy(update={"rate_limits": LIMITS})
        server, gw = start_gateway(settings)
        try:
            yield gw.url
        finally:
            gw.client.close()
            server.stop()

    return serving


def outage_lines(
    caplog: pytest.LogCaptureFixture, since: int = 0
) -> dict[str, list[tuple[int, str]]]:
    """The fallback's lines (from the ``since``-th record on), by user of Redis."""
    return {
        logger: [
            (r.levelno, r.getMessage())
            for r in caplog.records[since:]
            if r.name == logger and r.getMessage().startswith(what)
        ]
        for logger, what in LOGGERS.items()
    }


def warned(caplog: pytest.LogCaptureFixture, since: int = 0) -> bool:
    return all(lines for lines in outage_lines(caplog, since).values())


def answered_again(caplog: pytest.LogCaptureFixture) -> bool:
    """Whether each user of Redis said last that Redis answers again."""
    return all(
        lines and lines[-1][0] == logging.INFO and lines[-1][1].endswith("answers again")
        for lines in outage_lines(caplog).values()
    )


def partner(issuer: EmbeddedIssuer) -> tuple[str, dict[str, str]]:
    """A partner of its own (its subject, its headers): its bucket is made after Redis is
    back."""
    subject = f"failover-{uuid.uuid4().hex}"
    token = issuer.issue(
        "partner",
        "utility-partner",
        "tax:read",
        "internal",
        ttl=timedelta(minutes=5),
        subject=subject,
    )
    return subject, {"authorization": f"Bearer {token}", "accept": GRAPHQL_ACCEPT}


def limited_after_its_burst(url: str, headers: dict[str, str]) -> bool:
    """Whether a caller gets three answers, then 429 ``RATE_LIMITED``."""
    codes = []
    for _ in range(4):
        response = httpx.post(
            f"{url}/graphql", json={"query": district_query("1039")}, headers=headers, timeout=10
        )
        codes.append(response.status_code)
    refused = response.json()["errors"][0]["extensions"]["code"] if codes[-1] == 429 else None
    return codes == [200, 200, 200, 429] and refused == "RATE_LIMITED"


def back_in(server: RedisServer, issuer: EmbeddedIssuer, url: str) -> bool:
    """Whether limits and caches are in ``server`` now: a new partner, refused after its
    burst, was counted there (by the Lua script, loaded there after NOSCRIPT), and a new
    answer is cached there."""
    subject, headers = partner(issuer)
    if not limited_after_its_burst(url, headers):  # by Redis (or memory, if Redis is out)
        return False
    with server.client() as client:
        buckets = [k.decode() for k in client.scan_iter(match=f"{REDIS_PREFIX}*")]
        counted = [k for k in buckets if k.endswith(f":{subject}")]
        if not counted:
            return False
        assert float(client.hget(counted[0], "tokens")) < 1  # four asked of three
        assert client.script_exists(hashlib.sha1(TAKE_SCRIPT.encode()).hexdigest()) == [True]

        def answers_cached() -> set[bytes]:
            return set(client.scan_iter(match=f"{NAMESPACE}:response:*"))

        cached = answers_cached()
        new = f'{{ a{uuid.uuid4().hex}: district(code: "1001") {{ code }} }}'
        assert httpx.post(f"{url}/graphql", json={"query": new}, timeout=10).status_code == 200
        return len(answers_cached() - cached) == 1


def load_counted_in(server: RedisServer) -> None:
    """The load's bucket (anonymous, one address) is in ``server``: (re)written there while
    the load runs, as it lives a second once written."""
    with server.client() as client:
        wait_until(lambda: client.exists(LOAD_BUCKET), what=f"{LOAD_BUCKET} in Redis")


def outages(caplog: pytest.LogCaptureFixture, since: int = 0) -> list[int]:
    """How many outages each user of Redis logged (from the ``since``-th record on): each a
    warning, then, once over, a line when Redis answers again."""
    counts = []
    for logger, lines in outage_lines(caplog, since).items():
        levels = [level for level, _ in lines]
        count = (len(levels) + 1) // 2
        assert levels == ([logging.WARNING, logging.INFO] * count)[: len(levels)], (logger, lines)
        counts.append(count)
    return counts


def test_a_redis_restart_under_load_fails_no_request_and_limits_resume_in_redis(
    gateway_on, issuer: EmbeddedIssuer, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    server = RedisServer(tmp_path / "redis").start()
    try:
        with gateway_on(server.url) as url:
            load = SteadyLoad(url).start()
            try:
                wait_until(load.more(40), what="answers before the restart")
                load_counted_in(server)
                stopped = len(caplog.records)
                server.stop()
                wait_until(lambda: warned(caplog, since=stopped), what="outage warnings")
                wait_until(load.more(40), what="answers while Redis is down")
                server.start()  # empty, on the same port; the gateway's sockets are dead
                wait_until(lambda: answered_again(caplog), what="Redis answering again")
                wait_until(load.more(40), what="answers after the restart")
                load_counted_in(server)
            finally:
                load.stop()
            assert load.failures == [], load.failures[:3]
            # One outage from the stop on, over: a stale connection failing after the restart
            # would start a second.
            assert outages(caplog, since=stopped) == [1, 1] and answered_again(caplog)
            assert back_in(server, issuer, url)
    finally:
        server.stop()


def test_a_sentinel_failover_under_load_fails_no_request_and_moves_to_the_promoted_master(
    gateway_on, issuer: EmbeddedIssuer, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    # A replica's first sync at once: not after the 5 s a master waits for more replicas.
    master = RedisServer(tmp_path / "master", "repl-diskless-sync-delay 0").start()
    replica = RedisServer(tmp_path / "replica", f"replicaof 127.0.0.1 {master.port}").start()
    sentinel = RedisServer(
        tmp_path / "sentinel",
        *sentinel_config(master, down_after_ms=1000, failover_timeout_ms=2000),
        sentinel=True,
    )
    try:
        with replica.client() as client:
            wait_until(
                lambda: client.info("replication")["master_link_status"] == "up",
                what="replica in sync",
            )
        with sentinel.start().client() as client:
            wait_until(
                lambda: client.sentinel_slaves(MASTER_NAME), what="Sentinel seeing the replica"
            )
        url = f"redis+sentinel://127.0.0.1:{sentinel.port}/{MASTER_NAME}/0"
        with gateway_on(url) as gateway_url:
            load = SteadyLoad(gateway_url).start()
            try:
                wait_until(load.more(40), what="answers before the failover")
                load_counted_in(master)
                killed = len(caplog.records)
                master.kill()
                wait_until(lambda: warned(caplog, since=killed), what="outage warnings")
                with sentinel.client() as client:
                    wait_until(
                        lambda: (
                            client.sentinel_get_master_addr_by_name(MASTER_NAME)[1] == replica.port
                        ),
                        what="the replica promoted",
                    )
                wait_until(lambda: answered_again(caplog), what="Redis answering again")
                wait_until(load.more(40), what="answers after the failover")
                load_counted_in(replica)
            finally:
                load.stop()
            assert load.failures == [], load.failures[:3]
            # Never a failed request, but maybe more than one outage: on a busy machine the
            # Sentinel has taken the master it just promoted for down a moment too (its
            # log: +sdown, then -failover-abort-no-good-slave), and calls went to memory
            # again meanwhile. So the promoted master is waited for, not asked once.
            assert min(outages(caplog, since=killed)) >= 1
            wait_until(
                lambda: back_in(replica, issuer, gateway_url),
                what="caches and limits in the promoted master",
            )
    finally:
        for server in (sentinel, replica, master):
            server.stop()
