"""`normnas report`: write a study's self-contained HTML report. Heavy imports are lazy."""

from __future__ import annotations

from pathlib import Path

import typer

from normnas.cli.errors import reported


def report(
    study: str = typer.Option(..., "--study", help="Study name."),
    storage: str | None = typer.Option(None, help="Storage URL (default sqlite:///normnas.db)."),
    out: Path | None = typer.Option(
        None, "--out", help="HTML file to write (default NAME-report.html beside the storage)."
    ),
) -> None:
    """Write a study's HTML report: trajectory, Pareto front, which choices matter, the best
    model and its BN diagnostics (one file, works offline)."""
    import optuna

    from normnas.report.html_page import default_report_path, write_report
    from normnas.search.study import default_storage, load_study, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or default_storage()
    s = load_study(study, open_storage(url, write=False))
    path = write_report(s, url, out if out is not None else default_report_path(study, url))
    typer.echo(f"report  {path}")


def register(app: typer.Typer) -> None:
    app.command("report")(reported(report))
