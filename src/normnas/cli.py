"""The `normnas` command. Sub-commands live beside what they drive and are registered here."""

from __future__ import annotations

import typer

from normnas import __version__

app = typer.Typer(
    name="normnas",
    help="Neural architecture search where normalization is a first-class design choice.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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


from normnas.search.cli import register as _register_search  # noqa: E402  (light: typer only)

_register_search(app)  # search, status, best, export, demo

from normnas.bench.commands import register as _register_bench  # noqa: E402  (light: typer only)

_register_bench(app)  # bench nb201

from normnas.report.command import register as _register_report  # noqa: E402  (typer only)

_register_report(app)  # report

from normnas.ablate.cli import register as _register_ablate  # noqa: E402  (typer only)

_register_ablate(app)  # ablate


def main() -> None:
    app()


if __name__ == "__main__":
    main()
