"""Structured logs: one JSON object per line, and one line per GraphQL request.

A request's line says who asked (principal kind and subject), what (operation names and
document hashes), how it went (status, duration, upstream calls) and its request id — never
a credential, a variable's value or any data of the answer: restricted values must not leak
into logs, which are read by more people than the audit log (tests/test_log_leaks.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

REQUEST_LOG = logging.getLogger("bma.request")
# Attributes every LogRecord has: anything else on a record came from `extra=`.
# uvicorn's `color_message` repeats the message with terminal colours: left out too.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...extra fields, "exc"}`` as one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the gateway and uvicorn (whose own handlers are removed, and
    whose access log is off: the request line replaces it, without the query string)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def log_request(fields: Mapping[str, Any]) -> None:
    REQUEST_LOG.info("request", extra=dict(fields))
