"""Learning-rate schedules by name, stepped once per optimizer step.

Every named schedule is a `LambdaLR` factor f(t) of the step t = 0 .. total_steps
(lr_t = base_lr * f(t)), except `onecycle`, which is torch's `OneCycleLR`:

- constant:     f = 1
- step:         f = gamma ** (t // step_size)            (step_size default total/3, gamma 0.1)
- multistep:    f = gamma ** #(milestones <= t)           (default at 50% and 75% of total)
- cosine:       f = m + (1 - m) * (1 + cos(pi * t / T)) / 2, m = min_lr / base_lr (default 0)
- warmup_cosine: (t + 1) / w for t < w, then cosine over the remaining T - w steps
                (w = warmup_steps, default 5% of total)
- linear:       f = start_factor + (end_factor - start_factor) * t / T   (1 -> 0 by default)
- exponential:  f = gamma ** t   (gamma default: 0.01 ** (1 / T), i.e. 1% at the end)
- onecycle:     torch OneCycleLR, max_lr = base lr, pct_start = warmup_steps / T if given
                (default 0.3), anneal cos, div_factor 25, final_div_factor 1e4
- a callable:   f = fn(t), as LambdaLR takes

`warmup_steps` (> 0) puts a linear warm-up (t + 1) / w in front of any schedule but onecycle;
the schedule then runs over the remaining T - w steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

SCHEDULE_NAMES: tuple[str, ...] = (
    "constant",
    "step",
    "multistep",
    "cosine",
    "warmup_cosine",
    "onecycle",
    "linear",
    "exponential",
)

Factor = Callable[[int], float]


def _reject(name: str, options: dict[str, Any]) -> None:
    if options:
        raise ValueError(f"schedule {name!r}: unknown option(s) {', '.join(sorted(options))}")


def _constant(total: int, base_lr: float, opts: dict[str, Any]) -> Factor:
    _reject("constant", opts)
    return lambda t: 1.0


def _step(total: int, base_lr: float, opts: dict[str, Any]) -> Factor:
    size = int(opts.pop("step_size", max(1, total // 3)))
    gamma = float(opts.pop("gamma", 0.1))
    _reject("step", opts)
    if size < 1:
        raise ValueError(f"schedule 'step': step_size must be >= 1, got {size}")
    return lambda t: gamma ** (t // size)


def _multistep(total: int, base_lr: float, opts: dict[str, Any]) -> Factor:
    milestones = sorted(int(m) for m in opts.pop("milestones", (total // 2, (3 * total) // 4)))
    gamma = float(opts.pop("gamma", 0.1))
    _reject("multistep", opts)
    return lambda t: gamma ** sum(1 for m in milestones if m <= t)


def _cosine_factor(span: int, min_factor: float) -> Factor:
    span = max(1, span)

    def factor(t: int) -> float:
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(t, span) / span))

    return factor


def _cosine(total: int, base_lr: float, opts: dict[str, Any]) -> Factor:
    min_lr = float(opts.pop("min_lr", 0.0))
    _reject("cosine", opts)
    return _cosine_factor(total, min_lr / base_lr)


def _linear(total: int, base_lr: float, opts: dict[str, Any]) -> Factor:
    start = float(opts.pop("start_factor", 1.0))
    end = float(opts.pop("end_factor", 0.0))
    _reject("linear", opts)
    return lambda t: start + (end - start) * min(t, total) / total


def _exponential(total: int, base_lr: float, opts: dict[str, Any]) -> Factor:
    gamma = float(opts.pop("gamma", 0.01 ** (1 / total)))
    _reject("exponential", opts)
    if not 0 < gamma <= 1:
        raise ValueError(f"schedule 'exponential': gamma must be in (0, 1], got {gamma}")
    return lambda t: gamma**t


_FACTORS: dict[str, Callable[[int, float, dict[str, Any]], Factor]] = {
    "constant": _constant,
    "step": _step,
    "multistep": _multistep,
    "cosine": _cosine,
    "linear": _linear,
    "exponential": _exponential,
}


def with_warmup(factor: Factor, warmup_steps: int) -> Factor:
    """Linear warm-up (t + 1) / w for t < w, then `factor(t - w)`."""
    if warmup_steps <= 0:
        return factor
    return lambda t: (t + 1) / warmup_steps if t < warmup_steps else factor(t - warmup_steps)


def make_scheduler(
    name: str | Callable[[int], float],
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    **options: Any,
) -> LRScheduler:
    """Per-step LR scheduler `name` over `total_steps` optimizer steps (see module docs)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    opts = dict(options)
    warmup = int(opts.pop("warmup_steps", 0))
    if not 0 <= warmup <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup}")
    if callable(name):
        _reject("callable", opts)
        return LambdaLR(optimizer, with_warmup(name, warmup))
    key = name.lower() if isinstance(name, str) else name
    base_lr = float(optimizer.param_groups[0]["lr"])
    if key == "onecycle":
        pct = float(opts.pop("pct_start", warmup / total_steps if warmup else 0.3))
        defaults = {"anneal_strategy": "cos", "cycle_momentum": False}
        return OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total_steps,
            pct_start=pct,
            **{**defaults, **opts},
        )
    if key == "warmup_cosine":
        if warmup == 0:
            warmup = max(1, round(0.05 * total_steps))
        min_lr = float(opts.pop("min_lr", 0.0))
        _reject("warmup_cosine", opts)
        return LambdaLR(
            optimizer, with_warmup(_cosine_factor(total_steps - warmup, min_lr / base_lr), warmup)
        )
    if key not in _FACTORS:
        raise ValueError(f"unknown schedule {name!r}; valid names: {', '.join(SCHEDULE_NAMES)}")
    factor = _FACTORS[key](max(1, total_steps - warmup), base_lr, opts)
    return LambdaLR(optimizer, with_warmup(factor, warmup))
