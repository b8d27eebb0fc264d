"""Scale-out: one fixed search with 1, 2 and 4 parallel trials, inline, as local workers on
a journal file, on Ray, and on PostgreSQL (when a server can be started here).

The search: `--trials` (default 40) of random search over a small macro space on digits,
one epoch each, no final retrain; every run is a real `normnas search` command in a fresh
folder, with OMP_NUM_THREADS=1. Printed per run:

- trials/min: trials over the search's span (first trial created to last one finished,
  read from the study), so start-up (imports, Ray's cluster) is left out; `cmd s` is the
  whole command's wall time with it;
- ratio: trials/min over the inline run's (> 1: faster);
- overhead s/trial: for each worker, (its span − the time its evaluations took) / its
  trials — the loop's own cost per trial (ask, sampler, storage writes, heartbeat, the
  dedup scan), averaged over workers; `over journal` is that less the journal-file run's
  with the same number of parallel trials (the issue's target: under 0.2 s).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale_out.py [--trials 40] [--parallel 1 2 4]
        [--modes inline journal ray postgres]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SPACE = """\
data: digits
space:
  name: macro
  options:
    stages:
      - {widths: [8, 16], min_blocks: 1, max_blocks: 1, stride: 1}
      - {widths: [16, 24], min_blocks: 1, max_blocks: 1, stride: 2}
    dropout: [0.0]
train: {epochs: 1, batch_size: 64}
strategy: random
final: false
"""
CLI = [sys.executable, "-c", "from normnas.cli import main; main()"]


def run(folder: Path, url: str, trials: int, extra: list[str]) -> float:
    """One search command; its wall time."""
    (folder / "s.yaml").write_text(SPACE)
    args = ["search", "-c", "s.yaml", "--study", "b", "--storage", url, "--trials", str(trials)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [*CLI, *args, "--no-progress", *extra], cwd=folder, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args + extra)} failed:\n{done.stderr[-2000:]}")
    return wall


def measure(url: str) -> tuple[int, float, float]:
    """(evaluated trials, search span s, mean loop overhead s per trial) from the study."""
    import optuna

    from normnas.search import records as rec
    from normnas.search.study import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="b", storage=open_storage(url, write=False))
    done = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete is not None]
    evaluated = [r for r in rec.records(study) if r.evaluated]
    first = min(t.datetime_start for t in done if t.datetime_start is not None)
    last = max(t.datetime_complete for t in done)  # type: ignore[type-var]
    by_worker = defaultdict(list)
    for t in done:
        by_worker[t.user_attrs.get(rec.ATTR_WORKER)].append(t)
    overheads = []
    for trials in by_worker.values():
        span = (
            max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
        ).total_seconds()
        evaluating = sum(float(t.user_attrs.get("cost_s", 0.0)) for t in trials)
        overheads.append((span - evaluating) / len(trials))
    return len(evaluated), (last - first).total_seconds(), statistics.mean(overheads)


def _pg() -> Any:
    """The tests' throw-away PostgreSQL helper (tests/execute/postgres.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.execute import postgres as pg

    return pg


@contextmanager
def postgres() -> Iterator[str | None]:
    """A throw-away PostgreSQL cluster (as the tests make it), or None where there is none."""
    pg = _pg()
    try:
        with pg.cluster() as base:
            yield base
    except pg.Unavailable as e:
        print(f"PostgreSQL skipped: {e}")
        yield None


def loop_ms(url: str, trials: int, seed: int) -> float:
    """Milliseconds per trial of the runner's own loop (dedup, heartbeat, stale check,
    records) on `url`, with an instant evaluator: what the storage costs per trial."""
    import optuna
    import yaml

    from normnas.config import parse_config
    from normnas.search.result import TrialResult
    from normnas.search.runner import Budget, run_search
    from normnas.search.spaces import make_space
    from normnas.search.study import open_storage

    class Instant:
        def evaluate(self, arch, fidelity=None, report=None) -> TrialResult:  # type: ignore[no-untyped-def]
            return TrialResult(status="ok", accuracy=0.5, cost_s=0.0)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = parse_config(yaml.safe_load(SPACE))
    space = make_space(cfg.space.name, cfg.space.space_options(), cfg.space.recipe)
    study = optuna.create_study(
        study_name=f"loop{seed}", storage=open_storage(url), direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )  # fmt: skip
    start = time.perf_counter()
    s = run_search(study, space, Instant(), Budget(trials=trials))
    return (time.perf_counter() - start) / (s.n_evaluated + s.n_duplicates) * 1e3


