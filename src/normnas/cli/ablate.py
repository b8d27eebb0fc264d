"""`normnas ablate`: a designed experiment on normalization. Heavy imports inside."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from normnas.cli import ray_options
from normnas.cli.errors import reported


def ablate(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML ablation config."),
    data: str | None = typer.Option(
        None,
        help="digits (default), cifar10, npz:PATH, folder:PATH, mnist, fashion-mnist, ucr:NAME.",
    ),
    space: str | None = typer.Option(
        None, help="macro (default: images) or seq (sequences: conv and transformer blocks)."
    ),
    data_root: str | None = typer.Option(None, "--data-root", help="Downloaded data sets."),
    arch: str | None = typer.Option(
        None,
        help="macro-default / seq-default (the default, after --space), study:NAME (the best "
        "of a search of that space in --storage), or an architecture string of it.",
    ),
    factors: str | None = typer.Option(
        None,
        help="Comma-separated: norm, placement, batch_size, schedule, regularizer, lr, "
        "bn_momentum (default norm,batch_size).",
    ),
    levels: list[str] | None = typer.Option(
        None, "--levels", help="FACTOR=LEVEL,LEVEL,... to replace a factor's default levels."
    ),
    seeds: int | None = typer.Option(None, help="Seeds per cell (default 3)."),
    epochs: int | None = typer.Option(
        None, help="Training epochs per run (default 5; 100 with --space seq)."
    ),
    time: str | None = typer.Option(
        None, "--time", help="Wall time of the whole command (20m); sizes the auto design."
    ),
    design: str | None = typer.Option(None, help="auto (default), full, pairs or ofat."),
    workers: int | None = typer.Option(None, help="Local worker processes."),
    executor: str | None = typer.Option(
        None, help="local (default: inline, or --workers processes) or ray (normnas[ray])."
    ),
    ray_address: str | None = ray_options.RAY_ADDRESS,
    trials_in_parallel: int | None = ray_options.TRIALS_IN_PARALLEL,
    cpus_per_trial: float | None = ray_options.CPUS_PER_TRIAL,
    gpus_per_trial: float | None = ray_options.GPUS_PER_TRIAL,
    study: str | None = typer.Option(None, help="Study name (default ablate-<data>-<hash>)."),
    storage: str | None = typer.Option(
        None, help="sqlite:///file.db (default sqlite:///normnas.db), journal:PATH or a URL."
    ),
    device: str | None = typer.Option(None, help="cpu or cuda."),
    report: str | None = typer.Option(None, help="Write a self-contained HTML report here."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
) -> None:
    """Ablate normalization: per-level means with 95% intervals, paired differences against
    the baseline over the same seeds, interactions, divergence and time per epoch."""
    import time as _time

    start = _time.monotonic()
    from normnas.ablate.config import load_ablate_config
    from normnas.ablate.factors import parse_levels_option

    overrides: dict[str, Any] = {
        "data": data,
        "data_root": data_root,
        "space": space,
        "arch": arch,
        "factors": [f.strip() for f in factors.split(",")] if factors else None,
        "levels": parse_levels_option(levels) if levels else None,
        "seeds": seeds,
        "epochs": epochs,
        "time": time,
        "design": design,
        "workers": workers,
        "executor": executor,
        "study": study,
        "storage": storage,
        "device": device,
        "report": report,
        "ray.address": ray_address,
        "ray.trials_in_parallel": trials_in_parallel,
        "ray.cpus_per_trial": cpus_per_trial,
        "ray.gpus_per_trial": gpus_per_trial,
    }
    cfg = load_ablate_config(config, overrides)
    from normnas.ablate.run import run_ablation
    from normnas.ablate.summary import interaction_table, level_table, sentences

    outcome = run_ablation(cfg, progress=progress and sys.stderr.isatty(), started=start)
    for note in outcome.notes:
        typer.echo(f"note: {note}")
    typer.echo(level_table(outcome.stats))
    table = interaction_table(outcome.stats)
    if table:
        typer.echo(table)
    typer.echo("summary (95% t-intervals over seeds; accuracy in points):")
    for line in sentences(outcome.stats):
        typer.echo(f"- {line}")
    if outcome.report_path:
        typer.echo(f"report: {outcome.report_path}")
    typer.echo(f"study {outcome.study.study_name} in {outcome.storage} ({outcome.wall_s:.0f}s)")


def register(app: typer.Typer) -> None:
    app.command("ablate")(reported(ablate))
