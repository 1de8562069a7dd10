"""Errors a resolver raises on purpose, each with a stable ``extensions.code``.

Anything else that escapes a resolver is a bug: the gateway answers it as ``INTERNAL_ERROR``
with a generic message and logs the detail.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.extensions = extensions


class BadUserInput(GatewayError):
    """An argument value that is well typed but not acceptable (e.g. a negative radius)."""

    code = "BAD_USER_INPUT"


class UnknownDistrict(GatewayError):
    code = "UNKNOWN_DISTRICT"


class PageSizeExceeded(GatewayError):
    code = "PAGE_SIZE_EXCEEDED"
