"""CPU latency of one found model as deployed: unfolded, BN folded, TorchScript, ONNX Runtime.

The model is a macro arch of the default space with BatchNorm in every block (conv → BN →
ReLU, so every BN folds), random weights with non-trivial BN statistics (latency does not
depend on the values). For batch 1 and 32 it times, interleaved round by round so machine
load hits all four alike: PyTorch eval mode as trained (unfolded), PyTorch after
`normnas.nn.fold_bn`, the folded model traced to TorchScript (what `normnas export --format
torchscript --fold-bn` writes), and ONNX Runtime on the model `normnas export --format onnx`
writes (BN folded, opset `OPSET`). Each figure is the median over rounds of the mean time
per call in a round, after warm-up; ratios are the unfolded time over each one's (> 1:
faster). torch and ONNX Runtime get the same number of threads (`--threads`).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/deploy_latency.py [--threads 1]
        [--rounds 15] [--calls 20] [--shape 3,32,32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from normnas.export import OPSET
from normnas.export import onnx as onnx_export
from normnas.nn import find_foldable_pairs, fold_bn
from normnas.spaces import MacroSpace

ARCH = (
    "[w32-k3-batchnorm-conv_norm_act-relu-res, w32-k3-batchnorm-conv_norm_act-relu-res] "
    "[w64-k3-batchnorm-conv_norm_act-relu-res, w64-k3-batchnorm-conv_norm_act-relu-res] "
    "[w128-k3-batchnorm-conv_norm_act-relu-res, w128-k3-batchnorm-conv_norm_act-relu-res] "
    "dropout=0.0"
)
Runner = Callable[[torch.Tensor], object]


def build(shape: tuple[int, int, int]) -> nn.Module:
    """The benchmark model, eval mode, with BN statistics away from their 0 / 1 start."""
    torch.manual_seed(0)
    space = MacroSpace()
    model = space.build(space.from_str(ARCH), num_classes=10, in_channels=shape[0])
    with torch.no_grad():
        model.train()
        for _ in range(3):
            model(torch.randn(32, *shape))
    return model.eval()


def runners(model: nn.Module, shape: tuple[int, int, int], threads: int) -> dict[str, Runner]:
    """name → a call running one batch, for the four deployments of `model`."""
    import onnxruntime as ort

    folded = fold_bn(model).eval()
    example = torch.randn(1, *shape)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on fixed shapes
        scripted = torch.jit.trace(folded, example)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    data = onnx_export.model_to_onnx(folded, example)
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def on_ort(x: torch.Tensor) -> object:
        return session.run(None, {onnx_export.INPUT_NAME: x.numpy()})[0]

    return {
        "PyTorch, unfolded": model,
        "PyTorch, BN folded": folded,
        "TorchScript (folded)": scripted,
        f"ONNX Runtime (folded, opset {OPSET})": on_ort,
    }


def check_equal(runs: dict[str, Runner], x: torch.Tensor) -> dict[str, float]:
    """Largest |difference| of each deployment's outputs from the unfolded model's."""
    with torch.no_grad():
        outs = {name: np.asarray(run(x)) for name, run in runs.items()}
    ref = outs["PyTorch, unfolded"]
    return {name: float(np.abs(out - ref).max()) for name, out in outs.items()}


@torch.no_grad()
def time_all(runs: dict[str, Runner], x: torch.Tensor, rounds: int, calls: int) -> dict[str, float]:
    """Median over `rounds` of the mean ms per call, the deployments interleaved per round."""
    for run in runs.values():  # warm-up: allocators, ORT's first-run planning, JIT profiling
        for _ in range(max(3, calls // 2)):
            run(x)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                run(x)
            samples[name].append(1000 * (time.perf_counter() - t0) / calls)
    return {name: statistics.median(times) for name, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--shape", default="3,32,32", help="C,H,W of one input")
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    assert len(shape) == 3, "--shape is C,H,W"
    torch.set_num_threads(args.threads)
    import onnxruntime as ort

    model = build(shape)  # type: ignore[arg-type]
    runs = runners(model, shape, args.threads)  # type: ignore[arg-type]
    params = sum(p.numel() for p in model.parameters())
    folds = len(find_foldable_pairs(model))
    print(f"model: macro {ARCH}")
    print(f"  {params:,} parameters, {folds} BatchNorm folded, input {shape}")
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} thread(s)), onnxruntime "
        f"{ort.__version__} (intra-op threads {args.threads}), load average at start "
        f"{os.getloadavg()[0]:.1f}; {args.rounds} rounds x {args.calls} calls, median"
    )
    diffs = check_equal(runs, torch.randn(8, *shape))
    for batch in (1, 32):
        x = torch.randn(batch, *shape)
        ms = time_all(runs, x, args.rounds, args.calls)
        base = ms["PyTorch, unfolded"]
        print(f"\nbatch {batch}")
        print("| deployment | ms per batch | × unfolded (speed-up) | max abs diff |")
        print("|---|---|---|---|")
        for name, value in ms.items():
            print(f"| {name} | {value:.3f} | {base / value:.2f}× | {diffs[name]:.1e} |")


if __name__ == "__main__":
    main()
