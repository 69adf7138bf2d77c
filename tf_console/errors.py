"""Errors a user sees.  Their text is a sentence that says what to do."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a state the user must fix; printed as a sentence, never a traceback."""

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
