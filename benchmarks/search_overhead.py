"""Per-trial overhead of `run_search` against a raw Optuna ask/tell loop.

Both loops use the same space (NB201), sampler (random, seeded), storage kind and a cheap
objective (a deterministic score of the cell, microseconds), so the difference is the
runner's own work: canonical key, dedup lookup, user attributes, budget checks.
Repeats alternate raw/runner; medians are printed with the ratio (target <= 1.2x).
`sqlite` opens the file as Optuna does by default; `sqlite-normnas` through
`normnas.search.study.open_storage` (what a search uses: a trial-state change begins with
BEGIN IMMEDIATE, so that two processes never pop one queued trial), for both loops: its raw
figure against `sqlite`'s is the cost of that in one process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/search_overhead.py [--trials 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from normnas.search.result import TrialResult
from normnas.search.runner import Budget, run_search
from normnas.search.study import open_storage
from normnas.spaces import NB201Space

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = NB201Space()
WEIGHT = {op: i for i, op in enumerate(SPACE.ops)}


def score(arch: tuple[str, ...]) -> float:
    return sum(WEIGHT[op] * (i + 1) for i, op in enumerate(arch)) / 100.0


class CheapEvaluator:
    def evaluate(self, arch, fidelity=None, report=None) -> TrialResult:  # type: ignore[no-untyped-def]
        return TrialResult(status="ok", accuracy=score(arch))


def _study(storage: str | optuna.storages.BaseStorage | None, seed: int) -> optuna.Study:
    return optuna.create_study(
        storage=storage, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed)
    )


def raw(storage: str | optuna.storages.BaseStorage | None, trials: int, seed: int) -> float:
    study = _study(storage, seed)
    start = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        study.tell(trial, score(SPACE.suggest(trial)))
    return (time.perf_counter() - start) / trials * 1e3


def runner(
    storage: str | optuna.storages.BaseStorage | None, trials: int, seed: int, dedup: bool
) -> float:
    study = _study(storage, seed)
    start = time.perf_counter()
    s = run_search(study, SPACE, CheapEvaluator(), Budget(trials=trials), dedup=dedup)
    n = s.n_evaluated + s.n_duplicates  # every asked trial, as in the raw loop
    return (time.perf_counter() - start) / n * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--sqlite-trials", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kinds = (
            ("inmemory", args.trials),
            ("sqlite", args.sqlite_trials),
            ("sqlite-normnas", args.sqlite_trials),
        )
        for label, trials in kinds:
            opened = open_storage if label == "sqlite-normnas" else (lambda url: url)
            for dedup in (False, True):
                raws, ours = [], []
                for r in range(args.repeats):
                    url = (
                        None
                        if label == "inmemory"
                        else f"sqlite:///{Path(tmp) / f'{label}{r}{dedup}.db'}"
                    )
                    raws.append(raw(None if url is None else opened(url), trials, r))
                    url2 = None if url is None else url.replace(".db", "-runner.db")
                    ours.append(runner(None if url2 is None else opened(url2), trials, r, dedup))
                a, b = statistics.median(raws), statistics.median(ours)
                print(
                    f"{label:14s} dedup={'on ' if dedup else 'off'} trials={trials:4d}  "
                    f"raw optuna {a:7.3f} ms/trial  run_search {b:7.3f} ms/trial  "
                    f"ratio {b / a:5.2f}x  overhead {b - a:+.3f} ms"
                )


if __name__ == "__main__":
    main()
