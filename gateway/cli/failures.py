"""How a command fails: one line on stderr saying what is wrong and what to do, never a
traceback. Exit status 2 for usage and configuration errors (a bad option, a missing or
malformed setting or file), 1 when the command ran and the thing it checks or reaches failed
(a broken chain, an unreachable server)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from gateway.settings import redacted_url

USAGE = 2
FAILED = 1


class CommandError(Exception):
    """A failure the command reports in one line (``message``) with its exit ``status``."""

    def __init__(self, message: str, status: int = USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command and its ``--help``
    (argparse prints the whole usage first); subcommands are made of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def report(error: CommandError) -> int:
    """Each line of the message (several problems found at once: one each) on stderr."""
    for line in error.message.splitlines():
        print(f"bma-gateway: {line}", file=sys.stderr)
    return error.status


def unreachable(what: str, url: str, exc: BaseException) -> CommandError:
    """A server that could not be reached or refused us: what, where, why, and what to check."""
    reason = str(exc).strip() or type(exc).__name__
    return CommandError(
        f"cannot connect to {what} at {redacted_url(url)}: {reason}; check that the server is "
        "running and the URL (host, port, user, password, database) is right",
        FAILED,
    )
