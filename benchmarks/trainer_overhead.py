"""Images/second of `normnas.train.fit` against a plain hand-written PyTorch loop.

Same model (same initial weights), same data in memory, same batches count, same
optimizer (SGD + Nesterov, weight decay off norm/bias) and per-step cosine schedule; fit
runs without a validation split so both do the same work, except that fit also sums the
loss and correct counts on tensors and checks divergence and time. Runs alternate
(plain, fit, plain, fit, ...) so drifts in machine load hit both; medians are reported.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/trainer_overhead.py --threads 2
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from normnas.data import DataBundle, load
from normnas.train import TrainConfig, fit
from normnas.train.fit import param_groups

CIFAR_SUBSET = (Path(__file__).parents[1] / "../shared/data/cifar10/train-10k.npz").resolve()


def make_model(in_channels: int, num_classes: int) -> nn.Module:
    torch.manual_seed(0)

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(in_channels, 32), nn.MaxPool2d(2),
        *block(32, 64), nn.MaxPool2d(2),
        *block(64, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes),
    )  # fmt: skip


def plain_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig) -> None:
    """The loop one writes by hand: shuffle, slice, forward, backward, step, schedule."""
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    groups = param_groups(model, cfg.weight_decay, on_norm_and_bias=False)
    opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    steps = cfg.epochs * math.ceil(len(y) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data set name (default: the CIFAR-10 subset)")
    ap.add_argument("--images", type=int, default=2560, help="training images per epoch")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    name = args.data or (f"npz:{CIFAR_SUBSET}" if CIFAR_SUBSET.exists() else "digits")
    data: DataBundle = load(name)
    train = data.train
    train.x, train.y = train.x[: args.images].contiguous(), train.y[: args.images].contiguous()
    train.augment = False
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.05, amp=False)
    n_images = cfg.epochs * len(train)
    print(
        f"data {data.name} ({len(train)} images x {cfg.epochs} epochs, batch {cfg.batch_size}), "
        f"{torch.get_num_threads()} thread(s), torch {torch.__version__}"
    )

    rates: dict[str, list[float]] = {"plain": [], "fit": []}
    for r in range(-1, args.repeats):  # repeat -1 warms up kernels and allocator, not counted
        for kind in ("plain", "fit") if r % 2 == 0 else ("fit", "plain"):
            model = make_model(data.in_channels, data.num_classes)
            t0 = time.perf_counter()
            if kind == "plain":
                plain_loop(model, train.x, train.y, cfg)
            else:
                result = fit(model, data, cfg, train_split=train, valid_split=None)
                assert result.status == "ok", result
            rates[kind].append(n_images / (time.perf_counter() - t0))
        if r < 0:
            rates = {"plain": [], "fit": []}
            continue
        print(f"repeat {r + 1}: plain {rates['plain'][-1]:.0f} img/s, fit {rates['fit'][-1]:.0f}")
    plain, ours = statistics.median(rates["plain"]), statistics.median(rates["fit"])
    print(f"plain loop: {plain:.0f} images/s (median of {args.repeats})")
    print(f"fit:        {ours:.0f} images/s (median of {args.repeats})")
    pairs = sorted(f / p for f, p in zip(rates["fit"], rates["plain"], strict=True))
    print(f"ratio fit / plain: {ours / plain:.3f}  (target >= 0.97)")
    print(
        f"per-repeat ratios: median {statistics.median(pairs):.3f}, "
        f"range {pairs[0]:.3f}..{pairs[-1]:.3f} (a wide range means a loaded machine)"
    )


if __name__ == "__main__":
    main()
