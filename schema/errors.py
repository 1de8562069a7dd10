"""Errors a resolver raises on purpose: the field answers ``null`` beside the error.

The gateway gives each class its stable ``extensions.code`` (``gateway.errors``); anything
else that escapes a resolver is a bug, answered as ``INTERNAL_ERROR`` with a generic message
and logged with its detail.
"""

from __future__ import annotations

from typing import Any


class ResolverError(Exception):
    """An argument or a request a resolver refuses; ``extensions`` go beside the code."""

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.extensions = extensions


class BadUserInput(ResolverError):
    """An argument value that is well typed but not acceptable (e.g. a negative radius)."""


class UnknownDistrict(ResolverError):
    """A district code that is not one of Bangkok's 50."""


class PageSizeExceeded(ResolverError):
    """``first`` above the largest page."""
