"""Expected failures: bad input or a broken environment, not bugs in jaxlt.

`jaxlt.cli` prints any `UserError` as one line (what is wrong, then what to do) and
exits with status 2; a traceback appears only with `--verbose`. Everything else is a
bug and keeps its traceback. Each type also derives from the built-in exception that
callers caught before it existed (ValueError, RuntimeError, ...), so existing
`except` clauses keep working.

Standard library only: the analysis stage imports it too.
"""

from __future__ import annotations

import errno

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Something the user can fix: one line naming the problem and, after it, what to do."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(f"{message}; {hint}" if hint else message)
        self.hint = hint


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (multi-line messages are joined)."""
    return " ".join(str(exc).split()) or type(exc).__name__


class ConfigError(UserError, ValueError):
    """A gin file or binding that does not parse or names something unknown."""


class DataError(UserError, ValueError):
    """A data file that is missing, malformed or too small (names the file, and the line if any)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, incomplete, of another model, or not finite."""


class ResultsDirError(UserError, RuntimeError):
    """A results directory that belongs to another configuration or is not a results store."""


class WorkerError(UserError, ValueError):
    """A worker index or count that does not fit."""


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss, gradient norm or parameters.

    Not a UserError: the grid records it as a "diverged" cell and goes on. `step` is the
    first bad step, `reason` says what was not finite, `last_good_step` is the newest
    checkpoint with finite parameters (None if there is none).
    """

    def __init__(self, message: str, *, step: int | None = None, reason: str = "",
                 last_good_step: int | None = None):
        super().__init__(message)
        self.step, self.reason, self.last_good_step = step, reason, last_good_step


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC / EDQUOT anywhere in the exception's cause chain."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
