"""The filter grammar of the record API, parsed into conditions that become SQL parameters.

    filter    := condition ( " and " condition )*
    condition := column ( "eq" | "ge" | "le" ) literal | column "in" "(" literal ( "," literal )* ")"
    literal   := 'text with '' for a quote' | -?digits[.digits] | true | false | null

Digits are ASCII 0-9 (Python's \\d, int() and float() would take any Unicode digit, "٣" for 3),
and a number must be finite as a float (so no integer of thousands of digits reaches int()).
Values never become SQL text: the parser yields them as Python values, the store binds them as
parameters, and column names are checked against the table's schema before any SQL is built.
Anything else (a stray quote, `or`, a comment, a semicolon) is a 400 `bad_filter`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bridge.integers import non_ascii_digit

MAX_FILTER_LENGTH = 16_000
MAX_CONDITIONS = 32
MAX_IN_VALUES = 500

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9_]))
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


class FilterError(ValueError):
    """The filter does not follow the grammar."""


@dataclass(frozen=True)
class Literal:
    """A literal as written: `kind` is string, number, bool or null."""

    kind: str
    value: str | int | float | bool | None


@dataclass(frozen=True)
class Condition:
    """`column op values` (one value except for `in`)."""

    column: str
    op: str
    values: tuple[Literal, ...]


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            snippet = text[position : position + 20]
            digit = non_ascii_digit(snippet[:1])
            if digit is not None:
                raise FilterError(
                    f"non-ASCII digit {digit!r} at position {position}: write numbers in ASCII digits 0-9"
                )
            raise FilterError(f"unexpected text at position {position}: {snippet!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            out.append((kind, match.group()))
        position = match.end()
    return out


def _literal(kind: str, text: str) -> Literal:
    if kind == "string":
        return Literal("string", text[1:-1].replace("''", "'"))
    if kind == "number":
        if not math.isfinite(float(text)):
            raise FilterError(f"the number {text[:20]}... is out of range")
        return Literal("number", float(text) if "." in text else int(text))
    lowered = text.lower()
    if kind == "word" and lowered in ("true", "false"):
        return Literal("bool", lowered == "true")
    if kind == "word" and lowered == "null":
        return Literal("null", None)
    raise FilterError(f"expected a value, got {text!r}")


def parse_filter(text: str) -> list[Condition]:
    """The conditions of `text`, or FilterError saying what is wrong."""
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    tokens = _tokens(text)
    if not tokens:
        raise FilterError("the filter is empty")
    conditions: list[Condition] = []
    position = 0

    def take() -> tuple[str, str]:
        nonlocal position
        if position >= len(tokens):
            raise FilterError("the filter ends too early")
        token = tokens[position]
        position += 1
        return token

    while True:
        kind, column = take()
        if kind != "word":
            raise FilterError(f"expected a column name, got {column!r}")
        _kind, op = take()
        op = op.lower()
        if op in ("eq", "ge", "le"):
            values: tuple[Literal, ...] = (_literal(*take()),)
        elif op == "in":
            if take() != ("punct", "("):
                raise FilterError("expected ( after in")
            items = [_literal(*take())]
            while True:
                separator = take()
                if separator == ("punct", ")"):
                    break
                if separator != ("punct", ","):
                    raise FilterError(f"expected , or ) in an in list, got {separator[1]!r}")
                items.append(_literal(*take()))
            if len(items) > MAX_IN_VALUES:
                raise FilterError(f"an in list holds at most {MAX_IN_VALUES} values")
            values = tuple(items)
        else:
            raise FilterError(f"expected eq, ge, le or in after {column}, got {op!r}")
        if op != "eq" and any(value.kind == "null" for value in values):
            raise FilterError("null can only be compared with eq")
        conditions.append(Condition(column, op, values))
        if len(conditions) > MAX_CONDITIONS:
            raise FilterError(f"a filter holds at most {MAX_CONDITIONS} conditions")
        if position == len(tokens):
            return conditions
        kind, word = take()
        if kind != "word" or word.lower() != "and":
            raise FilterError(f"expected and between conditions, got {word!r}")
