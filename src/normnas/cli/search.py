"""`normnas search | status | best | export | demo`. Heavy imports happen inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from normnas.cli import ray_options
from normnas.cli.errors import fail as _fail
from normnas.cli.errors import reported

DEMO_SPACE = {
    "stages": [
        {"widths": [16, 24], "min_blocks": 1, "max_blocks": 2, "stride": 1},
        {"widths": [24, 32, 48], "min_blocks": 1, "max_blocks": 2, "stride": 2},
        {"widths": [48, 64], "min_blocks": 1, "max_blocks": 1, "stride": 2},
    ]
}


def search(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML run config."),
    data: str | None = typer.Option(
        None,
        help="Data set: digits, cifar10, mnist, fashion-mnist, npz:PATH, folder:PATH, "
        "or a path to an .npz file or an image folder.",
    ),
    data_root: str | None = typer.Option(
        None,
        "--data-root",
        help="Folder of downloaded data sets (default $NORMNAS_DATA or ~/.cache/normnas/data).",
    ),
    verify: bool | None = typer.Option(
        None,
        "--verify/--no-verify",
        help="Check a data archive's MD5 against the official one (--no-verify accepts a repack).",
    ),
    space: str | None = typer.Option(
        None, help="Search space: macro, nb201, or a LayerSpace file (layers.yaml)."
    ),
    strategy: str | None = typer.Option(
        None, help="random, grid, evolution, local, additive, tpe, nsga2 (see the docs)."
    ),
    objective: list[str] | None = typer.Option(
        None, "--objective", help="accuracy, params, flops, latency; repeat for several."
    ),
    max_params: float | None = typer.Option(None, help="Constraint: parameters."),
    max_flops: float | None = typer.Option(
        None,
        help="Constraint: operations per sample (multiply-adds + pooling, norms, activations, "
        "adds; see count_flops).",
    ),
    max_latency_ms: float | None = typer.Option(None, help="Constraint: batch-1 latency."),
    target: str | None = typer.Option(
        None,
        "--target",
        help="Predict latency for torch, torchscript, onnxruntime or cuda from a table "
        "(with --objective latency or --max-latency-ms); finalists measured for real.",
    ),
    latency_threads: int | None = typer.Option(
        None, "--latency-threads", help="--target's threads (1)."
    ),
    latency_batch: int | None = typer.Option(None, "--latency-batch", help="--target's batch (1)."),
    latency_table: str | None = typer.Option(
        None, "--latency-table", help="--target's table file (default: cache, profiled once)."
    ),
    trials: int | None = typer.Option(None, help="Budget: evaluated trials."),
    generations: int | None = typer.Option(
        None,
        "--generations",
        help="Evolution's budget: generations x population size trials (the first "
        "generation is the random initial population).",
    ),
    population_size: int | None = typer.Option(
        None, "--population-size", help="Evolution: population size (default 10)."
    ),
    time: str | None = typer.Option(
        None,
        "--time",
        help="Budget: wall time of the whole command, final retrain included (90s, 10m, 1h).",
    ),
    epochs: int | None = typer.Option(None, help="Training epochs per candidate."),
    pruner: str | None = typer.Option(None, help="none, sha, hyperband."),
    workers: int | None = typer.Option(None, help="Local worker processes."),
    executor: str | None = typer.Option(
        None,
        "--executor",
        help="local (inline, or --workers processes) or ray (needs normnas[ray]).",
    ),
    ray_address: str | None = ray_options.RAY_ADDRESS,
    trials_in_parallel: int | None = ray_options.TRIALS_IN_PARALLEL,
    cpus_per_trial: float | None = ray_options.CPUS_PER_TRIAL,
    gpus_per_trial: float | None = ray_options.GPUS_PER_TRIAL,
    study: str | None = typer.Option(None, help="Study name (default normnas-<space>-<data>)."),
    storage: str | None = typer.Option(
        None, help="sqlite:///file.db, journal:PATH, or a PostgreSQL/MySQL URL."
    ),
    seed: int | None = typer.Option(None, help="Seed of sampler, data split and training."),
    device: str | None = typer.Option(None, help="cpu or cuda."),
    final: bool | None = typer.Option(
        None, "--final/--no-final", help="Retrain the best on train+valid and test it."
    ),
    evaluator: str | None = typer.Option(
        None,
        "--evaluator",
        help="How candidates are judged: train (from scratch), supernet (weight sharing), "
        "bn-indicator (BN-NAS scale score), proxy (zero-cost proxies).",
    ),
    bn_mode: str | None = typer.Option(
        None,
        "--bn-mode",
        help="Supernet: BN statistics of a sub-network: running, batch, recalibrate.",
    ),
    calib_batches: int | None = typer.Option(
        None, "--calib-batches", help="Supernet, recalibrate: training batches per query."
    ),
    sampling: str | None = typer.Option(
        None,
        "--sampling",
        help="Supernet training: uniform (SPOS), fair (FairNAS), sandwich (macro space).",
    ),
    few_shot: str | None = typer.Option(
        None,
        "--few-shot",
        help="Supernet, nb201: split on this cell edge (0-5 or 3<-0) into 5 sub-supernets.",
    ),
    proxy: str | None = typer.Option(
        None,
        "--proxy",
        help="Zero-cost proxies, comma-separated (default synflow,jacov,naswot,meco,swap_reg); "
        "judged by --evaluator proxy and the warm-up.",
    ),
    proxy_warmup: int | None = typer.Option(
        None,
        "--proxy-warmup",
        help="Score N random architectures with the proxies first; start from the best.",
    ),
    cascade: str | None = typer.Option(
        None,
        "--cascade",
        help="Judges from cheapest to dearest, each judge:N candidates, e.g. "
        "proxy:2000,bn-indicator:200,train:20 (the last is the search's judge).",
    ),
    proposer: str | None = typer.Option(
        None,
        "--proposer",
        help="Who proposes the cascade's first-stage candidates: random (default), evolution "
        "or local (searching on that stage's judge).",
    ),
    method: str | None = typer.Option(
        None,
        "--method",
        help="Gradient-based search instead of a strategy: darts, gdas or drnas (nb201, macro).",
    ),
    order: int | None = typer.Option(
        None, "--order", help="darts: 1 (first order) or 2 (unrolled second-order gradient)."
    ),
    selection: str | None = typer.Option(
        None, "--selection", help="Gradient: derive by argmax or pt (DARTS-PT perturbation)."
    ),
    search_epochs: int | None = typer.Option(
        None, "--search-epochs", help="Gradient: epochs of the relaxed supernet (default --epochs)."
    ),
    force: bool | None = typer.Option(
        None,
        "--force",
        help="Rerun a study although its space, data or training changed (recorded).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress and no leaderboard: the best, study, report."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="One line per trial with its architecture (no bar)."
    ),
) -> None:
    """Search architectures (and their normalization) on a data set."""
    overrides: dict[str, Any] = {
        "data": data,
        "data_root": data_root,
        "verify": verify,
        "space.name": space,
        "strategy": strategy,
        "objectives": list(objective) if objective else None,
        "constraints.max_params": max_params,
        "constraints.max_flops": max_flops,
        "constraints.max_latency_ms": max_latency_ms,
        "latency.target": target,
        "latency.threads": latency_threads,
        "latency.batch": latency_batch,
        "latency.table": latency_table,
        "trials": trials,
        "generations": generations,
        "strategy_options.population_size": population_size,
        "time": time,
        "train.epochs": epochs,
        "pruner": pruner,
        "workers": workers,
        "executor": executor,
        "ray.address": ray_address,
        "ray.trials_in_parallel": trials_in_parallel,
        "ray.cpus_per_trial": cpus_per_trial,
        "ray.gpus_per_trial": gpus_per_trial,
        "study": study,
        "storage": storage,
        "seed": seed,
        "device": device,
        "final": final,
        "force": force,
        "evaluator": evaluator,
        "oneshot.bn_mode": bn_mode,
        "oneshot.calib_batches": calib_batches,
        "oneshot.sampling": sampling,
        "oneshot.few_shot": few_shot,
        "proxies": proxy,
        "proxy_warmup": proxy_warmup,
        "cascade": cascade,
        "proposer": proposer,
        "method": method,
        "gradient.order": order,
        "gradient.selection": selection,
        "gradient.epochs": search_epochs,
    }
    if _judge_left_to_us(config, overrides):
        overrides["cascade"] = "auto"
    run_and_report(config, overrides, progress, quiet=quiet, verbose=verbose)


# What `search --help` shows as each option's default. The options default to None so that a
# YAML config can set them; these are RunConfig's own defaults (a docs test compares them).
SEARCH_DEFAULTS: dict[str, str] = {
    "data": "digits",
    "verify": "verify",
    "space": "macro",
    "strategy": "evolution",
    "objective": "accuracy",
    "epochs": "3",
    "pruner": "none",
    "workers": "1",
    "executor": "local",
    "storage": "sqlite:///normnas.db",
    "seed": "0",
    "device": "cpu",
    "final": "final",
    "evaluator": "train",
    "bn_mode": "recalibrate",
    "calib_batches": "16",
    "sampling": "uniform",
    "proxy": "synflow,jacov,naswot,meco,swap_reg",
    "proxy_warmup": "0",
    "proposer": "random",
    "order": "1",
    "selection": "argmax",
}


def _show_defaults(command: Any, defaults: dict[str, str]) -> None:
    """Add `[default: X]` to `command`'s options' help, as click shows a real default (a
    string `show_default` would print it in parentheses)."""
    import copy
    import inspect

    for name, param in inspect.signature(command).parameters.items():
        if name in defaults and isinstance(param.default, typer.models.OptionInfo):
            info = copy.copy(param.default)  # an option may be shared with `ablate`
            info.help = f"{info.help}  [default: {defaults[name]}]"
            command.__defaults__ = tuple(
                info if d is param.default else d for d in command.__defaults__
            )


_show_defaults(search, SEARCH_DEFAULTS)


# naming any of these chooses how the search judges; with none, --time gets an auto cascade
_CHOICES = (
    "strategy", "trials", "generations", "evaluator", "cascade", "method", "proxy_warmup",
    "workers", "executor", "pruner", "objectives", "constraints.max_params",
    "constraints.max_flops", "constraints.max_latency_ms",
)  # fmt: skip


def _judge_left_to_us(config: Path | None, overrides: dict[str, Any]) -> bool:
    """`normnas search --data X --time T` and nothing that says how to search: the user
    leaves the judge to us (see `normnas.judges.auto`). A config file decides for itself."""
    if config is not None or overrides.get("time") is None:
        return False
    return all(overrides.get(k) is None for k in _CHOICES)


STARTED: float | None = None  # set by `normnas.cli.main` (the command), else None


def process_started() -> float:
    """When this process started, on the `time.monotonic()` clock (Linux: /proc; elsewhere
    now). Python's start and torch's import take seconds on a loaded machine, and `--time`
    is a promise about the whole command."""
    import os
    import time

    try:
        with open(f"/proc/{os.getpid()}/stat") as f:
            # field 22 (after the parenthesised name) is the start time in clock ticks
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic()
    return time.monotonic() - max(0.0, min(age, 3600.0))


def run_and_report(
    config: Path | None,
    overrides: dict[str, Any],
    progress: bool,
    quiet: bool = False,
    verbose: bool = False,
) -> None:
    """Run the search and print its outcome. Progress goes to stderr: a bar on a terminal,
    one plain line per trial elsewhere (a pipe, a log, CI), lines with architectures with
    `verbose`, nothing with `quiet` (which also leaves out the leaderboard)."""

    import time

    # --time counts from the command's start: the process's when run as `normnas`
    start = STARTED if STARTED is not None else time.monotonic()
    from normnas.config import load_config

    cfg = load_config(config, overrides)
    from normnas.session import run

    mode: bool | str = False if quiet or not progress else ("verbose" if verbose else True)
    outcome = run(cfg, progress=mode, started=start)  # type: ignore[arg-type]
    from normnas.report.leaderboard import print_outcome, print_quiet

    if quiet:
        print_quiet(outcome)
    else:
        print_outcome(outcome, cfg)
    from normnas.cli.baseline import baseline_after_search

    baseline_after_search(outcome, cfg)  # ucr: data: MiniRocket beside the test accuracy
    report_after_search(outcome)
    if outcome.final_note is not None:  # last, where it is read: the model is not what it seems
        typer.echo(f"warning: {outcome.final_note}", err=True)
    if outcome.failure is not None:
        raise outcome.failure


def report_after_search(outcome: object) -> Path | None:
    """What `normnas search` and `demo` do at the end: write the study's report beside its
    storage and print its path. A report that cannot be written is a warning line, never a
    failed search."""
    from normnas.errors import one_line
    from normnas.report.html_page import default_report_path, write_report

    study = outcome.study  # type: ignore[attr-defined]
    url = outcome.storage  # type: ignore[attr-defined]
    try:
        path = write_report(study, url, default_report_path(study.study_name, url))
    except Exception as e:  # the search's results are safe in the storage either way
        typer.echo(f"warning: the report was not written: {one_line(e)}", err=True)
        return None
    typer.echo(f"report  {path}")
    return path


DEMO_STUDY = "demo"


def demo(
    time: str = typer.Option("150s", "--time", help="Budget of this run (a rerun adds to it)."),
    storage: str | None = typer.Option(None, help="Storage URL (default sqlite in cwd)."),
) -> None:
    """The main job: evolution over the macro space on digits, with the leaderboard.

    Its study is `demo` in the working directory's normnas.db: the commands printed at the
    end (status, report, export) read it, and running the demo again resumes it (the
    evolution goes on from its population; finished trials are kept)."""
    overrides = {
        "data": "digits",
        "space": {"name": "macro", "options": DEMO_SPACE},
        "strategy": "evolution",
        "strategy_options": {"population_size": 8, "sample_size": 3},
        "time": time,
        "train": {"epochs": 6, "batch_size": 64, "lr": 0.05},
        "study": DEMO_STUDY,
        "storage": storage,
    }
    typer.echo(
        "normnas demo: evolution over conv blocks (norm, placement, width, kernel, activation,"
        f" residual) on digits for {time}; the best is then retrained and tested."
    )
    run_and_report(None, overrides, progress=True)
    at = f" --storage {storage}" if storage else ""
    typer.echo(
        f"next    normnas status --study {DEMO_STUDY}{at} | normnas report --study "
        f"{DEMO_STUDY}{at} | normnas export --study {DEMO_STUDY}{at} --out model.pt"
    )


def _open(study: str, storage: str | None) -> Any:
    import optuna

    from normnas.search.study import default_storage, load_study, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or default_storage()
    return load_study(study, open_storage(url, write=False)), url


def status(
    study: str = typer.Option(..., help="Study name."),
    storage: str | None = typer.Option(None, help="Storage URL (default sqlite:///normnas.db)."),
) -> None:
    """Trials of a study by state and status, and the best so far."""
    from normnas.report.status import print_status
    from normnas.search.study import owner_check

    s, url = _open(study, storage)
    print_status(s, url, owner_check(s))


def best(
    study: str = typer.Option(..., help="Study name."),
    storage: str | None = typer.Option(None, help="Storage URL (default sqlite:///normnas.db)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The best trial (or the Pareto front) of a study."""
    from normnas.report.leaderboard import best_json, print_best
    from normnas.search import records as rec

    s, _ = _open(study, storage)
    front = rec.best_records(s)
    if not front:
        _fail(f"study {study!r} has no completed trial yet", code=1)
    if as_json:
        typer.echo(best_json(s, front))
    else:
        print_best(s, front)


