"""Train a small BatchNorm CNN on the embedded digits data set and print its test accuracy.

OMP_NUM_THREADS=1 .venv/bin/python examples/train_digits.py
"""

from __future__ import annotations

import time

import torch
from torch import nn

from normnas.data import load
from normnas.train import TrainConfig, count_flops, count_params, evaluate, fit, measure_latency


def small_cnn(in_channels: int, num_classes: int) -> nn.Module:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(in_channels, 32), *block(32, 64), nn.MaxPool2d(2), *block(64, 64),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )  # fmt: skip


def main() -> None:
    data = load("digits", seed=0)
    print(data.describe())
    torch.manual_seed(0)
    model = small_cnn(data.in_channels, data.num_classes)
    config = TrainConfig(epochs=15, batch_size=64, lr=0.1, schedule="cosine", seed=0)

    def show(r) -> None:
        print(
            f"epoch {r.epoch:2d}  loss {r.train_loss:.3f}  train {r.train_acc:.3f}  "
            f"valid {r.valid_acc:.3f}  lr {r.lr:.4f}  {r.time_s:.1f}s"
        )

    t0 = time.perf_counter()
    result = fit(model, data, config, callback=show)
    seconds = time.perf_counter() - t0
    test = evaluate(model, data.test)
    shape = (data.in_channels, *data.image_size)
    latency = measure_latency(model, shape)
    print(
        f"status {result.status}, best valid {result.best_valid_acc:.4f}, "
        f"training {result.time_s:.1f}s (fit call {seconds:.1f}s incl. one-off torch warm-up)"
    )
    print(
        f"params {count_params(model):,}  MACs/sample {count_flops(model, shape):,}  "
        f"latency {latency.median_ms:.3f} ms (IQR {latency.iqr_ms:.3f})"
    )
    print(f"test accuracy: {test.accuracy:.4f} (macro F1 {test.f1:.4f}, n={test.n})")


if __name__ == "__main__":
    main()
