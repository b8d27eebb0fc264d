"""Sequences: a `--space seq` search against MiniRocket, and norm x placement with intervals.

    .venv/bin/python benchmarks/seq_ucr.py                 # the full protocol (~75 min idle)
    .venv/bin/python benchmarks/seq_ucr.py --quick         # a smoke test (~3 min)
    .venv/bin/python benchmarks/seq_ucr.py --skip-ablation --time 20m   # the goal's half

For each data set aeon bundles (default GunPoint, ItalyPowerDemand, BasicMotions):

1. MiniRocket (aeon, 10,000 kernels + ridge) trained on the official train split and
   scored on the official test split, measured in this run (`normnas.train.minirocket`).
2. `normnas search --data ucr:NAME --space seq --time T` (default 20m: the issue's goal),
   run as the user runs it (a subprocess, --time counting from its start): the found
   network's test accuracy after its retrain on train+valid, against MiniRocket's.
3. `normnas ablate --space seq --factors norm,placement --design full`: BatchNorm, LayerNorm,
   RMSNorm, GroupNorm and no norm, each pre- and post-norm, on every block of the
   seq-default network, `--seeds` seeds (3) of `--epochs` epochs (60), scored on the test split,
   with 95% t-intervals over seeds (paired against LayerNorm / pre-norm).

Resumable: every finished step is a line of `--out` (JSONL) and is not redone; the searches
and ablations live in sqlite files under `--work`, so a killed run picks up its study.
Prints one line per step and, at the end, on how many data sets the search reached
MiniRocket.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SETS = ("GunPoint", "ItalyPowerDemand", "BasicMotions")


def done_steps(out: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(data, step, settings key) -> its recorded result line."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    if out.is_file():
        for line in out.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                found[(row["data"], row["step"], row["key"])] = row
    return found


def record(out: Path, row: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")


def minirocket(name: str, seed: int) -> dict[str, Any]:
    from normnas.train.minirocket import minirocket_baseline

    r = minirocket_baseline(name, seed)
    return {"test_accuracy": r.test_accuracy, "fit_s": r.fit_s}


def search(name: str, budget: str, work: Path, seed: int) -> dict[str, Any]:
    """The user's command in a subprocess; its result read back from the study."""
    import optuna

    from normnas.search.study import open_storage

    study = f"seq-{name}-{budget}-s{seed}"
    url = f"sqlite:///{work / 'search.db'}"
    cmd = [
        str(ROOT / ".venv" / "bin" / "normnas"), "search", "--data", f"ucr:{name}",
        "--space", "seq", "--time", budget, "--seed", str(seed), "--study", study,
        "--storage", url, "--no-progress",
    ]  # fmt: skip
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"search of {name} failed (exit {done.returncode})")
    attrs = optuna.load_study(study_name=study, storage=open_storage(url, write=False)).user_attrs
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(("best #", "trials:"))]
    return {"test_accuracy": attrs.get("test_accuracy"), "wall_s": wall, "lines": lines}


def ablation(name: str, work: Path, seeds: int, epochs: int, quick: bool) -> dict[str, Any]:
    from normnas.ablate.config import load_ablate_config
    from normnas.ablate.run import run_ablation
    from normnas.ablate.summary import interaction_table, level_table, sentences

    overrides: dict[str, Any] = {
        "data": f"ucr:{name}", "space": "seq", "factors": ["norm", "placement"],
        "seeds": seeds, "epochs": epochs, "design": "full",
        "storage": f"sqlite:///{work / 'ablate.db'}",
    }  # fmt: skip
    if quick:
        overrides["levels"] = {"norm": ["batchnorm", "layernorm"]}
    start = time.monotonic()
    outcome = run_ablation(load_ablate_config(None, overrides), echo=lambda _: None)
    tables = [level_table(outcome.stats), interaction_table(outcome.stats) or ""]
    cells = {}
    for obs in outcome.obs:
        key = " ".join(f"{k}={v}" for k, v in obs.levels)
        cells.setdefault(key, []).append(obs.accuracy)
    return {
        "wall_s": time.monotonic() - start,
        "tables": "\n".join(t for t in tables if t),
        "sentences": sentences(outcome.stats),
        "cells": cells,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=None, help="Comma-separated bundled names.")
    parser.add_argument("--time", default=None, help="Each search's --time (default 20m).")
    parser.add_argument("--seeds", type=int, default=None, help="Ablation seeds (default 3).")
    parser.add_argument("--epochs", type=int, default=None, help="Ablation epochs (60).")
    parser.add_argument("--seed", type=int, default=0, help="Search and MiniRocket seed.")
    parser.add_argument("--skip-ablation", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--quick", action="store_true", help="ItalyPowerDemand, 60s, 2x10.")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks/results/seq_ucr.work")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    quick = args.quick
    names = (args.datasets or ("ItalyPowerDemand" if quick else ",".join(DEFAULT_SETS))).split(",")
    budget = args.time or ("60s" if quick else "20m")
    seeds = args.seeds or (2 if quick else 3)
    epochs = args.epochs or (10 if quick else 60)
    out = args.out or ROOT / f"benchmarks/results/seq_ucr{'_quick' if quick else ''}.jsonl"
    work = args.work.with_name(args.work.name + ("_quick" if quick else ""))
    work.mkdir(parents=True, exist_ok=True)
    done = done_steps(out)
    print(f"seq_ucr: {', '.join(names)}; search --time {budget}; ablation {seeds} seeds x "
          f"{epochs} epochs; results {out}", flush=True)  # fmt: skip

    def step(name: str, kind: str, key: str, fn: Any) -> dict[str, Any]:
        row = done.get((name, kind, key))
        if row is None:
            row = {"data": name, "step": kind, "key": key, **fn()}
            record(out, row)
        return row

    verdicts = []
    for name in names:
        ref = step(name, "minirocket", f"seed={args.seed}", lambda n=name: minirocket(n, args.seed))
        print(f"{name}: MiniRocket test accuracy {100 * ref['test_accuracy']:.2f}% "
              f"({ref['fit_s']:.0f}s)", flush=True)  # fmt: skip
        if not args.skip_search:
            key = f"time={budget} seed={args.seed}"
            found = step(name, "search", key, lambda n=name: search(n, budget, work, args.seed))
            acc = found["test_accuracy"]
            diff = 100 * (acc - ref["test_accuracy"])
            verdicts.append(acc >= ref["test_accuracy"])
            print(
                f"{name}: search --time {budget}: test accuracy {100 * acc:.2f}% "
                f"({diff:+.2f} points vs MiniRocket; {found['wall_s']:.0f}s)",
                flush=True,
            )
        if not args.skip_ablation:
            key = f"seeds={seeds} epochs={epochs} quick={quick}"
            abl = step(
                name, "ablation", key, lambda n=name: ablation(n, work, seeds, epochs, quick)
            )
            print(f"{name}: norm x placement ({abl['wall_s']:.0f}s)\n{abl['tables']}", flush=True)
            for line in abl["sentences"]:
                print(f"- {line}")
    if verdicts:
        print(f"search >= MiniRocket on {sum(verdicts)} of {len(verdicts)} data sets "
              f"(goal: at least two of three)")  # fmt: skip


if __name__ == "__main__":
    main()
