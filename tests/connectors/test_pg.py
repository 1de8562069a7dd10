"""connectors/pg.py: which PostgreSQL errors mean the source cannot answer (an outage), and
which are our own bug."""

from __future__ import annotations

import asyncpg

from connectors.pg import _unavailable


def test_postgres_errors_that_mean_the_source_cannot_answer():
    assert _unavailable(asyncpg.TooManyConnectionsError())
    assert _unavailable(asyncpg.InvalidPasswordError())
    assert _unavailable(asyncpg.InvalidCatalogNameError())
    assert _unavailable(asyncpg.UndefinedTableError())
    assert _unavailable(asyncpg.AdminShutdownError())
    assert _unavailable(ConnectionRefusedError())
    assert not _unavailable(
        asyncpg.UndefinedColumnError()
    )  # our SQL is wrong: a bug, not an outage
    assert not _unavailable(ValueError())