def loop_overhead(pg_base: str | None, trials: int = 40, repeats: int = 3) -> None:
    """Per-trial loop cost on the journal file and on PostgreSQL, alternating."""
    got: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="scale-out-loop-") as tmp:
        for r in range(repeats):
            got["journal"].append(loop_ms(f"journal:{Path(tmp) / f'{r}.journal'}", trials, r))
            if pg_base is not None:
                got["postgres"].append(loop_ms(_pg().new_database(pg_base), trials, r))
    base = statistics.median(got["journal"])
    print(f"\nloop cost per trial, instant evaluator, {trials} trials, median of {repeats}:")
    for name, values in got.items():
        ms = statistics.median(values)
        extra = "" if name == "journal" else f" ({ms - base:+.1f} ms over the journal file)"
        print(f"  {name:<9}{ms:8.1f} ms/trial{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--modes", nargs="+", default=["inline", "journal", "ray", "postgres"])
    ap.add_argument("--loop-only", action="store_true", help="only the storage loop cost")
    args = ap.parse_args()
    if args.loop_only:
        with postgres() as pg_base:
            loop_overhead(pg_base)
        return
    cores = os.cpu_count() or 1
    rows = []
    with postgres() as pg_base:
        loop_overhead(pg_base if "postgres" in args.modes else None)
        for mode in args.modes:
            for n in [1] if mode == "inline" else args.parallel:
                if mode == "journal" and n == 1:
                    continue  # the inline run is one process on the journal file
                if mode == "postgres" and pg_base is None:
                    continue
                with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
                    folder = Path(tmp)
                    url = f"journal:{folder / 's.journal'}"
                    extra: list[str] = []
                    if mode == "journal" or (mode == "postgres" and n > 1):
                        extra = ["--workers", str(n)]
                    if mode == "postgres":
                        url = _pg().new_database(pg_base)
                    if mode == "ray":
                        cpus = min(1.0, cores / n)
                        extra = ["--executor", "ray", "--trials-in-parallel", str(n),
                                 "--cpus-per-trial", f"{cpus:g}"]  # fmt: skip
                    wall = run(folder, url, args.trials, extra)
                    n_done, span, overhead = measure(url)
                rows.append((mode, n, n_done, span, wall, overhead))
                print(f"  {mode} x{n}: {n_done} trials, span {span:.1f}s, cmd {wall:.1f}s",
                      flush=True)  # fmt: skip
    inline = next((r for r in rows if r[0] == "inline"), None)
    journal = {r[1]: r[5] for r in rows if r[0] in ("inline", "journal")}
    print(
        f"\n{args.trials} trials, macro space on digits, 1 epoch; {cores} cores; OMP_NUM_THREADS=1"
    )
    head = f"{'mode':<9}{'par':>4}{'trials':>7}{'trials/min':>11}{'ratio':>7}{'cmd s':>8}"
    print(head + f"{'overhead s/trial':>18}{'over journal':>14}")
    for mode, n, n_done, span, wall, overhead in rows:
        tpm = 60 * n_done / span
        ratio = tpm / (60 * inline[2] / inline[3]) if inline else float("nan")
        vs = overhead - journal[n] if n in journal and mode in ("ray", "postgres") else None
        print(f"{mode:<9}{n:>4}{n_done:>7}{tpm:>11.1f}{ratio:>7.2f}{wall:>8.1f}"
              f"{overhead:>18.3f}{'' if vs is None else f'{vs:+.3f}':>14}")  # fmt: skip


if __name__ == "__main__":
    main()
