"""The user's case, end to end on real images: a NAS-Bench-201 search on CIFAR-10 with a time
budget on this machine, then the found cell looked up in the CIFAR-10 table.

    .venv/bin/python benchmarks/cascade_cifar_nb201.py --time 1h --seed 0 \
        [--data npz:../shared/data/cifar10/train-10k.npz] [--epochs 3] [--cascade auto]

It runs `normnas search --space nb201 --data DATA --time T --epochs E --seed S` (with no
judge named, so the cascade is chosen by `--cascade auto`; `--cascade SPEC`,
`--evaluator proxy` or `--strategy evolution` run the comparisons) in a folder of its own
under `benchmarks/results/cascade_cifar/`, and appends one JSON line to
`benchmarks/results/cascade_cifar_nb201.jsonl`: the command, the cascade it chose, the
candidates each stage judged, the found cell, its `test_acc_200ep` in the table (the search
never reads the table), the wall time and the load average before and after.
`--gpu` adds `--device cuda` (the GPU protocol: the same command on a GPU machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "results" / "cascade_cifar"
LOG = HERE / "results" / "cascade_cifar_nb201.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time", default="1h")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default="npz:../shared/data/cifar10/train-10k.npz")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cascade", default=None, help="a spec; default: none named (auto)")
    parser.add_argument("--evaluator", default=None)
    parser.add_argument("--strategy", default=None)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="pin the search to N threads (two 1-thread seeds share the 2 cores side by side)",
    )  # fmt: skip
    args = parser.parse_args()
    name = f"{args.cascade or args.evaluator or args.strategy or 'auto'}-{args.time}-s{args.seed}"
    if args.threads:
        name += f"-t{args.threads}"
    name = name.replace(":", "_").replace(",", "+")
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data.startswith("npz:") and not Path(data[4:]).is_absolute():
        data = "npz:" + str((Path.cwd() / data[4:]).resolve())
    cmd = [
        str(Path(sys.executable).parent / "normnas"), "search", "--space", "nb201",
        "--data", data, "--time", args.time, "--epochs", str(args.epochs),
        "--seed", str(args.seed), "--study", "s", "--no-progress",
    ]  # fmt: skip
    for flag, value in (
        ("--cascade", args.cascade), ("--evaluator", args.evaluator),
        ("--strategy", args.strategy),
    ):  # fmt: skip
        if value:
            cmd += [flag, value]
    if args.gpu:
        cmd += ["--device", "cuda"]
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    env = dict(os.environ)
    if args.threads:
        env.update(NORMNAS_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, check=False, env=env)
    wall = time.monotonic() - t0
    (folder / "output.txt").write_text(done.stdout + done.stderr)
    row = {"command": " ".join(cmd), "rc": done.returncode, "wall_s": round(wall, 1),
           "load_before": load0, "load_after": os.getloadavg()[0],
           "threads": args.threads or os.cpu_count()}  # fmt: skip
    row.update(_found(folder))
    with LOG.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


def _found(folder: Path) -> dict[str, object]:
    """The study's pick, its cascade and funnel, and the pick's row of the CIFAR-10 table."""
    import optuna

    from normnas.bench.table import NB201Table, TableEvaluator
    from normnas.search import records as rec
    from normnas.search.study import open_storage, study_meta
    from normnas.spaces import NB201Space

    study = optuna.load_study(study_name="s", storage=open_storage(f"sqlite:///{folder}/normnas.db"))
    front = rec.best_records(study)
    out: dict[str, object] = {
        "cascade": (study_meta(study).get("config") or {}).get("cascade"),
        "proxies": (study_meta(study).get("config") or {}).get("proxies"),
        "funnel": study.user_attrs.get("cascade"),
        "trained": sum(1 for r in rec.records(study) if r.evaluated),
        "final_note": study.user_attrs.get("final_note"),
        "test_accuracy_here": study.user_attrs.get("test_accuracy"),
    }
    if front:
        space = NB201Space()
        arch = space.from_str(str(front[0].arch))
        table = NB201Table.load(None)
        row = TableEvaluator(table, space).resolve(arch)
        out["arch"] = front[0].arch
        out["valid_acc_here"] = front[0].values[0] if front[0].values else None
        if row is not None:
            out["test_acc_200ep"] = float(table.test_acc_200ep[row])
    return out


if __name__ == "__main__":
    main()
