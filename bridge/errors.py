"""The contract's error answer, as an exception the handlers raise and the middleware answers."""

from __future__ import annotations


class ApiError(Exception):
    """An answer of the contract's error form."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(code: str, message: str) -> ApiError:
    """A 400 with the contract's code."""
    return ApiError(400, code, message)
