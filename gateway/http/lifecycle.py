"""Starting with what answers, stopping without dropping a request.

At start the gateway waits a while for every source (``wait_for_sources``), then starts with
those that answer, naming the others: a source that is down means partial results, not no
gateway.

On SIGTERM it drains first, then shuts down.

A listener that closes while clients keep connecting resets the connections still waiting
in the kernel's accept queue — clients see "server disconnected" instead of an answer. So
on SIGTERM the gateway first reports itself not ready (`/readyz` answers 503 `draining`)
and keeps serving for `BMA_DRAIN_SECONDS`, while the load balancer takes it out of rotation;
only then does uvicorn stop accepting, finish in-flight requests (within
`BMA_SHUTDOWN_GRACE_SECONDS`), and the app's lifespan commit the audit queue and close the
pools. A second signal (Ctrl-C twice) still stops at once.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
import time
from types import FrameType

import uvicorn

from schema import Connectors

log = logging.getLogger("bma.gateway")

# Set when this process is draining: /readyz reports it.
draining = threading.Event()


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if draining.is_set() or self.drain_seconds <= 0 or sig == signal.SIGINT:
            super().handle_exit(sig, frame)
            return
        draining.set()
        log.info("draining for %.1f s before shutting down", self.drain_seconds)
        timer = threading.Timer(self.drain_seconds, super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()


def tune_collector(threshold: int) -> None:
    """Take what start-up built (schema, policy, plans, modules: long-lived, never garbage)
    out of the cyclic collector's walks (``gc.freeze``), and set generation 0's threshold:
    a request allocates thousands of objects that mostly die by reference counting, and each
    collection they trigger walks the young ones still alive. 0 leaves the collector alone."""
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)


async def wait_for_sources(connectors: Connectors, seconds: float) -> None:
    """Wait up to ``seconds`` for every source to answer, then start anyway, naming what is
    missing."""
    deadline = time.monotonic() + seconds
    while True:
        checks = await asyncio.gather(*(c.health() for c in connectors.all()))
        down = [h for group in checks for h in group if not h.ok]
        if not down or time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    if down:
        missing = ", ".join(f"{h.source} ({h.detail})" for h in down)
        log.warning("starting without %d source(s): %s", len(down), missing)
    else:
        log.info("every source answers")
