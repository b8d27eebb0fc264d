"""How every `normnas` command ends on an error: one line on stderr and an exit code.

Each command is wrapped by `reported`; the exit code comes from `normnas.errors.EXIT_CODES`
(one table for the whole command, so a new error type cannot leak a traceback). An error
that is not ours is a bug: one line saying so, exit 70, and the traceback only with
NORMNAS_DEBUG=1 — except `ValueError` and `OSError`, which the spaces, samplers and file
readers raise for bad input (exit 2, as a UserError).

Errors of the command line itself (a bad option value, a missing or unknown option, no such
command) are click's; `OneLineErrorsGroup` prints those as the same one `error:` line
instead of click's usage block and framed box, with click's exit code (2).
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

try:  # typer >= 0.22 carries its own copy of click; older ones use click itself
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as _click_errors  # type: ignore[no-redef]

from normnas.errors import SearchInterrupted, exit_code, one_line

F = TypeVar("F", bound=Callable[..., Any])
INTERNAL_ERROR = 70  # EX_SOFTWARE


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class OneLineErrorsGroup(TyperGroup):
    """The root command group: a command-line error (parsed in `make_context` for the root's
    own options, in `invoke` for the subcommand's name and options) is one `error:` line."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line_click_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_click_errors():
            return super().invoke(ctx)


@contextlib.contextmanager
def _one_line_click_errors() -> Iterator[None]:
    # NoArgsIsHelpError (`normnas bench` alone) is click's way to show the help: keep it
    no_args_help = getattr(_click_errors, "NoArgsIsHelpError", ())
    try:
        yield
    except no_args_help:
        raise
    except _click_errors.ClickException as exc:
        fail(_click_message(exc), exc.exit_code)


def _click_message(exc: Any) -> str:
    """click's message on one line, with where to find the valid options."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, _click_errors.UsageError) and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Our warnings (e.g. a class with few samples) as one `warning:` line, not a file:line."""
    typer.echo(f"warning: {message}", err=True)


def reported(fn: F) -> F:
    """Run a command; map our errors to one line and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except SearchInterrupted as exc:
            typer.echo(f"interrupted: {one_line(exc)}", err=True)
            if exc.resume:
                typer.echo(f"resume with: {exc.resume}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:
            code = exit_code(exc)
            if code is not None:
                fail(one_line(exc), code)
            if isinstance(exc, (ValueError, OSError)):
                # validation in the spaces, samplers and loaders (bad options, unreadable
                # files): the user's input, not a bug; the message names the culprit
                fail(one_line(exc), 2)
            if os.environ.get("NORMNAS_DEBUG"):
                raise
            fail(
                f"internal error: {type(exc).__name__}: {one_line(exc)[:300]} "
                "(rerun with NORMNAS_DEBUG=1 for the traceback, and please report it)",
                INTERNAL_ERROR,
            )

    return wrapper  # type: ignore[return-value]
