"""How well a latency table predicts whole networks, per target runtime and space (issue 28).

For each target (torch eager folded, TorchScript, ONNX Runtime CPU; cuda when present) and
each space (NB201 at 3x32x32, the default macro space at 3x32x32), at `--threads` threads
and batch 1:

1. profile the space's table (`normnas.latency.profile`), timed: the profiling cost;
2. draw `--archs` random architectures that the table's fit did not use, time each whole
   network by the same protocol, and predict it: Spearman rank correlation and the share of
   predictions within ±10% of the measured value (goal: >= 0.95 and >= 90%), with the load
   while measuring (other processes' busy cores from /proc/stat, the 1-minute load average);
3. the latency cost per trial of a search: predicting (`LatencyPredictor.predict`) against
   measuring every trial as a search without --target does (`normnas.train.cost.
   measure_latency`: 10 warm-up + 50 timed calls, eager, on `--baseline-archs` archs);
4. whether the ranking by latency changes between eager PyTorch and ONNX Runtime: the
   Spearman between the two targets' MEASURED latencies over the same NB201 archs, and, over
   all 15,625 NB201 cells with their CIFAR-10 accuracies from the packaged table, the fastest
   cell (by each target's predictor) at each accuracy level.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/latency_predictor.py   # full, ~15 min
    .venv/bin/python benchmarks/latency_predictor.py --quick              # smoke test
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from normnas.latency import LatencyPredictor, Target
from normnas.latency.profile import QUICK_PROTOCOL, measure_network, profile, sample_archs
from normnas.latency.protocol import LoadWatch
from normnas.spaces import MacroSpace, NB201Space
from normnas.train.cost import measure_latency

SHAPE, CLASSES = (3, 32, 32), 10
ACCURACY_LEVELS = (85.0, 88.0, 90.0, 91.0, 92.0, 93.0)


def evaluate(space: Any, target: Target, args: argparse.Namespace) -> dict[str, Any]:
    protocol = QUICK_PROTOCOL if args.quick else None
    t0 = time.perf_counter()
    table = profile(space, target, SHAPE, CLASSES, fit_archs=args.fit_archs, quick=args.quick)
    profile_s = time.perf_counter() - t0
    predictor = LatencyPredictor(table, space)
    archs = sample_archs(space, args.archs, seed=1000, avoid=table.fit.get("archs", []))
    with LoadWatch(target.threads) as watch:
        t0 = time.perf_counter()
        measured = np.array(
            [measure_network(space, a, target, SHAPE, CLASSES, protocol) for a in archs]
        )
        measure_s = (time.perf_counter() - t0) / len(archs)
    t0 = time.perf_counter()
    predicted = np.array([predictor.predict(a) for a in archs])
    predict_s = (time.perf_counter() - t0) / len(archs)
    errors = np.abs(predicted - measured) / measured
    assert watch.load is not None
    return {
        "space": space.name, "target": target.name, "threads": target.threads,
        "entries": len(table.entries), "profile_s": round(profile_s, 1),
        "fit": {k: table.fit.get(k) for k in ("kind", "scale", "constant", "error_constant",
                                                "error_linear")},
        "archs": len(archs), "spearman": round(float(spearmanr(predicted, measured)[0]), 4),
        "within_10pct": round(float(np.mean(errors <= 0.10)), 3),
        "median_abs_error": round(float(np.median(errors)), 4),
        "load": watch.load.to_dict(), "profile_load": table.load,
        "predict_s_per_arch": predict_s, "measure_s_per_arch": measure_s,
        "measured_ms": measured.tolist(), "predicted_ms": predicted.tolist(),
        "arch_strings": [space.to_str(a) for a in archs], "predictor": predictor,
    }  # fmt: skip


def baseline_s_per_trial(space: Any, n: int) -> float:
    """Seconds per trial of the latency a search without --target measures (eager, 1 thread)."""
    archs = sample_archs(space, n, seed=2000)
    t0 = time.perf_counter()
    for a in archs:
        measure_latency(space.build(a, CLASSES, SHAPE[0]), SHAPE, batch_size=1, device="cpu")
    return (time.perf_counter() - t0) / n


def fastest_at_accuracy(results: dict[tuple[str, str], dict[str, Any]], targets: list[str]) -> None:
    """Over every NB201 cell: the fastest (by each target's predictor) at each accuracy."""
    from normnas.bench.table import NB201Table

    tab = NB201Table.load(None)
    acc = np.asarray(tab.test_acc_200ep, dtype=float)
    lat = {t: np.array([results[("nb201", t)]["predictor"].predict(a) for a in tab.archs])
           for t in targets}  # fmt: skip
    if "torch" in lat and "onnxruntime" in lat:
        rho = spearmanr(lat["torch"], lat["onnxruntime"])[0]
        print(f"  all {len(acc)} cells, predicted torch vs onnxruntime: Spearman {rho:.3f}")
    for level in ACCURACY_LEVELS:
        ok = np.flatnonzero(acc >= level)
        if not len(ok):
            continue
        picks = {t: ok[np.argmin(lat[t][ok])] for t in targets}
        line = f"  test acc >= {level:.0f}%:"
        for t, row in picks.items():
            others = ", ".join(f"{o} {lat[o][row]:.2f}" for o in targets if o != t)
            line += (f"  [{t}] {NB201Space().to_str(tab.archs[row])} "
                     f"{acc[row]:.1f}% {lat[t][row]:.2f} ms ({others})")  # fmt: skip
        same = len({int(r) for r in picks.values()}) == 1
        print(line + ("  same cell" if same else "  DIFFERENT cells"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: few archs, short protocol"
    )
    parser.add_argument("--archs", type=int, default=None, help="random archs per space/target")
    parser.add_argument("--fit-archs", type=int, default=None)
    parser.add_argument("--baseline-archs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--targets", default=None, help="comma list (default: all present)")
    parser.add_argument("--spaces", default="nb201,macro")
    parser.add_argument("--json", default=None, help="write every figure to this file")
    args = parser.parse_args()
    args.archs = args.archs or (8 if args.quick else 100)
    args.fit_archs = args.fit_archs or (3 if args.quick else 10)
    args.baseline_archs = args.baseline_archs or (3 if args.quick else 20)
    default = ["torch", "torchscript", "onnxruntime"] + (["cuda"] if torch.cuda.is_available()
                                                         else [])  # fmt: skip
    if args.quick:
        default = ["torch", "onnxruntime"]
    targets = args.targets.split(",") if args.targets else default
    spaces = {"nb201": NB201Space(), "macro": MacroSpace()}
    results: dict[tuple[str, str], dict[str, Any]] = {}
    t_all = time.perf_counter()
    print(f"latency predictor: {args.archs} archs per space and target, {args.threads} "
          f"thread(s), batch 1{' (QUICK: not the protocol)' if args.quick else ''}")  # fmt: skip
    print(
        "space   target       entries  profile s  Spearman  within10%  med err  "
        "others busy  load1  fit"
    )
    for name in args.spaces.split(","):
        for t in targets:
            r = evaluate(spaces[name], Target(t, args.threads), args)
            results[(name, t)] = r
            fit = r["fit"]
            print(f"{name:7} {t:12} {r['entries']:7} {r['profile_s']:10.1f} {r['spearman']:9.3f} "
                  f"{100 * r['within_10pct']:9.0f}% {100 * r['median_abs_error']:7.1f}% "
                  f"{r['load']['others_busy_cores']!s:>12} {r['load']['load_1min_end']!s:>6}  "
                  f"{fit['kind']} x{fit['scale']:.3f} {fit['constant']:+.3f} ms",
                  flush=True)  # fmt: skip
    print("\nlatency cost per trial (s): predicted vs measured whole on the target, and the "
          "eager timing a search without --target does")  # fmt: skip
    for name in args.spaces.split(","):
        base = baseline_s_per_trial(spaces[name], args.baseline_archs)
        for t in targets:
            r = results[(name, t)]
            print(f"  {name:6} {t:12} predict {r['predict_s_per_arch'] * 1e3:8.3f} ms/trial, "
                  f"measure on target {r['measure_s_per_arch']:.3f} s/trial, eager "
                  f"measure_latency {base:.3f} s/trial: "
                  f"x{base / r['predict_s_per_arch']:.0f}")  # fmt: skip
    if "nb201" in args.spaces.split(",") and {"torch", "onnxruntime"} <= set(targets):
        a, b = results[("nb201", "torch")], results[("nb201", "onnxruntime")]
        if a["arch_strings"] == b["arch_strings"]:
            rho = spearmanr(a["measured_ms"], b["measured_ms"])[0]
            ratio = np.median(np.array(a["measured_ms"]) / np.array(b["measured_ms"]))
            print(f"\nranking by latency, NB201, {len(a['measured_ms'])} archs measured on both: "
                  f"Spearman torch vs onnxruntime {rho:.3f}; torch/onnxruntime time median "
                  f"x{ratio:.2f}")  # fmt: skip
        print("fastest NB201 cell at equal accuracy (CIFAR-10 test acc, packaged table):")
        fastest_at_accuracy(results, [t for t in targets if t in ("torch", "onnxruntime")])
    print(f"\nwhole benchmark {time.perf_counter() - t_all:.0f} s")
    if args.json:
        out = {f"{k[0]}/{k[1]}": {kk: vv for kk, vv in v.items() if kk != "predictor"}
               for k, v in results.items()}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
