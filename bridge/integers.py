"""Integers read from request text: ASCII digits only, within the 64-bit range every backend holds.

Python's int() and str.isdigit() take any Unicode decimal digit ("٣" and "３" are 3 to them, and
"³" passes isdigit() but not int()), and databases refuse integers beyond 64 bits with an
OverflowError. So every integer the bridge takes from a path, a query parameter or a quoted
filter value goes through `parse_int`, which refuses anything but `-?[0-9]+` in range with a 400
that names the part and what is wrong with it.
"""

from __future__ import annotations

import re

from bridge.errors import ApiError, bad_request

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_ASCII_INTEGER = re.compile(r"-?[0-9]+")  # [0-9], not \d: \d matches every Unicode digit
_SHOWN = 40


def shown(text: str) -> str:
    """Request text quoted for an error message, cut to a readable length."""
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def non_ascii_digit(text: str) -> str | None:
    """The first character of `text` that is a digit to Python but not one of ASCII 0-9."""
    return next((ch for ch in text if ch.isdigit() and not ch.isascii()), None)


def in_int64(value: int) -> bool:
    """Whether a 64-bit integer column can hold the value."""
    return INT64_MIN <= value <= INT64_MAX


def parse_int(
    text: str,
    what: str,
    *,
    minimum: int = INT64_MIN,
    maximum: int = INT64_MAX,
    code: str = "bad_request",
) -> int:
    """`text` as an integer in minimum..maximum, or a 400 `code` naming `what` and the problem."""
    if not _ASCII_INTEGER.fullmatch(text):
        digit = non_ascii_digit(text)
        if digit is not None:
            raise bad_request(
                code, f"{what} holds the non-ASCII digit {digit!r} in {shown(text)}: write it in ASCII digits 0-9"
            )
        raise bad_request(code, f"{what} must be an integer in ASCII digits 0-9, got {shown(text)}")
    # Past 19 significant digits it is out of any 64-bit range; int() of thousands would refuse.
    value = int(text) if len(text.lstrip("-0")) <= 19 else None
    if value is None or not minimum <= value <= maximum:
        raise out_of_range(code, what, text, minimum, maximum)
    return value


def out_of_range(code: str, what: str, text: str, minimum: int, maximum: int) -> ApiError:
    """The 400 for an integer outside minimum..maximum."""
    return bad_request(code, f"{what} is out of range: {shown(text)} is not in {minimum}..{maximum}")