def export(
    study: str | None = typer.Option(None, help="Study name (or --checkpoint)."),
    out: Path = typer.Option(..., "--out", help="Output file."),
    checkpoint_file: Path | None = typer.Option(
        None, "--checkpoint", help="A saved checkpoint to export instead (e.g. of normnas slim)."
    ),
    storage: str | None = typer.Option(None, help="Storage URL (default sqlite:///normnas.db)."),
    fold_bn: bool = typer.Option(False, "--fold-bn", help="Fold BatchNorm into convs."),
    fmt: str = typer.Option(
        "state_dict",
        "--format",
        help="state_dict (normnas.load_model reads it), pt2 (torch.export, dynamic batch), "
        "onnx (BN folded; needs normnas[onnx]), keras (a .keras file; needs normnas[keras]) "
        "or torchscript (legacy: deprecated in torch 2.13, use pt2).",
    ),
    data: str | None = typer.Option(
        None, "--data", help="Where the study's data is now (if the best must be retrained)."
    ),
    data_root: str | None = typer.Option(
        None, "--data-root", help="Folder of downloaded data sets, for that retrain."
    ),
) -> None:
    """Write the study's best model: checkpoint, torch.export, ONNX, Keras or TorchScript."""
    from normnas.export import FORMATS, check_format
    from normnas.export import export as export_model

    if fmt not in FORMATS:
        _fail(f"--format: unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    from normnas.assemble import ensure_final_model
    from normnas.search import final

    # an unwritable --out fails before a long retrain; a folder: suggest a name of the format
    suffix = {"onnx": "onnx", "keras": "keras", "pt2": "pt2"}.get(fmt, "pt")
    example = f"model.{suffix}"
    out = final.prepare_out(out, example)
    check_format(fmt, out)  # and so does a missing extra
    if (study is None) == (checkpoint_file is None):
        _fail("export: give --study NAME (its best model) or --checkpoint FILE, one of them")
    if checkpoint_file is not None:
        checkpoint = checkpoint_file
    else:
        assert study is not None  # one of the two, checked above
        s, url = _open(study, storage)
        checkpoint = ensure_final_model(s, url, data=data, data_root=data_root)
    done = export_model(checkpoint, out, fmt=fmt, fold_bn=fold_bn)
    typer.echo(f"wrote {done.path} ({done.note})")
    note = final.checkpoint_note(checkpoint)
    if note:  # the exported model is not a plain retrain: say so where the file is named
        typer.echo(f"warning: {note}", err=True)


def register(app: typer.Typer) -> None:
    for name, fn in (
        ("search", search),
        ("status", status),
        ("best", best),
        ("export", export),
        ("demo", demo),
    ):
        app.command(name)(reported(fn))
