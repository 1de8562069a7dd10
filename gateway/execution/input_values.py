"""A client's values, checked before anything runs: text only, and typed against what the
caller may see.

Values arrive two ways, and both are checked here before any resolver or upstream call:

- written in the document: ``TextOnlyRule``, one of the validation rules, refuses a string
  literal (an argument, an input field, a variable's default) that holds a code point that is
  not text (``connectors.text``: NUL, control characters, surrogates, noncharacters);
- sent as variables: ``variable_refusals`` refuses the same code points anywhere in the
  variables, then coerces them against the caller's visible schema (``policies.visibility``),
  so an error never names — nor suggests — a type, input field or enum value hidden from the
  caller. graphql-core's execution coerces them again, against the whole schema; by then they
  are known to fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    StringValueNode,
    ValidationRule,
    get_variable_values,
)

from connectors.text import not_text
from gateway import errors
from gateway.execution.outcome import with_code

NOT_TEXT = "NUL, control characters, surrogates and noncharacters are refused"


class TextOnlyRule(ValidationRule):
    """A string literal must be text."""

    def enter_string_value(self, node: StringValueNode, *_args: Any) -> None:
        found = not_text(node.value)
        if found:
            self.report_error(
                GraphQLError(
                    f"A string value holds {found}, which is not text: {NOT_TEXT}.",
                    node,
                    extensions={"code": errors.BAD_USER_INPUT.code},
                )
            )


def variable_refusals(
    visible: GraphQLSchema,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
    *,
    hide_suggestions: bool,
) -> list[GraphQLError]:
    """Why the variables cannot run (``BAD_USER_INPUT``), or nothing when they can."""
    values = dict(variables or {})
    if not values and not operation.variable_definitions:
        return []
    found = _first_not_text(values, [])
    if found is not None:
        code_point, where = found
        subject = f"Variable '${where[0]}'" if where else "A variable's name"
        at = f" at {'.'.join(where[1:])}" if len(where) > 1 else ""
        message = f"{subject} holds {code_point}{at}, which is not text: {NOT_TEXT}."
        return [GraphQLError(message, extensions={"code": errors.BAD_USER_INPUT.code})]
    coerced = get_variable_values(
        visible, operation.variable_definitions or (), values, hide_suggestions=hide_suggestions
    )
    if isinstance(coerced, list):
        return [with_code(e, errors.BAD_USER_INPUT) for e in coerced]
    return []


def _first_not_text(value: Any, where: list[str]) -> tuple[str, list[str]] | None:
    """The first non-text code point in a JSON value (keys included), and where it is."""
    if isinstance(value, str):
        found = not_text(value)
        return None if found is None else (found, where)
    if isinstance(value, list):
        items: list[tuple[str, Any]] = [(str(i), v) for i, v in enumerate(value)]
    elif isinstance(value, dict):
        items = list(value.items())
        for key, _ in items:
            found = not_text(key)
            if found is not None:
                return found, where
    else:
        return None
    for key, item in items:
        inner = _first_not_text(item, [*where, key])
        if inner is not None:
            return inner
    return None
