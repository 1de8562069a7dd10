"""The ``bma-gateway`` command line (``main``)."""

from gateway.cli.main import main

__all__ = ["main"]
