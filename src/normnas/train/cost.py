"""What a model costs: trainable parameters, operations per sample, latency.

Operation counts are for ONE forward pass of ONE sample in eval mode: `input_shape` is the
shape of one sample without the batch dimension, e.g. (3, 32, 32). They are counted on the
aten ops the forward pass runs (torch's FlopCounterMode with our formulas added), so
functional code such as the sums of a cell's nodes is counted as well as modules.

Convention (one "op" = one multiply-add = one addition, compare or activation):

- `count_macs`: multiply-adds of convolutions, linear layers, matrix products and attention,
  1 per multiply-add (torch's counter gives 2 FLOPs each; we halve it). Their bias additions
  are not counted (they start the accumulator). Nothing else is counted: this is the usual
  MAC figure, and what `count_flops` reported before it counted the rest.
- `count_flops`: those MACs PLUS the work that has no multiply-add:
  - pooling: one op per window element per output element, so avg and max pool with a k×k
    kernel cost k·k per output element (padding, stride and `count_include_pad` do not
    change it); adaptive pools by their actual windows; a global average pool (a mean) and
    other sums/means one op per input element; var/std two per input element;
  - normalization: BN in eval mode (always, here) 1 per element (a per-channel scale and
    shift: one multiply-add once folded); norms that compute statistics of the input
    (layer, group, instance, RMS, BN in training mode) 4 per element (mean 1, variance 2,
    normalize with the affine folded in 1);
  - activations (ReLU, GELU, SiLU, sigmoid, tanh, hardswish, ...) 1 per element; softmax and
    log-softmax 3 per element (exp, sum, divide);
  - elementwise arithmetic (add, sub, mul, div, addcmul, pow, sqrt, exp, ...: the sums of
    residual connections and cell nodes, SE gates) 1 per output element.
  Reshapes, copies, concatenation, padding, upsampling and dropout (off in eval) are free.

The same layer written with other ops counts as those ops (e.g. `normnas.nn.BatchNorm` in
eval: a subtract and a multiply-add, 2 per element). A BN folded into the conv before it
(`normnas.nn.fold_bn`) costs nothing, so count the folded model to see the deployed figure.
A FLOP count cannot show that some kernels are slow on some hardware (e.g. CPU avg pool
with `count_include_pad=False`): measure latency for that.

Latency (`measure_latency`) is timed with torch's CPU threads pinned (`threads`, 1 by
default: batch-1 inference, and the figure does not depend on how many cores are idle),
after a warm-up, in `rounds` rounds; the figure is the smallest round median. Other work on
the machine only ever adds time, so the quietest round is the closest to the model's own
cost, and a median within each round ignores single preempted runs. The figure carries the
machine's 1-minute load average and core count, and `reliable` is False when other work
could have taken the cores the timing needed, or when the rounds disagree (see
`latency_reliable`).
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from normnas.train.threads import cpu_threads

aten = torch.ops.aten


# rounds whose medians differ by more than this share of the smallest are not trusted
MAX_ROUND_SPREAD = 0.25


@dataclass
class Latency:
    """Forward time of one batch in milliseconds, and the conditions it was measured in.

    `median_ms` is the smallest of the rounds' medians (the module doc says why); `iqr_ms`
    the interquartile range of every timed run. `load` is the 1-minute load average when
    measured (None where the OS has none), `own_load` this process's share of it (its CPU
    use over about the last minute), `cores` the machine's CPUs, `threads` torch's CPU
    threads during the timing, `spread` (largest - smallest round median) / smallest.
    """

    median_ms: float
    iqr_ms: float
    runs: int
    rounds: int = 1
    threads: int = 1
    load: float | None = None
    own_load: float = 0.0
    cores: int = 1
    spread: float = 0.0
    reliable: bool = True


class LatencyMs(float):
    """A latency figure in ms that also carries its measurement's load, cores and
    reliability: `network_costs` returns it as `latency_ms`, so an evaluator that passes
    `latency_ms` on into its TrialResult passes them too (the trial records them as
    `latency_load`, `latency_cores` and `latency_reliable`). It is a plain float otherwise."""

    load: float | None
    cores: int
    reliable: bool

    def __new__(cls, value: float, load: float | None, cores: int, reliable: bool) -> LatencyMs:
        self = super().__new__(cls, value)
        self.load, self.cores, self.reliable = load, cores, reliable
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # pickled to and from worker processes whole
        return (LatencyMs, (float(self), self.load, self.cores, self.reliable))

    @classmethod
    def of(cls, latency: Latency) -> LatencyMs:
        return cls(latency.median_ms, latency.load, latency.cores, latency.reliable)


def latency_reliable(
    load: float | None, cores: int, threads: int, spread: float, own_load: float = 0.0
) -> bool:
    """Can a latency figure be trusted? No when the other work on the machine (the 1-minute
    load average less this process's own share `own_load`) exceeds the cores the timing
    did not use (`cores - threads`): then some other thread was runnable on average, and a
    timed run could wait for a core. No either when the rounds' medians `spread` more than
    MAX_ROUND_SPREAD of the smallest: something changed while we timed.

    This process's own share is left out because a search trains between two measurements:
    its training threads fill the 1-minute average for a minute after they stop, although
    they are idle while the latency is timed."""
    if spread > MAX_ROUND_SPREAD:
        return False
    if load is None:  # no load average here (Windows): the rounds are all we can judge by
        return True
    return load - own_load <= cores - threads


class _OwnLoad:
    """This process's CPU use, averaged like the kernel's 1-minute load average (an
    exponential average with a 60 s time constant), from its CPU time between calls."""

    def __init__(self) -> None:
        self.wall, self.cpu, self.value = time.monotonic(), time.process_time(), 0.0

    def now(self) -> float:
        wall, cpu = time.monotonic(), time.process_time()
        dt = wall - self.wall
        if dt > 0:
            keep = math.exp(-dt / 60.0)
            self.value = keep * self.value + (1 - keep) * (cpu - self.cpu) / dt
            self.wall, self.cpu = wall, cpu
        return self.value


_OWN_LOAD = _OwnLoad()  # from import on: normnas.train is imported before any training


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on Windows
        return None


@dataclass(frozen=True)
class OpCounts:
    """Operations of one forward pass of one sample, by kind (see the module docstring)."""

    macs: int  # multiply-adds of conv / linear / matmul / attention
    pool: int  # pooling and reductions (mean, sum, var)
    norm: int  # normalization layers
    activation: int  # activations, softmax
    elementwise: int  # add, mul, ...: residual and node sums among them

    @property
    def flops(self) -> int:
        """Total operations: the MACs plus every other kind."""
        return self.macs + self.pool + self.norm + self.activation + self.elementwise


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


# ---- formulas: torch's FlopCounterMode calls them with shapes for tensors, the other
# arguments as they are, and `out_shape` (a tuple of shapes for multi-output ops)

Formula = Callable[..., int]


def _first_shape(shape: Any) -> torch.Size:
    # max_pool*_with_indices and native_batch_norm return tuples; the first is the result
    return shape if isinstance(shape, torch.Size) else shape[0]


def _per_output(ops: int) -> Formula:
    def formula(*args: Any, out_shape: Any, **kwargs: Any) -> int:
        return ops * math.prod(_first_shape(out_shape))

    return formula


def _per_input(ops: int) -> Formula:
    def formula(x: torch.Size, *args: Any, out_shape: Any, **kwargs: Any) -> int:
        return ops * math.prod(x)

    return formula


def _pool(dims: int) -> Formula:
    """k1·k2·... per output element (the kernel's volume): avg/max pool with kernel_size."""

    def formula(x: torch.Size, kernel_size: Sequence[int], *args: Any, **kwargs: Any) -> int:
        kernel = list(kernel_size)
        if len(kernel) == 1:  # a square (cubic) kernel given as one number
            kernel = kernel * dims
        return math.prod(kernel) * math.prod(_first_shape(kwargs["out_shape"]))

    return formula


def _adaptive_window(size_in: int, size_out: int) -> int:
    """Sum of the window lengths of an adaptive pool along one dim (as torch slices it)."""
    return sum(
        -((-(i + 1) * size_in) // size_out) - (i * size_in) // size_out for i in range(size_out)
    )


def _adaptive_pool(dims: int) -> Formula:
    def formula(x: torch.Size, *args: Any, out_shape: Any, **kwargs: Any) -> int:
        out = _first_shape(out_shape)
        lead = math.prod(out[:-dims])
        windows = [_adaptive_window(i, o) for i, o in zip(x[-dims:], out[-dims:], strict=True)]
        return lead * math.prod(windows)

    return formula


def _batch_norm(x: torch.Size, *args: Any, out_shape: Any, **kwargs: Any) -> int:
    """1 per element with running stats (eval), 4 when it computes the batch's statistics."""
    flags = [a for a in args if isinstance(a, bool)]  # `training`, wherever the overload has it
    training = flags[0] if flags else bool(kwargs.get("training", True))
    return (4 if training else 1) * math.prod(x)


def _packets(*names: str) -> list[Any]:
    return [getattr(aten, n) for n in names if hasattr(aten, n)]


def _formulas() -> dict[str, dict[Any, Formula]]:
    """Our formulas by OpCounts field; torch's own registry provides the MACs."""
    act = "relu hardtanh leaky_relu elu gelu silu sigmoid tanh hardswish hardsigmoid mish"
    act += " threshold clamp clamp_min"
    ew = "add sub mul div neg abs pow sqrt rsqrt exp log reciprocal maximum minimum addcmul"
    ew += " addcdiv lerp"
    activation = _packets(
        *act.split(), *(n + "_" for n in act.split()), "softplus", "_prelu_kernel"
    )
    elementwise = _packets(*ew.split(), *(n + "_" for n in ew.split()), "rsub")
    return {
        "pool": {
            **dict.fromkeys(_packets("avg_pool1d", "max_pool1d"), _pool(1)),
            **dict.fromkeys(
                _packets("avg_pool2d", "max_pool2d", "max_pool2d_with_indices"), _pool(2)
            ),
            **dict.fromkeys(
                _packets("avg_pool3d", "max_pool3d", "max_pool3d_with_indices"), _pool(3)
            ),
            **dict.fromkeys(
                _packets("_adaptive_avg_pool2d", "adaptive_max_pool2d"), _adaptive_pool(2)
            ),
            **dict.fromkeys(
                _packets("_adaptive_avg_pool3d", "adaptive_max_pool3d"), _adaptive_pool(3)
            ),
            **dict.fromkeys(_packets("mean", "sum"), _per_input(1)),
            **dict.fromkeys(_packets("var", "std", "var_mean", "std_mean"), _per_input(2)),
        },
        "norm": {
            **dict.fromkeys(_packets("native_batch_norm", "_native_batch_norm_legit"), _batch_norm),
            **dict.fromkeys(_packets("_native_batch_norm_legit_no_training"), _per_input(1)),
            **dict.fromkeys(
                _packets("native_layer_norm", "native_group_norm", "_fused_rms_norm"),
                _per_input(4),
            ),
        },
        "activation": {
            **dict.fromkeys(activation, _per_output(1)),
            **dict.fromkeys(_packets("_softmax", "_log_softmax"), _per_output(3)),
        },
        "elementwise": dict.fromkeys(elementwise, _per_output(1)),
    }


_FORMULAS = _formulas()
_KIND = {packet: kind for kind, table in _FORMULAS.items() for packet in table}


def count_ops(model: nn.Module, input_shape: Sequence[int]) -> OpCounts:
    """Operations of one forward pass on ONE sample of shape `input_shape` (no batch dim).

    Measured in eval mode on a batch of one zero input; the model's mode is restored.
    """
    shape = _sample_shape(input_shape)
    x = torch.zeros((1, *shape), device=_model_device(model))
    mapping = {p: f for table in _FORMULAS.values() for p, f in table.items()}
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    flags = [(m, m.training) for m in model.modules()]  # each submodule's own mode
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        for m, training in flags:
            m.training = training
    totals = dict.fromkeys(("macs", *_FORMULAS), 0)
    for packet, n in counter.get_flop_counts().get("Global", {}).items():
        kind = _KIND.get(packet)
        if kind is None:
            totals["macs"] += n  # torch's registry: 2 FLOPs per multiply-add, halved below
        else:
            totals[kind] += n
    totals["macs"] //= 2
    return OpCounts(**totals)


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds (conv, linear, matmul, attention) of one forward pass on ONE sample."""
    return count_ops(model, input_shape).macs


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Operations of one forward pass on ONE sample: the MACs plus pooling, norms, activations
    and elementwise ops, under the convention of this module's docstring."""
    return count_ops(model, input_shape).flops


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
    rounds: int = 5,
    threads: int | None = 1,
) -> Latency:
    """Time `runs` forward passes on a (batch_size, *input_shape) input after `warmup` ones,
    in `rounds` rounds of (nearly) equal size; the figure is the smallest round median.

    torch uses `threads` CPU threads while timing (None: as set), restored afterwards.
    Eval mode and no grad; CUDA is synchronized around each run. The model is timed on a
    copy when it has to move device or have its BN folded, and its train/eval mode is
    restored either way. The result records the load, cores and threads, and whether the
    figure is reliable (`latency_reliable`).
    """
    if runs < 1 or warmup < 0 or batch_size < 1 or rounds < 1:
        raise ValueError(
            f"measure_latency: runs >= 1, warmup >= 0, batch_size >= 1, rounds >= 1 needed, "
            f"got runs={runs}, warmup={warmup}, batch_size={batch_size}, rounds={rounds}"
        )
    if threads is not None and threads < 1:
        raise ValueError(f"measure_latency: threads >= 1 or None needed, got {threads}")
    shape = _sample_shape(input_shape)
    dev = torch.device(device)
    net = model
    if fold_bn:
        net = _fold(model)
    if _model_device(net) != dev:
        net = copy.deepcopy(net) if net is model else net
        net = net.to(dev)
    rounds = min(rounds, runs)
    sizes = [runs // rounds + (k < runs % rounds) for k in range(rounds)]
    flags = [(m, m.training) for m in model.modules()]  # each submodule's own mode
    net.eval()
    times: list[list[float]] = []
    try:
        with cpu_threads(threads) as used:  # pinned for the timing, restored after
            x = torch.randn((batch_size, *shape), device=dev)
            with torch.no_grad():
                for _ in range(warmup):
                    net(x)
                _sync(dev)
                for size in sizes:
                    times.append([])
                    for _ in range(size):
                        t0 = time.perf_counter()
                        net(x)
                        _sync(dev)
                        times[-1].append((time.perf_counter() - t0) * 1e3)
    finally:
        for m, training in flags:
            m.training = training
    every = [t for r in times for t in r]
    if len(every) >= 2:
        q = statistics.quantiles(every, n=4, method="inclusive")
        iqr = q[2] - q[0]
    else:
        iqr = 0.0
    medians = [statistics.median(r) for r in times]
    best = min(medians)
    spread = (max(medians) - best) / best if best > 0 else 0.0
    load, own, cores = _load_average(), _OWN_LOAD.now(), os.cpu_count() or 1
    return Latency(
        median_ms=best,
        iqr_ms=iqr,
        runs=runs,
        rounds=rounds,
        threads=used,
        load=load,
        own_load=own,
        cores=cores,
        spread=spread,
        reliable=latency_reliable(load, cores, used, spread, own),
    )


COST_NAMES: tuple[str, ...] = ("params", "flops", "macs", "latency_ms")


def network_costs(
    model: nn.Module,
    input_shape: Sequence[int],
    names: Sequence[str] | None = None,
    latency_device: str = "cpu",
) -> dict[str, float]:
    """The cost figures in `names` (default all of `COST_NAMES`) of one untrained network:
    params, flops (every op, see the module doc), macs (multiply-adds only) and the batch-1
    latency_ms (`measure_latency`'s figure, as a `LatencyMs` carrying its load and
    reliability). flops and macs come from one counting pass."""
    names = COST_NAMES if names is None else tuple(names)
    out: dict[str, float] = {}
    if "params" in names:
        out["params"] = count_params(model)
    if "flops" in names or "macs" in names:
        ops = count_ops(model, input_shape)
        out.update({k: getattr(ops, k) for k in ("flops", "macs") if k in names})
    if "latency_ms" in names:
        out["latency_ms"] = LatencyMs.of(
            measure_latency(model, input_shape, batch_size=1, device=latency_device)
        )
    return out
