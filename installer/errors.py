"""The one error tree of satchel, shared by the builder and the installer.

Every expected failure is a SatchelError (or a subclass) carrying a one-line
message, an optional hint and the exit code the top-level handler returns.
Anything else is a bug and shows a traceback only under --debug.
"""

from typing import Optional

# Exit codes, shared by build.py and install (documented in both --help texts).
EXIT_OK = 0
EXIT_FAILED = 1  # a build failed / an install failed and was rolled back
EXIT_USAGE = 2  # bad command line or bad input (recipe, bundle, answers)
EXIT_REFUSED = 3  # refused by validation, nothing changed
EXIT_LOCKED = 4  # another run holds the lock
EXIT_ROLLBACK_INCOMPLETE = 5  # rollback incomplete, manual action needed


class SatchelError(Exception):
    """An expected failure: printed as one line (plus hint), never a traceback."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: Optional[str] = None,
                 exit_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class InputError(SatchelError):
    """Bad input: a recipe, a bundle, an answer, an argument. Exit 2."""

    exit_code = EXIT_USAGE


class RefusedError(SatchelError):
    """Validation refused the run before any change. Exit 3."""

    exit_code = EXIT_REFUSED


class LockedError(SatchelError):
    """Another run holds the lock. Exit 4."""

    exit_code = EXIT_LOCKED


class ToolError(SatchelError):
    """An external command failed (names the command and its exit code). Exit 1."""
