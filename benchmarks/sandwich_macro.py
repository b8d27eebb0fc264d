"""Sandwich against uniform sampling for the macro supernet, at equal cost, on real CIFAR-10.

    python benchmarks/sandwich_macro.py [--protocol cpu|large|quick] [--gpu] [--quick]

30 architectures of a small macro space (depth, width, kernel, norm, its placement,
activation, residual, dropout all searched) drawn uniformly (seed 0, distinct) are each
trained alone for E epochs (SGD Nesterov lr 0.1 cosine, batch 128, weight decay 5e-4, the
10,000 real CIFAR-10 images of ../shared/data/cifar10/ at 16x16, split 8,000/2,000 as
`oneshot_nb201.py`); their validation accuracies are cached in
`benchmarks/results/sandwich_macro_alone_<protocol>.jsonl` (trained once, a rerun reads
them). Two supernets (BN affine, same recipe) then judge the 30:

- sandwich: E epochs, each step the largest, the smallest and two random sub-networks,
  gradients summed, one step (`oneshot: {sampling: sandwich}`): 4 sub-network
  forward/backward passes per step;
- uniform (SPOS): 4E epochs of one random sub-network per step.

Equal cost is counted in sub-network forward/backward passes over the same images (4 per
batch for sandwich, 1 for uniform over 4x the batches); the measured seconds are printed
too (the largest sub-network costs more than an average one, the smallest less). Each
supernet scores the 30 with BN modes running, batch and recalibrate-16; printed: Kendall
τ and Spearman ρ against the accuracies trained alone, top-5 precision, the supernet's
last training loss and seconds, and the same against training the 30 alone.

Protocol cpu: about 20-25 min on 2 idle cores (the 30 alone are ~2/3 of it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from oneshot_nb201 import Log, load_cifar, precision_at
from scipy.stats import kendalltau, spearmanr

from normnas.data.split import DataBundle
from normnas.oneshot import calibration_batches, evaluate_subnet, train_supernet
from normnas.oneshot.supernet_macro import MacroSupernet
from normnas.spaces import MacroSpace
from normnas.spaces._macro_model import MacroArch
from normnas.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train-10k.npz"
CALIB_BATCH_SIZE = 128
PASSES_PER_STEP = 4  # sandwich: largest + smallest + 2 random

SMALL_SPACE: dict[str, Any] = {
    "stages": [
        {"widths": [8, 16], "min_blocks": 1, "max_blocks": 2, "stride": 1},
        {"widths": [16, 32], "min_blocks": 1, "max_blocks": 2, "stride": 2},
        {"widths": [32, 48], "min_blocks": 1, "max_blocks": 2, "stride": 2},
    ],
    "kernels": [3, 5],
    "norms": ["batchnorm", "groupnorm", "none"],
    "dropout": [0.0, 0.2],
    "stem_width": 8,
}
TINY_SPACE: dict[str, Any] = {
    "stages": [
        {"widths": [4, 8], "min_blocks": 1, "max_blocks": 2, "stride": 1},
        {"widths": [8, 12], "min_blocks": 1, "max_blocks": 2, "stride": 2},
    ],
    "kernels": [1, 3],
    "norms": ["batchnorm", "none"],
    "stem_width": 4,
}
PROTOCOLS: dict[str, dict[str, Any]] = {
    "cpu": dict(image_size=16, space=SMALL_SPACE, archs=30, epochs=6, batch_size=128, lr=0.1,
                n_train=None, device="cpu", calib=16),
    # the default macro space at 32x32 on a GPU
    "large": dict(image_size=32, space=None, archs=30, epochs=30, batch_size=256, lr=0.1,
                  n_train=None, device="cuda", calib=16),
    "quick": dict(image_size=16, space=TINY_SPACE, archs=8, epochs=1, batch_size=64, lr=0.1,
                  n_train=640, device="cpu", calib=4),
}  # fmt: skip


def make_space(p: dict[str, Any]) -> MacroSpace:
    return MacroSpace.from_dict(p["space"]) if p["space"] is not None else MacroSpace()


def recipe(p: dict[str, Any], epochs: int, grad_clip: float | None = None) -> TrainConfig:
    return TrainConfig(
        epochs=epochs, batch_size=p["batch_size"], lr=p["lr"], seed=0, device=p["device"],
        schedule="cosine", weight_decay=5e-4, channels_last=p["device"] == "cuda",
        grad_clip=grad_clip,
    )  # fmt: skip


# Both supernets clip the gradient norm at this: the sandwich's summed gradients of four
# paths (the largest with no norm among its choices) diverged at lr 0.1 in its first epoch
# without it (measured); the networks trained alone keep the plain recipe.
SUPERNET_GRAD_CLIP = 5.0


def arch_list(space: MacroSpace, count: int) -> list[MacroArch]:
    """`count` distinct (canonical) architectures drawn uniformly, seed 0."""
    rng = np.random.default_rng(0)
    seen: dict[MacroArch, MacroArch] = {}
    while len(seen) < count:
        arch = space.sample(rng)
        seen.setdefault(space.canonical(arch), arch)
    return list(seen.values())


def train_alone(
    p: dict[str, Any], data: DataBundle, log: Log, space: MacroSpace, archs: list[MacroArch]
) -> None:
    for i, arch in enumerate(archs):
        key = f"alone/{space.to_str(arch)}"
        if log.done(key):
            continue
        torch.manual_seed(0)
        model = space.build(arch, 10, 3)
        start = time.perf_counter()
        result = fit(model, data, recipe(p, p["epochs"]))
        log.add({"key": key, "kind": "alone", "arch": space.to_str(arch),
                 "score": result.final_valid_acc, "status": result.status,
                 "time_s": time.perf_counter() - start,
                 "params": sum(q.numel() for q in model.parameters())})  # fmt: skip
        print(f"alone {i + 1}/{len(archs)}: acc {result.final_valid_acc:.3f}, "
              f"{time.perf_counter() - start:.0f} s  {space.to_str(arch)}")  # fmt: skip


def judge(
    p: dict[str, Any],
    data: DataBundle,
    log: Log,
    work: Path,
    space: MacroSpace,
    archs: list[MacroArch],
    sampling: str,
) -> None:
    """Train the supernet of `sampling` at equal passes, then score the archs."""
    if log.done(f"scored/{sampling}"):
        return
    epochs = p["epochs"] * (1 if sampling == "sandwich" else PASSES_PER_STEP)
    torch.manual_seed(0)
    net = MacroSupernet(space, 10, 3, affine=True)
    result = train_supernet(
        net,
        data,
        recipe(p, epochs, SUPERNET_GRAD_CLIP),
        sampling,
        work / f"supernet-{sampling}.pt",  # type: ignore[arg-type]
    )
    if result.status != "ok":
        raise SystemExit(f"{sampling} supernet: {result.status} ({result.error})")
    key = f"train/{sampling}"
    if not log.done(key):
        steps = len(result.history) and epochs * data.train.num_batches(p["batch_size"])
        passes = PASSES_PER_STEP if sampling == "sandwich" else 1
        log.add({"key": key, "kind": "train", "sampling": sampling, "epochs": epochs,
                 "time_s": result.time_s, "train_loss": result.history[-1].train_loss,
                 "steps": steps, "subnet_passes": steps * passes})  # fmt: skip
        print(f"{sampling} supernet: {epochs} epochs, {result.time_s:.0f} s, "
              f"train loss {result.history[-1].train_loss:.3f}")  # fmt: skip
    net = net.to(p["device"])
    batches = calibration_batches(data.train, p["calib"], CALIB_BATCH_SIZE, 0, p["device"])
    for mode, name in (("running", "running"), ("batch", "batch"),
                       ("recalibrate", f"recalibrate-{p['calib']}")):  # fmt: skip
        for arch in archs:
            key = f"score/{sampling}/{name}/{space.to_str(arch)}"
            if log.done(key):
                continue
            start = time.perf_counter()
            score = evaluate_subnet(net, arch, data.valid, mode, batches)  # type: ignore[arg-type]
            log.add({"key": key, "kind": "score", "sampling": sampling, "mode": name,
                     "arch": space.to_str(arch), "score": score.accuracy,
                     "time_s": time.perf_counter() - start})  # fmt: skip
    log.add({"key": f"scored/{sampling}", "kind": "mark"})


def report(log: Log, alone_log: Log, n_archs: int) -> None:
    alone = {r["arch"]: r for r in alone_log.records if r["kind"] == "alone"}
    alone_s = sum(r["time_s"] for r in alone.values())
    train = {r["sampling"]: r for r in log.records if r["kind"] == "train"}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in log.records:
        if r["kind"] == "score":
            groups.setdefault((r["sampling"], r["mode"]), []).append(r)
    print()
    print(
        "| supernet | epochs | sub-network passes | BN mode | Kendall τ | Spearman ρ "
        "| top-5 | train loss | training s | judging s | total / training the archs alone |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for (sampling, mode), recs in groups.items():
        recs = [r for r in recs if r["arch"] in alone]
        truth = np.array([alone[r["arch"]]["score"] for r in recs])
        score = np.array([r["score"] for r in recs])
        t = train[sampling]
        judging = sum(r["time_s"] for r in recs)
        print(f"| {sampling} | {t['epochs']} | {t['subnet_passes']} | {mode} "
              f"| {kendalltau(truth, score).statistic:.3f} "
              f"| {spearmanr(truth, score).statistic:.3f} | {precision_at(truth, score, 5):.2f} "
              f"| {t['train_loss']:.3f} | {t['time_s']:.0f} | {judging:.1f} "
              f"| {(t['time_s'] + judging) / alone_s:.3f} |")  # fmt: skip
    accs = np.array([r["score"] for r in alone.values()])
    print(f"| each trained alone | {log.get('protocol')['epochs']} | — | — | 1 | 1 | 1 | — "
          f"| {alone_s:.0f} | — | 1.000 |")  # fmt: skip
    print(
        f"\n{len(alone)} of {n_archs} archs trained alone: accuracy {accs.min():.3f}-"
        f"{accs.max():.3f} (mean {accs.mean():.3f}), {alone_s:.0f} s in all"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="cpu")
    parser.add_argument("--quick", action="store_true", help="the tiny protocol (a minute)")
    parser.add_argument("--gpu", action="store_true", help="the large protocol on CUDA")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="JSON lines (default by protocol)")
    args = parser.parse_args()
    name = "quick" if args.quick else "large" if args.gpu else args.protocol
    p = dict(PROTOCOLS[name])
    if not torch.cuda.is_available():
        p["device"] = "cpu"
    results = ROOT / "benchmarks" / "results"
    out = args.out or results / f"sandwich_macro_{name}.jsonl"
    alone_out = out.with_name(out.name.replace("sandwich_macro_", "sandwich_macro_alone_"))
    if alone_out == out:
        alone_out = out.with_name(f"{out.stem}_alone.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.with_suffix(".work")
    work.mkdir(exist_ok=True)
    protocol = {"name": name, **p}
    alone_protocol = {k: v for k, v in protocol.items() if k != "calib"}
    logs = []
    for path, proto in ((out, protocol), (alone_out, alone_protocol)):
        log = Log(path)
        if not log.done("protocol"):
            log.add({"key": "protocol", "kind": "protocol", **proto})
        elif {k: v for k, v in log.get("protocol").items() if k not in ("key", "kind")} != proto:
            raise SystemExit(f"{path}: written by another protocol; pass another --out")
        logs.append(log)
    log, alone_log = logs
    data = load_cifar(args.data, p["image_size"], p["n_train"])
    space = make_space(p)
    archs = arch_list(space, p["archs"])
    print(f"protocol {name}: {json.dumps(protocol)}")
    print(f"{data.describe()}; {len(archs)} archs; space size {space.size()}; "
          f"results -> {out}, {alone_out}")  # fmt: skip
    train_alone(p, data, alone_log, space, archs)
    for sampling in ("sandwich", "uniform"):
        judge(p, data, log, work, space, archs, sampling)
    report(log, alone_log, len(archs))


if __name__ == "__main__":
    main()
