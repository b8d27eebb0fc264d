"""Network slimming of a VGG-like network on real CIFAR-10 images: BN |γ| against the L1
norm of filters against random channels, at the same ratios and the same total epochs.

    python benchmarks/slim_cifar.py [--protocol cpu|gpu] [--quick] [--sparsity S]

The network is a fixed VGG-like LayerSpace network (not a search's winner, so that the
figures do not depend on a search): conv-BN-ReLU blocks of widths w, w, pool, 2w, 2w, pool,
4w, 4w, global average pool, linear. Data: the 10,000 real images of
../shared/data/cifar10/train-10k.npz, a fixed stratified split (seed 0): 20% test, then
12.5% of the rest valid, the rest (7,000) train, augmented (crop + flip).

Per row (`normnas.slim.run.slim_network`, what `normnas slim` runs): one sparsity training
of `epochs` epochs with the L1 penalty on every BN γ, shared by every row; the unpruned
network and each pruned one (criterion x ratio) are then fine-tuned `finetune_epochs`
epochs, so every row has had the same total epochs. Each row prints params, FLOPs (every
op), the batch-1 CPU latency of the BN-folded network and its ratio to the unpruned
network's (timed in alternating rounds in the same run), valid and test accuracy.

The sparsity: the paper's s = 1e-4 over 160 epochs of CIFAR-10 (~62,000 steps at lr 0.1
decayed) pulls each γ by about lr·s·steps ≈ 0.3 in total; the protocols choose s so that
their much shorter schedules pull about as far (cpu: 1e-2, gpu: 2e-3).

Protocols: `cpu` (about 20 minutes on 2 idle cores: 16x16 images, w = 32, 24 + 8 epochs),
`gpu` (32x32 images, w = 64, 60 + 20 epochs, trained on CUDA; latency is still CPU batch
1). `--quick` is a one-minute smoke test of the whole pipeline. Each row is appended to
benchmarks/results/slim_cifar_<protocol>.jsonl as it finishes; a rerun resumes from the
work folder benchmarks/results/slim_cifar_<protocol>.work/ (the sparsity-trained network and
the rows done are kept there).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from normnas.data.common import channel_stats, stratified_split
from normnas.data.split import DataBundle, Split
from normnas.slim.run import SlimSettings, slim_network
from normnas.spaces import LayerSpace
from normnas.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train-10k.npz"
RESULTS = ROOT / "benchmarks" / "results"

PROTOCOLS: dict[str, dict[str, Any]] = {
    "cpu": dict(image_size=16, width=32, epochs=24, finetune=8, sparsity=1e-2, lr=0.05,
                batch_size=128, n_train=None, device="cpu"),
    "gpu": dict(image_size=32, width=64, epochs=60, finetune=20, sparsity=2e-3, lr=0.1,
                batch_size=128, n_train=None, device="cuda"),
    "quick": dict(image_size=16, width=8, epochs=1, finetune=1, sparsity=1e-2, lr=0.05,
                  batch_size=64, n_train=512, device="cpu"),
}  # fmt: skip
RATIOS = (0.3, 0.5, 0.7)
CRITERIA = ("bn", "l1", "random")


def load_cifar(path: Path, image_size: int, n_train: int | None) -> DataBundle:
    raw = np.load(path)
    x = torch.from_numpy(raw["x"]).permute(0, 3, 1, 2).float() / 255.0
    if image_size != x.shape[-1]:
        x = F.adaptive_avg_pool2d(x, image_size)
    y = raw["y"].astype(np.int64)
    rest, test_idx = stratified_split(y, 0.2, seed=0)
    keep, valid_local = stratified_split(y[rest], 0.125, seed=0)
    train_idx, valid_idx = rest[keep], rest[valid_local]
    if n_train is not None:  # quick: a prefix of each split
        train_idx, valid_idx, test_idx = train_idx[:n_train], valid_idx[:256], test_idx[:256]
    mean, std = channel_stats(x[train_idx])
    x = (x - torch.tensor(mean)[None, :, None, None]) / torch.tensor(std)[None, :, None, None]
    yt = torch.from_numpy(y)
    pad = max(1, image_size // 8)
    train = Split(x[train_idx], yt[train_idx], augment=True, padding=pad)
    return DataBundle(
        "cifar10-10k", train, Split(x[valid_idx], yt[valid_idx]),
        Split(x[test_idx], yt[test_idx]), 10, 3, (image_size, image_size), mean, std,
    )  # fmt: skip


def vgg_space(width: int, image_size: int) -> LayerSpace:
    w = width
    conv = [{"type": "conv", "filters": f} for f in (w, w)]
    return LayerSpace.from_dict({
        "input_size": image_size,
        "layers": [
            *conv, {"type": "pool", "kind": "max", "size": 2},
            {"type": "conv", "filters": 2 * w}, {"type": "conv", "filters": 2 * w},
            {"type": "pool", "kind": "max", "size": 2},
            {"type": "conv", "filters": 4 * w}, {"type": "conv", "filters": 4 * w},
        ],
    })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="a one-minute smoke test")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sparsity", type=float, default=None)
    parser.add_argument(
        "--retime", action="store_true",
        help="only time the saved networks again (more rounds; run it on an idle machine)",
    )  # fmt: skip
    args = parser.parse_args()
    name = "quick" if args.quick else args.protocol
    if args.retime:
        retime(RESULTS / f"slim_cifar_{name}.work", PROTOCOLS[name]["image_size"])
        return
    p = dict(PROTOCOLS[name])
    if args.sparsity is not None:
        p["sparsity"] = args.sparsity
    torch.set_num_threads(1 if p["device"] == "cpu" else torch.get_num_threads())
    data = load_cifar(args.data, p["image_size"], p["n_train"])
    space = vgg_space(p["width"], p["image_size"])
    arch = space.sample(np.random.default_rng(0))  # the space has one architecture
    config = TrainConfig(
        epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], weight_decay=5e-4,
        device=p["device"], seed=0, channels_last=p["device"] == "cuda",
    )  # fmt: skip
    settings = SlimSettings(
        ratios=RATIOS, criteria=CRITERIA, sparsity=p["sparsity"], epochs=p["epochs"],
        finetune_epochs=p["finetune"], seed=0,
    )  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / f"slim_cifar_{name}.jsonl"
    logged = set()
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                r = json.loads(line)
                logged.add((r["criterion"], r["ratio"]))
            except (ValueError, KeyError):
                break
    common = {"protocol": name, **{k: v for k, v in p.items() if k != "n_train"},
              "threads": torch.get_num_threads()}  # fmt: skip

    def write(row: dict[str, Any]) -> None:
        if (row["criterion"], row["ratio"]) in logged:
            return
        logged.add((row["criterion"], row["ratio"]))
        with open(log, "a") as fh:
            fh.write(json.dumps({**common, **row}) + "\n")

    t0 = time.perf_counter()
    outcome = slim_network(
        space, arch, data, config, settings, RESULTS / f"slim_cifar_{name}.work",
        on_row=write,
    )  # fmt: skip
    base = outcome.unpruned
    write(base)
    print(f"{name}: VGG-like w={p['width']} on {p['image_size']}x{p['image_size']} CIFAR-10 "
          f"(train {len(data.train)}, valid {len(data.valid)}, test {len(data.test)}), "
          f"{p['epochs']} + {p['finetune']} epochs per row, sparsity {p['sparsity']:g}, "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    print(f"{'criterion':<9} {'ratio':>5} {'params':>12} {'FLOPs':>14} {'latency':>9} "
          f"{'speedup':>7} {'valid':>7} {'test':>7} {'Δtest':>6}")  # fmt: skip
    print(f"{'none':<9} {0:>5.2f} {base['params']:>12,} {base['flops']:>14,} {'':>9} {'':>7} "
          f"{100 * base['valid_accuracy']:>6.2f}% "
          f"{100 * base['test_accuracy']:>6.2f}%")  # fmt: skip
    for r in outcome.rows:
        gap = 100 * (r["test_accuracy"] - base["test_accuracy"])
        print(
            f"{r['criterion']:<9} {r['ratio']:>5.2f} {r['params']:>7,} "
            f"({100 * r['params_share']:3.0f}%)"
            f" {r['flops']:>9,} ({100 * r['flops_share']:3.0f}%) {r['latency_ms']:>7.3f}ms "
            f"{r['speedup']:>6.2f}x {100 * r['valid_accuracy']:>6.2f}% "
            f"{100 * r['test_accuracy']:>6.2f}% {gap:>+5.2f}"
        )  # fmt: skip
    goal = [r for r in outcome.rows if r["criterion"] == "bn" and r["ratio"] == 0.5]
    if goal:
        r = goal[0]
        ok = (r["params_share"] <= 0.5, r["speedup"] >= 1.3,
              base["test_accuracy"] - r["test_accuracy"] <= 0.01)  # fmt: skip
        print(f"goal at bn 0.5: params -{100 * (1 - r['params_share']):.0f}% (>= 50%: {ok[0]}), "
              f"latency {r['speedup']:.2f}x (>= 1.3x: {ok[1]}), test "
              f"{100 * (r['test_accuracy'] - base['test_accuracy']):+.2f} points "
              f"(within 1: {ok[2]})")  # fmt: skip


def retime(folder: Path, size: int, rounds: int = 15) -> None:
    """Batch-1 latency of each saved pruned network against the unpruned one, paired as the
    run does it (alternating rounds, BN folded, 1 thread) with more rounds, and the load."""
    import os

    from normnas.search.final import load
    from normnas.slim.run import paired_latency

    torch.set_num_threads(1)
    base, _ = load(folder / "unpruned.pt")
    load_before = os.getloadavg()[0]
    print(f"retime {folder.name}: 1 thread, batch 1, {rounds} paired rounds, "
          f"load {load_before:.2f} before")  # fmt: skip
    for path in sorted(folder.glob("*-0.*.pt")):
        model, _ = load(path)
        ms, base_ms, reliable = paired_latency(model, base, (3, size, size), 50, rounds)
        print(f"{path.stem:<12} {ms:7.3f} ms  unpruned {base_ms:7.3f} ms  "
              f"speedup {base_ms / ms:5.2f}x{'' if reliable else '  (unreliable rounds)'}")
    print(f"load {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
