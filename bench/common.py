"""What the benchmarks share: a seeded PostgreSQL and writing figures into the docs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from gateway.demo.embedded import DatabaseUrls, start_embedded
from gateway.demo.run import prepare_databases

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


class NullAudit:
    """Stands in for the audit writer where a benchmark measures something else: takes every
    entry and returns at once, writing nothing (same ``record`` as ``AuditWriter``)."""

    async def start(self) -> None:
        pass

    async def record(self, entry: dict[str, Any]) -> int:
        return 0

    async def stop(self) -> None:
        pass


def seeded_databases(database_url: str | None) -> tuple[DatabaseUrls, Any]:
    """The seeded upstream databases on ``database_url``, or on a fresh embedded server
    (keep the returned handle: the embedded server stops when it is collected)."""
    handle = None
    if not database_url:
        database_url, handle = start_embedded(
            Path(tempfile.mkdtemp(prefix="bma-bench-")) / "pgdata"
        )
    return prepare_databases(database_url)[0], handle


def write_section(marker: str, table: str, doc: Path = DOC) -> None:
    """Replace what stands between ``<!-- MARKER:START -->`` and ``<!-- MARKER:END -->``."""
    start, end = f"<!-- {marker}:START -->", f"<!-- {marker}:END -->"
    head, _, rest = doc.read_text(encoding="utf-8").partition(start)
    _, _, tail = rest.partition(end)
    doc.write_text(f"{head}{start}\n{table}\n{end}{tail}", encoding="utf-8")


def publish(
    marker: str, script: str, argv: list[str], table: str, write: bool, doc: Path = DOC
) -> None:
    """Print the figures with the command that produced them, and put them in the docs."""
    shown = [a for a in argv if "://" not in a and not a.startswith("--database-url")]
    command = " ".join(["python -m", script, *shown])
    text = f"Command: `{command}`  \n{table}"
    print(text)
    if write:
        write_section(marker, text, doc)
