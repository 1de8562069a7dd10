"""The reference tables of docs/configuration.md, made from the settings' declarations.

Each table sits between ``<!-- settings: <section> -->`` and ``<!-- /settings -->`` in the
document; ``bma-gateway config docs --write docs/configuration.md`` rewrites them, and
tests/test_settings.py fails when the document and the declarations differ.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic.fields import FieldInfo

from gateway.limits.config import AUDIENCES, DEFAULTS, OperationLimits
from gateway.settings import SECTIONS, Settings, bounds, variable

LIMITS = "operation limits"
_BLOCK = re.compile(r"(<!-- settings: (?P<section>[a-z ]+) -->\n)(.*?)(<!-- /settings -->)", re.S)


def reference() -> str:
    """Every table, each under its section's marker."""
    return "".join(
        f"<!-- settings: {section} -->\n{table(section)}<!-- /settings -->\n\n"
        for section in (*SECTIONS, LIMITS)
    )


def rewritten(document: str) -> str:
    """``document`` with each marked table made anew."""
    return _BLOCK.sub(lambda m: m[1] + table(m["section"]) + m[4], document)


def tables_of(document: str) -> dict[str, str]:
    """The marked tables of a document, by section."""
    return {m["section"]: m[3] for m in _BLOCK.finditer(document)}


def table(section: str) -> str:
    if section == LIMITS:
        return _limits_table()
    rows = [
        f"| `{variable(name, field)}` | {_default(field)} | {_meaning(field)} |"
        for name, field in Settings.model_fields.items()
        if _extra(field).get("section") == section
    ]
    if not rows:
        raise KeyError(f"no settings in section {section!r}")
    return "\n".join(["| variable | default | meaning |", "|---|---|---|", *rows]) + "\n"


def _limits_table() -> str:
    # A pydantic dataclass's declarations (pydantic documents the attribute).
    fields: dict[str, FieldInfo] = getattr(OperationLimits, "__pydantic_fields__")  # noqa: B009
    header = "| key | " + " | ".join(AUDIENCES) + " | meaning |"
    rows = [header, "|---|" + "---|" * len(AUDIENCES) + "---|"]
    for name, field in fields.items():
        values = [_value(getattr(DEFAULTS[a], name)) for a in AUDIENCES]
        rows.append(f"| `{name}` | " + " | ".join(values) + f" | {_meaning(field)} |")
    return "\n".join(rows) + "\n"


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _default(field: FieldInfo) -> str:
    text = _extra(field).get("default_text")
    if isinstance(text, str):
        return text
    if field.is_required():
        return "required"
    return f"`{_env_value(field.default)}`"


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _value(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _meaning(field: FieldInfo) -> str:
    meaning = field.description or ""
    has_bounds = any(
        getattr(c, name, None) is not None for c in field.metadata for name in ("ge", "gt", "le")
    )
    return f"{meaning} ({bounds(field)})" if has_bounds else meaning
