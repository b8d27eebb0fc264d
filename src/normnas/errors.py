"""The errors a user can cause, and what the command does with each.

Every error raised for bad input, a bad file or a bad environment is a `UserError`: its
`str()` is ONE line naming the flag, field, file or URL at fault and what was expected.
The `normnas` command maps each type to an exit code through `EXIT_CODES` (one table, so
a new error type cannot leak a traceback); the Python API raises them as they are.
All subclass `ValueError`, so code that caught `ValueError` before still catches them.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or environment; `str(error)` is one line for the user."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))  # one line, whatever was passed


class ConfigError(UserError):
    """A bad run configuration (YAML key or CLI flag)."""


class DataError(UserError):
    """A data set that cannot be used: missing, corrupt, unusable values."""


class StorageError(UserError):
    """A study storage that cannot be opened, read or written."""


class DeviceError(UserError):
    """A device that is not available (e.g. --device cuda without CUDA)."""


class ExportError(UserError):
    """A model that cannot be exported where or how it was asked."""


class StudyMismatchError(UserError):
    """A rerun whose space, data or training differ from what the study recorded."""


class SearchFailedError(UserError):
    """A search that ended without a single successful trial."""

    exit_code = 1


class NothingFeasibleError(SearchFailedError):
    """No architecture met the constraints after a bounded number of proposals."""


class SearchInterrupted(Exception):
    """Ctrl-C / SIGTERM during a search: running trials were marked interrupted."""

    exit_code = 130

    def __init__(self, message: str, resume: str = "") -> None:
        super().__init__(message)
        self.resume = resume


EXIT_CODES: dict[type[BaseException], int] = {
    UserError: 2,
    SearchFailedError: 1,
    SearchInterrupted: 130,
}


def exit_code(exc: BaseException) -> int | None:
    """The exit code of an error the command reports in one line, or None (a bug)."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return getattr(exc, "exit_code", EXIT_CODES[cls])
    return None


def one_line(exc: BaseException) -> str:
    """The first line of an error's message (its type name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def error_line(exc: BaseException) -> str:
    """`Type: first line` of an error, at most 300 characters: a failed trial's record."""
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
