"""What a model costs: trainable parameters, multiply-adds per sample, latency.

`count_flops` reports multiply-adds (MACs) for ONE sample: `input_shape` is the shape of
one sample without the batch dimension, e.g. (3, 32, 32). torch's FlopCounterMode counts
2 FLOPs per multiply-add of convolutions and matrix products; we divide by 2. Only those
(and the other ops torch's counter knows, like attention) are counted: norms, activations,
pooling and bias additions are not, as is usual for MAC counts.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class Latency:
    """Forward time of one batch in milliseconds: median and interquartile range."""

    median_ms: float
    iqr_ms: float
    runs: int


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _sample_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be one sample's shape like (C, H, W), got {shape}")
    return shape


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass on ONE sample of shape `input_shape` (no batch dim).

    Measured in eval mode on a batch of one zero input; the model's mode is restored.
    """
    shape = _sample_shape(input_shape)
    x = torch.zeros((1, *shape), device=_model_device(model))
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def _fold(model: nn.Module) -> nn.Module:
    try:
        from normnas.nn import fold_bn  # written in parallel; imported only when asked for
    except ImportError as e:
        raise RuntimeError("measure_latency(fold_bn=True) needs normnas.nn.fold_bn") from e
    return fold_bn(model)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    warmup: int = 10,
    runs: int = 50,
    fold_bn: bool = False,
) -> Latency:
    """Time `runs` forward passes on a (batch_size, *input_shape) input after `warmup` ones.

    Eval mode and no grad; CUDA is synchronized around each run. The model is timed on a
    copy when it has to move device or have its BN folded, and its train/eval mode is
    restored either way.
    """
    if runs < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(
            f"measure_latency: runs >= 1, warmup >= 0, batch_size >= 1 needed, "
            f"got runs={runs}, warmup={warmup}, batch_size={batch_size}"
        )
    shape = _sample_shape(input_shape)
    dev = torch.device(device)
    net = model
    if fold_bn:
        net = _fold(model)
    if _model_device(net) != dev:
        net = copy.deepcopy(net) if net is model else net
        net = net.to(dev)
    was_training = model.training
    net.eval()
    x = torch.randn((batch_size, *shape), device=dev)
    times = []
    try:
        with torch.no_grad():
            for _ in range(warmup):
                net(x)
            _sync(dev)
            for _ in range(runs):
                t0 = time.perf_counter()
                net(x)
                _sync(dev)
                times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.train(was_training)
    if len(times) >= 2:
        q = statistics.quantiles(times, n=4, method="inclusive")
        iqr = q[2] - q[0]
    else:
        iqr = 0.0
    return Latency(median_ms=statistics.median(times), iqr_ms=iqr, runs=runs)
