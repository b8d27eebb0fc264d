"""The `normnas` command: one module per command group (search, bench, report, ablate), each
of which only parses its options and calls the package that does the work."""

from __future__ import annotations

import typer

from normnas.cli.errors import OneLineErrorsGroup
from normnas.version import __version__

app = typer.Typer(
    name="normnas",
    cls=OneLineErrorsGroup,  # a bad flag or command: one `error:` line, not a usage box
    help="Neural architecture search where normalization is a first-class design choice.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help: Rich markup would swallow `normnas[onnx]` and its tables cut descriptions
    # to ~20 characters in 80 columns; click's formatter wraps them whole
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"normnas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """normnas: search architectures, normalization and training recipes together."""


from normnas.cli import ablate as _ablate  # noqa: E402  (typer only: heavy imports are lazy)
from normnas.cli import baseline as _baseline  # noqa: E402
from normnas.cli import bench as _bench  # noqa: E402
from normnas.cli import report as _report  # noqa: E402
from normnas.cli import search as _search  # noqa: E402
from normnas.cli import slim as _slim  # noqa: E402
from normnas.cli.latency import register as _register_latency  # noqa: E402

_search.register(app)  # search, status, best, export, demo
_bench.register(app)  # bench nb201
_report.register(app)  # report
_ablate.register(app)  # ablate
_baseline.register(app)  # baseline (MiniRocket on ucr: data)
_register_latency(app)  # latency profile, predict
_slim.register(app)  # slim


def main() -> None:
    from normnas.cli import search

    # the `normnas` command: --time counts from the process's start (imports included)
    search.STARTED = search.process_started()
    app()
