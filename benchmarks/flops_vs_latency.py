"""What an operation count says about CPU time: NB201 networks with one op on every edge.

For the all-`avg_pool_3x3`, all-`skip_connect` and all-`nor_conv_3x3` networks (C=16, N=5,
32×32 inputs, CIFAR-10's shape) prints MACs (`count_macs`), operations (`count_flops`),
the batch-1 forward latency (`measure_latency`, median) and the median time of one
training step at batch 64, each with its ratio to the skip network measured in the same run.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/flops_vs_latency.py [--steps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from normnas.spaces import NB201Space
from normnas.train import count_flops, count_macs, measure_latency

OPS = ("skip_connect", "avg_pool_3x3", "nor_conv_3x3")
SHAPE = (3, 32, 32)


def step_ms(model: nn.Module, steps: int, batch: int = 64) -> float:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(batch, *SHAPE), torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if i:  # the first step warms up the allocator
            times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    space = NB201Space()
    rows = {}
    for op in OPS:
        torch.manual_seed(0)
        model = space.build((op,) * 6, 10, 3)
        rows[op] = (
            count_macs(model, SHAPE),
            count_flops(model, SHAPE),
            measure_latency(model, SHAPE, batch_size=1).median_ms,
            step_ms(model, args.steps),
        )
    base = rows["skip_connect"]
    print(f"{'network':14s} {'MACs':>12s} {'flops':>12s} {'fwd b1 ms':>10s} {'step b64 ms':>12s}")
    for op, (macs, flops, lat, step) in rows.items():
        print(
            f"{op:14s} {macs:12,d} {flops:12,d} {lat:10.2f} {step:12.1f}   "
            f"x skip: MACs {macs / base[0]:.2f} flops {flops / base[1]:.2f} "
            f"latency {lat / base[2]:.1f} step {step / base[3]:.1f}"
        )


if __name__ == "__main__":
    main()
