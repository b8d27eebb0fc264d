"""Forward+backward time of torch's BatchNorm2d against our reference BatchNorm.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/norm_speed.py [--shape 32 64 32 32]
Repeats alternate between the two layers so drift in machine load hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from normnas.nn import BatchNorm


def time_step(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor, steps: int) -> float:
    """Median milliseconds of one training-mode forward+backward over `steps` calls."""
    times = []
    for _ in range(steps):
        x.grad = None
        start = time.perf_counter()
        layer(x).backward(grad)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[32, 64, 32, 32], metavar="N")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds")
    parser.add_argument("--steps", type=int, default=10, help="timed calls per round")
    args = parser.parse_args()

    torch.manual_seed(0)
    channels = args.shape[1]
    x = torch.randn(*args.shape, requires_grad=True)
    grad = torch.randn(*args.shape)
    layers = {"torch": nn.BatchNorm2d(channels), "reference": BatchNorm(channels)}
    for layer in layers.values():  # warm-up: first calls allocate
        time_step(layer, x, grad, 3)
    results: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(args.repeats):
        for name, layer in layers.items():
            results[name].append(time_step(layer, x, grad, args.steps))

    ms = {name: statistics.median(values) for name, values in results.items()}
    print(
        f"input {tuple(args.shape)}, threads {torch.get_num_threads()}, torch {torch.__version__}"
    )
    for name, value in ms.items():
        print(f"{name:>9} BatchNorm forward+backward: {value:8.2f} ms")
    print(f"reference / torch: {ms['reference'] / ms['torch']:.2f}x")


if __name__ == "__main__":
    main()
