"""Stopping without dropping a request: on SIGTERM, drain first, then shut down.

A listener that closes while clients keep connecting resets the connections still waiting
in the kernel's accept queue — clients see "server disconnected" instead of an answer. So
on SIGTERM the gateway first reports itself not ready (`/readyz` answers 503 `draining`)
and keeps serving for `BMA_DRAIN_SECONDS`, while the load balancer takes it out of rotation;
only then does uvicorn stop accepting, finish in-flight requests (within
`BMA_SHUTDOWN_GRACE_SECONDS`), and the app's lifespan commit the audit queue and close the
pools. A second signal (Ctrl-C twice) still stops at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn

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
