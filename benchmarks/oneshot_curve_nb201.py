"""When does weight sharing rank on NAS-Bench-201? τ against supernet training length, per BN
mode, and few-shot supernets at equal cost.

    python benchmarks/oneshot_curve_nb201.py [--protocol cpu|large|quick] [--gpu] [--quick]
        [--lengths 20,50,100,200] [--few-shot-edge 0 | --no-few-shot] [--time-cells 2]

The data, cells and recipe are those of `oneshot_nb201.py`'s protocol (10,000 real
CIFAR-10 images, 80/20 split, 16x16, NB201 C=16 N=1, SGD lr 0.1 cosine, batch 128, 100
cells evenly spaced in the table's rank). One SPOS supernet (BN affine) is trained 20, 50,
100 and 200 epochs in all, each length a warm restart from the previous one
(`normnas.oneshot.curve`: a cosine over each segment, optimizer momentum and RNG states
carried), so the curve costs one 200-epoch training and every point is an annealed
supernet; the 20-epoch point is the committed 20-epoch supernet again. After each length
the 100 cells are scored with BN modes running, batch, recalibrate-4 and recalibrate-16.

Few-shot (Zhao et al. 2021), at equal cost: at total length L (50, 100, 200) the one-shot
supernet of the previous length L' (20, 50, 100) is split on one edge into 5 sub-supernets,
each trained (L - L')/5 epochs (6, 10, 20). One epoch is one pass over the 8,000 training
images with one sampled path per step for either method, so both spend L epochs of image
passes; the few-shot branches are extra runs beside the one-shot curve (180 epochs).

Reference: the cells trained alone (30 anchor cells, 20 epochs each, same recipe) are
read from the committed `benchmarks/results/oneshot_nb201_cpu.jsonl`, not retrained;
`--time-cells K` retrains K of them here to time a cell on this machine (and check that
its accuracy reproduces). Costs: training + judging seconds over the seconds of training
all 100 cells alone, (a) measured now (K cells x 100/K), (b) from the committed records
(partly run under load), and (c) in image passes: a forward/backward of one image counts 1,
a forward-only pass (validation, recalibration) 1/3.

Results go to a JSON-lines file as they come (`--out`); a rerun skips what is done and
resumes a killed supernet training from its per-epoch checkpoint.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from oneshot_nb201 import PROTOCOLS as BASE_PROTOCOLS
from oneshot_nb201 import Log, cell_list, load_cifar, precision_at, train_config
from scipy.stats import kendalltau, spearmanr

from normnas.bench.table import NB201Table
from normnas.data.split import DataBundle
from normnas.oneshot import NB201Supernet, calibration_batches, evaluate_subnet
from normnas.oneshot.curve import length_checkpoint, train_lengths
from normnas.oneshot.few_shot import EDGE_NAMES, split_supernet, train_few_shot
from normnas.spaces import NB201Space
from normnas.train import fit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train-10k.npz"
COMMITTED = ROOT / "benchmarks" / "results" / "oneshot_nb201_cpu.jsonl"
CALIB_BATCH_SIZE = 128
N_SUBS = 5

PROTOCOLS: dict[str, dict[str, Any]] = {
    # ~45 min on 2 idle cores (see the report): the committed protocol's data and recipe
    "cpu": {**BASE_PROTOCOLS["cpu"], "lengths": (20, 50, 100, 200), "calib": (4, 16),
            "time_cells": 2},
    # the benchmark's network at 32x32 on a GPU (no committed cells trained alone for it)
    "large": {**BASE_PROTOCOLS["large"], "lengths": (20, 50, 100, 200), "calib": (4, 16),
              "time_cells": 2},
    # a minute: the whole pipeline on a tiny protocol
    "quick": {**BASE_PROTOCOLS["smoke"], "epochs": 2, "lengths": (5, 10), "calib": (4, 16),
              "time_cells": 1},
}  # fmt: skip
RECIPE_KEYS = ("image_size", "C", "N", "epochs", "batch_size", "lr", "n_train", "cells")


def modes(p: dict[str, Any]) -> list[tuple[str, str, int]]:
    out = [("running", "running", 0), ("batch", "batch", 0)]
    return out + [(f"recalibrate-{n}", "recalibrate", n) for n in p["calib"]]


def score_cells(
    p: dict[str, Any],
    data: DataBundle,
    log: Log,
    net: torch.nn.Module,
    method: str,
    epochs: int,
    cells: list[tuple[str, ...]],
) -> None:
    """Every cell under every BN mode; one record per (mode, cell), skipped when done."""
    space = NB201Space()
    for name, mode, n in modes(p):
        batches = (
            calibration_batches(data.train, n, CALIB_BATCH_SIZE, 0, p["device"]) if n else None
        )
        for arch in cells:
            key = f"score/{method}/e{epochs}/{name}/{space.to_str(arch)}"
            if log.done(key):
                continue
            start = time.perf_counter()
            score = evaluate_subnet(net, arch, data.valid, mode, batches or 1)  # type: ignore[arg-type]
            log.add({"key": key, "kind": "score", "method": method, "epochs": epochs,
                     "mode": name, "cell": space.to_str(arch), "score": score.accuracy,
                     "calib_images": sum(len(b) for b in batches or []),
                     "time_s": time.perf_counter() - start})  # fmt: skip


def few_shot_branch(
    p: dict[str, Any],
    data: DataBundle,
    log: Log,
    work: Path,
    oneshot: NB201Supernet,
    start: int,
    total: int,
    edge: int,
    cells: list[tuple[str, ...]],
) -> None:
    """Split the one-shot supernet of `start` epochs; 5 sub-supernets of (total-start)/5."""
    method = f"few-shot {EDGE_NAMES[edge]}"
    if log.done(f"scored/{method}/e{total}"):
        return
    per_sub = (total - start) // N_SUBS
    fewshot = split_supernet(oneshot, edge)
    results = train_few_shot(
        fewshot, data, train_config(p, per_sub), "uniform", work / f"fewshot-from{start}.pt"
    )
    if any(r.status != "ok" for r in results.values()):
        print(f"{method} from {start}: a sub-supernet did not finish; skipped")
        return
    key = f"train/{method}/e{total}"
    if not log.done(key):
        base = log.get(f"train/oneshot/e{start}")
        subs_s = sum(r.time_s for r in results.values())
        log.add({"key": key, "kind": "train", "method": method, "epochs": total,
                 "from_epochs": start, "sub_epochs": per_sub, "time_s": base["time_s"] + subs_s,
                 "train_loss": float(np.mean([r.history[-1].train_loss
                                              for r in results.values()])),
                 "n_train": len(data.train)})  # fmt: skip
        print(f"{method} at {total} epochs (one-shot {start} + 5 x {per_sub}): {subs_s:.0f} s")
    score_cells(p, data, log, fewshot, method, total, cells)
    log.add({"key": f"scored/{method}/e{total}", "kind": "mark"})


def time_cells(
    p: dict[str, Any], data: DataBundle, log: Log, anchors: dict[str, dict[str, Any]]
) -> None:
    """Retrain `time_cells` of the committed anchor cells here (timing on this machine)."""
    space = NB201Space()
    names = sorted(anchors) or [space.to_str(space.sample(np.random.default_rng(0)))]
    picks = np.unique(np.linspace(0, len(names) - 1, p["time_cells"]).round().astype(int))
    for i in picks:
        cell = names[i]
        key = f"alone/{cell}"
        if log.done(key):
            continue
        torch.manual_seed(0)
        model = space.build(space.from_str(cell), 10, 3, C=p["C"], N=p["N"])
        start = time.perf_counter()
        result = fit(model, data, train_config(p))
        log.add({"key": key, "kind": "alone", "cell": cell, "score": result.final_valid_acc,
                 "time_s": time.perf_counter() - start,
                 "committed_score": anchors.get(cell, {}).get("score")})  # fmt: skip
        print(f"trained alone {cell}: acc {result.final_valid_acc:.3f} "
              f"(committed {anchors.get(cell, {}).get('score')}), "
              f"{time.perf_counter() - start:.0f} s")  # fmt: skip


def committed_anchors(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The committed cells trained alone, when their protocol is this one's recipe."""
    if not COMMITTED.exists():
        return {}
    old = Log(COMMITTED)
    proto = old.get("protocol") if old.done("protocol") else {}
    if any(proto.get(k) != p.get(k) for k in RECIPE_KEYS):
        return {}
    return {r["cell"]: r for r in old.records if r["key"].startswith("anchor/")}


