"""DARTS, GDAS and DrNAS on NAS-Bench-201, searched on real CIFAR-10 images, read from the table.

    python benchmarks/gradient_nb201.py [--protocol cpu|gpu|smoke] [--methods ...] [--seeds 0 1 2]

Each method (and DARTS with DARTS-PT selection) searches the NB201 cell with its relaxed
supernet on the 10,000 real CIFAR-10 images of ../shared/data/cifar10/, split as
NAS-Bench-201 splits CIFAR's training set for search: half trains the network weights,
the other half the architecture weights (fixed stratified split, seed 0). The derived
cell's quality is then read from the shipped NAS-Bench-201 table (`test_acc_200ep`: the
cell trained 200 epochs on the full CIFAR-10 by the benchmark's authors), so no retraining
is needed. Printed per method and seed: the derived cell, its test_acc_200ep, its share of
skip connections, the final entropy of the architecture weights and the search time.

Every finished run is appended to --out as a JSON line; each run checkpoints per epoch in
--work, so a killed benchmark resumes inside the run it was in. `--report-only` prints the
table of what --out holds.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oneshot_nb201 import load_cifar

from normnas.bench.table import NB201Table
from normnas.data.split import DataBundle
from normnas.oneshot.gradient import (
    GradientEpoch,
    GradientOptions,
    GradientResult,
    current_weights,
    search_gradient,
)
from normnas.oneshot.gradient_select import select
from normnas.oneshot.relaxed_nb201 import RelaxedNB201
from normnas.oneshot.training import load_checkpoint, save_checkpoint
from normnas.spaces import NB201Space

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train-10k.npz"

PROTOCOLS: dict[str, dict[str, Any]] = {
    # 2 CPU cores, one process per chain of runs, 1 thread each: 16x16 images (2x2
    # mean-pooled), a search network of 1 cell per stage with 8 channels, 5k + 5k images,
    # 50 search epochs for every method, batch 64. Idle, an epoch takes DARTS about 15 s and
    # GDAS about 6 s, so the 12 runs (DARTS-PT reuses DARTS's supernet) take about 50 min
    # on 2 processes; this session's shared cores made it several times longer
    "cpu": dict(image_size=16, C=8, N=1, epochs=50, batch_size=64, n=None, device="cpu"),
    # NAS-Bench-201's search settings (C=16, N=5, 32x32, batch 64, 50 epochs; GDAS 240, as
    # its configs/nas-benchmark/algos/GDAS.config), for a GPU
    "gpu": dict(
        image_size=32, C=16, N=5, epochs=50, batch_size=64, n=None, device="cuda",
        epochs_by_method={"gdas": 240},
    ),
    "smoke": dict(image_size=16, C=4, N=1, epochs=2, batch_size=64, n=512, device="cpu"),
}
# method name in the table -> GradientOptions fields
RUNS: dict[str, dict[str, Any]] = {
    "darts": dict(method="darts", order=1),
    "darts-pt": dict(method="darts", order=1, selection="pt"),
    "gdas": dict(method="gdas"),
    "drnas": dict(method="drnas"),
}


def load_search_data(path: Path, image_size: int, n: int | None) -> DataBundle:
    """Half of the 10k real images train the weights (augmented), half the architecture."""
    return load_cifar(path, image_size, n, valid_fraction=0.5)


def done_runs(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill: that run is redone
            if "key" in row:
                out[row["key"]] = row
    return out


def one_run(
    name: str, seed: int, p: dict[str, Any], data: DataBundle, table: NB201Table, work: Path
) -> dict[str, Any]:
    space = NB201Space()
    epochs = p.get("epochs_by_method", {}).get(RUNS[name]["method"], p["epochs"])
    options = GradientOptions(
        **RUNS[name], epochs=epochs, batch_size=p["batch_size"], seed=seed, device=p["device"]
    )
    torch.manual_seed(seed)
    relaxed = RelaxedNB201(space, 10, 3, C=p["C"], N=p["N"]).to(p["device"])
    ckpt = work / f"{name}-seed{seed}.pt"

    def show(e: Any) -> None:
        print(f"  {name} seed {seed} epoch {e.epoch + 1}/{epochs}: valid {e.valid_acc:.3f} "
              f"entropy {e.entropy:.3f} {e.seconds:.0f}s {e.derived}", flush=True)  # fmt: skip

    t0 = time.perf_counter()
    if name == "darts-pt":
        result = pt_from_darts(relaxed, data, options, work / f"darts-seed{seed}.pt", ckpt)
    else:
        result = search_gradient(relaxed, data, options, checkpoint=ckpt, on_epoch=show)
    arch = space.canonical(result.arch)
    row = table.row(arch)
    return {
        "arch": space.to_str(result.arch),
        "test_acc_200ep": None if row is None else float(table.test_acc_200ep[row]),
        "skip_share": sum(op == "skip_connect" for op in result.arch) / len(result.arch),
        "none_share": sum(op == "none" for op in result.arch) / len(result.arch),
        "entropy": result.history[-1].entropy if result.history else None,
        "search_s": result.seconds,
        "this_process_s": time.perf_counter() - t0,
        "final_valid_acc": result.history[-1].valid_acc if result.history else None,
        "weights": result.history[-1].weights if result.history else None,
    }


def pt_from_darts(
    relaxed: RelaxedNB201, data: DataBundle, options: GradientOptions, darts: Path, ckpt: Path
) -> GradientResult:
    """DARTS-PT's selection on the supernet that the DARTS run of the same seed trained:
    both train the same way (DARTS-PT changes only how the cell is derived), so the 50
    epochs run once. Run after `darts`; the checkpoint of DARTS stays as it was."""
    if not darts.exists():
        sys.exit(f"error: {darts}: run darts for this seed before darts-pt")
    state = load_checkpoint(darts)
    if state.get("result") is None:
        sys.exit(f"error: {darts}: the darts run of this seed has not finished")
    relaxed.load_state_dict(state["network"])
    alphas = [a.detach().clone() for a in state["alphas"]]
    w_opt = torch.optim.SGD(relaxed.parameters(), lr=options.w_lr,
                            momentum=options.w_momentum, weight_decay=options.w_wd)  # fmt: skip
    w_opt.load_state_dict(state["w_opt"])
    history = [GradientEpoch(**h) for h in state["history"]]
    t0 = time.perf_counter()
    choice, selection = select(relaxed, data, current_weights("darts", alphas), options, w_opt)
    seconds = float(state["seconds"]) + time.perf_counter() - t0
    arch = relaxed.arch_of(choice)
    save_checkpoint(ckpt, {"choice": choice, "selection": selection, "seconds": seconds})
    return GradientResult(arch, relaxed.space.to_str(arch), history, seconds, selection)


def report(rows: dict[str, dict[str, Any]], table: NB201Table) -> list[str]:
    best = float(np.max(table.test_acc_200ep))
    lines = [
        f"NAS-Bench-201 CIFAR-10 optimum: {best:.2f}",
        f"{'method':<10} {'seed':>4} {'test_acc_200ep':>14} {'skip':>5} {'entropy':>7} "
        f"{'search_s':>8}  cell",
    ]
    by_method: dict[str, list[float]] = {}
    for r in sorted(rows.values(), key=lambda r: (list(RUNS).index(r["method"]), r["seed"])):
        acc = r["test_acc_200ep"]
        by_method.setdefault(r["method"], []).append(acc if acc is not None else float("nan"))
        lines.append(
            f"{r['method']:<10} {r['seed']:>4} {acc:>14.2f} {r['skip_share']:>5.2f} "
            f"{r['entropy']:>7.3f} {r['search_s']:>8.0f}  {r['arch']}"
        )
    for m, accs in by_method.items():
        a = np.array(accs)
        lines.append(f"{m:<10} mean {a.mean():.2f} ± {a.std():.2f} (min {a.min():.2f}, n={len(a)})")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", choices=sorted(PROTOCOLS), default="cpu")
    ap.add_argument("--methods", nargs="+", choices=list(RUNS), default=list(RUNS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=None, help="per-run checkpoints")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    p = dict(PROTOCOLS[args.protocol])
    if args.epochs is not None:
        p["epochs"] = args.epochs
        p.pop("epochs_by_method", None)
    out = args.out or ROOT / "benchmarks" / "results" / f"gradient_nb201_{args.protocol}.jsonl"
    work = args.work or out.with_suffix(".work")
    table = NB201Table.load()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = done_runs(out)
    if not args.report_only:
        if not args.data.exists():
            sys.exit(f"error: {args.data}: the CIFAR-10 images are not there (--data)")
        work.mkdir(parents=True, exist_ok=True)
        print(f"protocol {args.protocol}: {p}; torch threads {torch.get_num_threads()}; "
              f"{platform.processor() or platform.machine()}", flush=True)  # fmt: skip
        data = load_search_data(args.data, p["image_size"], p["n"])
        for seed in args.seeds:
            for name in args.methods:
                epochs = p.get("epochs_by_method", {}).get(RUNS[name]["method"], p["epochs"])
                key = f"{args.protocol}/{name}/seed{seed}/epochs{epochs}"
                if key in rows:
                    continue
                rec = {"key": key, "method": name, "seed": seed, "protocol": p,
                       **one_run(name, seed, p, data, table, work)}  # fmt: skip
                with open(out, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                rows[key] = rec
                print(f"{name} seed {seed}: {rec['arch']} -> {rec['test_acc_200ep']}", flush=True)
    print("\n".join(report(rows, table)))


if __name__ == "__main__":
    main()
