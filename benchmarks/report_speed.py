"""CPU time of `normnas report` on a large study (default 1,500 trials).

The study is what `normnas search` makes: a real one-trial search of the demo's macro space
on digits (so the study holds the run config, space spec and fingerprint the report reads),
then grown to `--trials` trials by the same runner with a synthetic evaluator (accuracy,
params, FLOPs, latency and a 6-epoch curve derived from the architecture string: no
training; SQLite without a sync per commit: the build takes a few minutes).

Two figures, medians of `--repeats` runs: the CPU time (user + system) of the whole
`normnas report` command as a child process, interpreter start and imports (torch,
scikit-learn: about 3.5 s of it) included, which is what a user waits for; and the CPU
time (`time.process_time`) of the report itself, run in this process once everything is
imported. Wall times beside them. CPU time still rises on a loaded machine: the 1-minute
load average is printed with the figures.

    .venv/bin/python benchmarks/report_speed.py [--trials 1500] [--repeats 3] [--dir DIR]
        [--profile N] [--src PATH]

`--dir` keeps the study (a rerun reuses it); `--profile N` prints the N most expensive
functions of one in-process report (cProfile, cumulative time); `--src` times the command
of another source tree (e.g. `git archive COMMIT src | tar -x -C /tmp/old`, then
`--src /tmp/old/src`) on the same study, for a before/after.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import yaml

from normnas.cli.search import DEMO_SPACE
from normnas.search.result import TrialResult
from normnas.search.runner import Budget, run_search
from normnas.search.spaces import make_space
from normnas.search.study import load_study, open_storage, read_trials

optuna.logging.set_verbosity(optuna.logging.WARNING)
STUDY = "big"
CONFIG = {
    "data": "digits",
    "space": {"name": "macro", "options": DEMO_SPACE},
    "strategy": "random",
    "train": {"epochs": 1, "batch_size": 64},
    "final": False,
}


class SyntheticEvaluator:
    """Deterministic metrics from a hash of the architecture string: no training."""

    def __init__(self, space: Any) -> None:
        self.space = space

    def evaluate(self, arch: Any, fidelity: int | None = None, report: Any = None) -> TrialResult:
        digest = hashlib.sha256(self.space.to_str(arch).encode()).digest()
        acc = 0.5 + 0.45 * digest[0] / 255
        curve = [acc * (0.6 + 0.4 * (e + 1) / 6) for e in range(6)]
        return TrialResult(
            status="ok",
            accuracy=acc,
            params=20_000 + 300 * digest[1],
            flops=2_000_000 + 40_000 * digest[2],
            macs=1_000_000 + 20_000 * digest[2],
            latency_ms=0.2 + digest[3] / 200,
            cost_s=5.0 + digest[4] / 10,
            curve=curve,
        )


def build_study(folder: Path, trials: int) -> str:
    """The study's storage URL in `folder`, with `trials` trials (made when missing)."""
    url = f"sqlite:///{folder / 'report_speed.db'}"
    if (folder / "report_speed.db").exists():
        with contextlib.suppress(Exception):
            if len(read_trials(load_study(STUDY, url))) >= trials:
                return url
    (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    _normnas(["search", "-c", "config.yaml", "--trials", "1", "--study", STUDY,
              "--storage", url, "-q"], folder)  # fmt: skip
    storage = open_storage(url)
    _no_fsync(storage)
    study = load_study(STUDY, storage)
    space = make_space("macro", DEMO_SPACE)
    run_search(study, space, SyntheticEvaluator(space), Budget(trials=trials))
    return url


def _no_fsync(storage: Any) -> None:
    """SQLite without a sync per commit, for this build only: a search commits about ten
    times a trial, and the syncs made the build of 1,500 trials take 18 minutes."""
    from sqlalchemy import event

    @event.listens_for(storage.engine, "connect")
    def _pragma(connection: Any, _: Any) -> None:
        connection.execute("PRAGMA synchronous = OFF")

    storage.engine.dispose()  # pooled connections reconnect, with the pragma


def _normnas(args: list[str], cwd: Path) -> str:
    """`normnas ARGS` in this process, from `cwd`; its output (it must succeed)."""
    from typer.testing import CliRunner

    from normnas.cli import app

    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, args)
    finally:
        os.chdir(old)
    if result.exit_code != 0:
        raise SystemExit(f"normnas {' '.join(args)} failed:\n{result.output}")
    return result.output


def time_report(folder: Path, url: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one `normnas report` of the study, in this process."""
    cpu, wall = time.process_time(), time.perf_counter()
    _normnas(["report", "--study", STUDY, "--storage", url, "--out", "report.html"], folder)
    return time.process_time() - cpu, time.perf_counter() - wall


def time_command(folder: Path, url: str, src: Path | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of `normnas report` as a command of its own (with the
    package from `src` when given)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())  # ahead of the installed (editable) package
    args = [sys.executable, "-m", "normnas.cli", "report", "--study", STUDY, "--storage", url,
            "--out", "report-command.html"]  # fmt: skip
    before, wall = os.times(), time.perf_counter()
    subprocess.run(args, cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="keep the study here")
    parser.add_argument("--profile", type=int, default=0, help="show the N costliest calls")
    parser.add_argument("--src", type=Path, default=None, help="time this source tree too")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.dir is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            folder = args.dir.resolve()
            folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        url = build_study(folder, args.trials)
        n = len(read_trials(load_study(STUDY, url)))
        print(f"study: {n} trials in {url} (ready in {time.perf_counter() - start:.0f} s)")
        if args.profile:
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.runcall(time_report, folder, url)
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.profile)
            print(out.getvalue())
        # interleaved, so that a change of the machine's load hits every figure alike
        runs: dict[str, list[tuple[float, float]]] = {"command": [], "in-process": []}
        if args.src is not None:
            runs[f"command from {args.src}"] = []
        for _ in range(args.repeats):
            runs["command"].append(time_command(folder, url))
            runs["in-process"].append(time_report(folder, url))
            if args.src is not None:
                runs[f"command from {args.src}"].append(time_command(folder, url, args.src))
        load = os.getloadavg()[0]
        for name, times in runs.items():
            cpu = statistics.median(t[0] for t in times)
            wall = statistics.median(t[1] for t in times)
            print(
                f"normnas report, {n} trials, {name}: {cpu:.2f} s CPU, {wall:.2f} s wall "
                f"(median of {args.repeats})"
            )
        print(f"1-min load average at the end: {load:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