# -- the report -------------------------------------------------------------------------------
def tau(a: np.ndarray, b: np.ndarray) -> float:
    return float(kendalltau(a, b).statistic) if len(a) > 2 else float("nan")


def summary(
    p: dict[str, Any], log: Log, table: NB201Table, anchors: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per (method, epochs, mode) with its τ, ρ, losses and costs."""
    space = NB201Space()
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in log.records:
        if r["kind"] == "score":
            groups.setdefault((r["method"], r["epochs"], r["mode"]), []).append(r)
    alone = [r for r in log.records if r["kind"] == "alone"]
    n_cells = p["cells"]
    alone_now = np.mean([r["time_s"] for r in alone]) * n_cells if alone else float("nan")
    alone_then = (
        np.mean([r["time_s"] for r in anchors.values()]) * n_cells if anchors else float("nan")
    )
    train = {(r["method"], r["epochs"]): r for r in log.records if r["kind"] == "train"}
    n_train = next((r["n_train"] for r in train.values()), 0)
    alone_passes = n_cells * p["epochs"] * n_train
    rows = []
    for (method, epochs, mode), recs in groups.items():
        truth = np.array([table.test_acc_200ep[table.row(space.from_str(r["cell"]))] for r in recs])
        score = np.array([r["score"] for r in recs], dtype=float)
        sub = [i for i, r in enumerate(recs) if r["cell"] in anchors]
        own = np.array([anchors[recs[i]["cell"]]["score"] for i in sub])
        t = train.get((method, epochs), {})
        judging = sum(r["time_s"] for r in recs)
        training = t.get("time_s", float("nan"))
        n_valid = p.get("n_valid") or 0
        eval_passes = sum(n_valid + r.get("calib_images", 0) for r in recs) / 3
        passes = epochs * n_train + eval_passes
        rows.append({
            "method": method, "epochs": epochs, "mode": mode, "cells": len(recs),
            "tau": tau(truth, score), "rho": float(spearmanr(truth, score).statistic),
            "top10": precision_at(truth, score),
            "tau_anchor_cells": tau(truth[sub], score[sub]),
            "tau_vs_alone": tau(own, score[sub]),
            "train_loss": t.get("train_loss", float("nan")),
            "training_s": training, "judging_s": judging,
            "cost_now": (training + judging) / alone_now,
            "cost_committed": (training + judging) / alone_then,
            "cost_passes": passes / alone_passes if alone_passes else float("nan"),
        })  # fmt: skip
    order = {name: i for i, (name, _, _) in enumerate(modes(p))}
    rows.sort(key=lambda r: (r["method"] != "oneshot", r["method"], r["epochs"], order[r["mode"]]))
    return rows


def print_report(
    rows: list[dict[str, Any]], p: dict[str, Any], log: Log, anchors: dict[str, Any]
) -> None:
    alone = [r for r in log.records if r["kind"] == "alone"]
    print()
    print("| method | epochs | BN mode | τ (cells) | ρ | top-10 | τ on the anchor cells "
          "| τ vs trained alone | train loss | training s | judging s "
          "| cost / 100 cells alone: s now | s committed | image passes |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['epochs']} | {r['mode']} | {r['tau']:.3f} | {r['rho']:.3f} "
              f"| {r['top10']:.2f} | {r['tau_anchor_cells']:.3f} | {r['tau_vs_alone']:.3f} "
              f"| {r['train_loss']:.3f} | {r['training_s']:.0f} | {r['judging_s']:.0f} "
              f"| {r['cost_now']:.3f} | {r['cost_committed']:.3f} "
              f"| {r['cost_passes']:.3f} |")  # fmt: skip
    if anchors:
        table = NB201Table.load()
        space = NB201Space()
        truth = [table.test_acc_200ep[table.row(space.from_str(c))] for c in anchors]
        own = [a["score"] for a in anchors.values()]
        print(f"| cells trained alone ({p['epochs']} epochs, committed) | — | — | — | — | — "
              f"| {tau(np.array(truth), np.array(own)):.3f} | 1.000 | — | — | — | 1.000 | 1.000 "
              f"| 1.000 |")  # fmt: skip
    if alone:
        per = np.mean([r["time_s"] for r in alone])
        print(
            f"\none cell trained alone here: {per:.0f} s (mean of {len(alone)}; committed "
            f"mean {np.mean([a['time_s'] for a in anchors.values()]) if anchors else 0:.0f} s)"
        )
        for r in alone:
            print(f"  {r['cell']}: acc {r['score']:.4f} here, {r['committed_score']} committed")
    for field, what in (("tau", "Kendall τ"), ("rho", "Spearman ρ")):
        print(f"\n{what} over the {p['cells']} cells against total supernet epochs (columns)")
        print(compact(rows, field))
    print()
    print(text_plot(rows, "tau", "Kendall τ over the cells, against total supernet epochs"))


def compact(rows: list[dict[str, Any]], field: str) -> str:
    """A (method, mode) x epochs table of one field."""
    xs = sorted({r["epochs"] for r in rows})
    labels = list(dict.fromkeys((r["method"], r["mode"]) for r in rows))
    value = {(r["method"], r["mode"], r["epochs"]): r[field] for r in rows}
    out = ["| method | BN mode | " + " | ".join(f"{x} ep" for x in xs) + " |"]
    out.append("|---|---|" + "---|" * len(xs))
    for method, mode in labels:
        cells = [value.get((method, mode, x)) for x in xs]
        shown = " | ".join("—" if v is None else f"{v:.3f}" for v in cells)
        out.append(f"| {method} | {mode} | {shown} |")
    return "\n".join(out)


def text_plot(rows: list[dict[str, Any]], field: str, title: str, height: int = 14) -> str:
    """Series per (method, mode) as letters on an epochs (columns) x value (rows) grid."""
    series: dict[str, dict[int, float]] = {}
    for r in rows:
        label = r["mode"] if r["method"] == "oneshot" else f"{r['method']} {r['mode']}"
        series.setdefault(label, {})[r["epochs"]] = r[field]
    if not series:
        return "(nothing scored yet)"
    # one-shot modes in capitals/digits, few-shot ones in lower case
    fixed = {"running": "R", "batch": "B", "recalibrate-1": "1", "recalibrate-4": "4",
             "recalibrate-16": "6"}  # fmt: skip
    lower = {"running": "r", "batch": "b", "recalibrate-1": "o", "recalibrate-4": "f",
             "recalibrate-16": "s"}  # fmt: skip
    marks = {
        label: fixed.get(label) or lower.get(label.rsplit(" ", 1)[-1], "?") for label in series
    }
    xs = sorted({e for s in series.values() for e in s})
    values = [v for s in series.values() for v in s.values() if np.isfinite(v)]
    lo, hi = min(0.0, min(values)), max(values)
    step = (hi - lo) / (height - 1) or 1.0
    width = 12
    lines = [title]
    for row in range(height - 1, -1, -1):
        level = lo + row * step
        cells = []
        for x in xs:
            here = "".join(
                marks[label]
                for label, s in series.items()
                if x in s and np.isfinite(s[x]) and round((s[x] - lo) / step) == row
            )
            cells.append(here.center(width))
        lines.append(f"{level:6.3f} |" + "".join(cells))
    lines.append("       +" + "-" * (width * len(xs)))
    lines.append("        " + "".join(f"{x} ep".center(width) for x in xs))
    lines.append("  " + "   ".join(f"{m} {label}" for label, m in marks.items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="cpu")
    parser.add_argument("--quick", action="store_true", help="the tiny protocol (a minute)")
    parser.add_argument("--gpu", action="store_true", help="the large protocol on CUDA")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="JSON lines (default by protocol)")
    parser.add_argument("--lengths", type=str, default=None, help="e.g. 20,50,100,200")
    parser.add_argument("--few-shot-edge", type=int, default=0, help="edge index 0-5 to split")
    parser.add_argument("--no-few-shot", action="store_true")
    parser.add_argument("--time-cells", type=int, default=None, help="cells retrained here")
    args = parser.parse_args()
    name = "quick" if args.quick else "large" if args.gpu else args.protocol
    p = dict(PROTOCOLS[name])
    if args.lengths:
        p["lengths"] = tuple(int(x) for x in args.lengths.split(","))
    if args.time_cells is not None:
        p["time_cells"] = args.time_cells
    p["few_shot_edge"] = None if args.no_few_shot else args.few_shot_edge
    if not torch.cuda.is_available():
        p["device"] = "cpu"
    out = args.out or ROOT / "benchmarks" / "results" / f"oneshot_curve_nb201_{name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.with_suffix(".work")
    work.mkdir(exist_ok=True)
    log = Log(out)
    protocol = {"name": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}}
    if not log.done("protocol"):
        log.add({"key": "protocol", "kind": "protocol", **protocol})
    elif {k: v for k, v in log.get("protocol").items() if k not in ("key", "kind")} != protocol:
        raise SystemExit(f"{out}: written by another protocol; pass another --out")
    data = load_cifar(args.data, p["image_size"], p["n_train"])
    p["n_valid"] = len(data.valid)
    table = NB201Table.load()
    cells = cell_list(table, p["cells"])
    anchors = committed_anchors(p)
    print(f"protocol {name}: {json.dumps(protocol)}")
    print(f"{data.describe()}; {len(cells)} cells; {len(anchors)} committed cells trained alone; "
          f"results -> {out}")  # fmt: skip

    lengths = list(p["lengths"])
    edge = p["few_shot_edge"]
    nexts = dict(itertools.pairwise(lengths))

    def all_done(length: int) -> bool:
        done = log.done(f"scored/oneshot/e{length}")
        nxt = nexts.get(length)
        if edge is not None and nxt is not None and (nxt - length) % N_SUBS == 0:
            done = done and log.done(f"scored/few-shot {EDGE_NAMES[edge]}/e{nxt}")
        return done

    if not all(all_done(n) for n in lengths):
        torch.manual_seed(0)
        net = NB201Supernet(NB201Space(), 10, 3, C=p["C"], N=p["N"], affine=True)
        stem = work / "supernet"
        for point in train_lengths(net, data, train_config(p), lengths, stem, "uniform"):
            length = point.epochs
            key = f"train/oneshot/e{length}"
            if not log.done(key):
                log.add({"key": key, "kind": "train", "method": "oneshot", "epochs": length,
                         "time_s": point.time_s, "train_loss": point.train_loss,
                         "n_train": len(data.train)})  # fmt: skip
                print(f"one-shot at {length} epochs: {point.time_s:.0f} s in all, "
                      f"train loss {point.train_loss:.3f}")  # fmt: skip
            if not log.done(f"scored/oneshot/e{length}"):
                score_cells(p, data, log, net, "oneshot", length, cells)
                log.add({"key": f"scored/oneshot/e{length}", "kind": "mark"})
            nxt = nexts.get(length)
            if edge is not None and nxt is not None and (nxt - length) % N_SUBS == 0:
                few_shot_branch(p, data, log, work, net, length, nxt, edge, cells)
        if not length_checkpoint(stem, lengths[-1]).exists():
            raise SystemExit("the supernet training did not finish (diverged?)")
    time_cells(p, data, log, anchors)
    print_report(summary(p, log, table, anchors), p, log, anchors)


if __name__ == "__main__":
    main()
