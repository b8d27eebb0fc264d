"""Your own evaluation function as the judge: `normnas.search(evaluate=my_fn, ...)`.

`FunctionEvaluator` wraps the function in the Evaluator contract (`evaluate(arch, fidelity,
report) -> TrialResult`), so it runs in the same runner as training does: the budget,
dedup, constraints, resume and the report are unchanged.

How the function is called is read from its signature:

- two positional parameters, `fn(model, data)`: the space's network for the data, built
  untrained and seeded with the run's seed (the same architecture and seed give the same
  weights), and the DataBundle (`data.train.x`, `data.valid.y`, `data.num_classes`, ...);
- one parameter named `model`, `net` or `network`: the network alone;
- any other single parameter, `fn(arch)`: the space's architecture value (no network).

It returns a number, the value of the single objective, or a dict of named numbers. The
objectives name them: `NAME:maximize` / `NAME:minimize` for metrics of your own, or the
built-ins `accuracy`, `params`, `flops`, `latency` (in the dict, or else measured on the
built network). An exception, a value that is not a number, a NaN or a missing objective
is a failed trial with that message in one line; the search goes on.
"""

from __future__ import annotations

import inspect
import math
import numbers
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from normnas.errors import ConfigError
from normnas.errors import error_line as one_line
from normnas.search.deadline import TimeLimitReached, deadline
from normnas.search.records import check_objectives, parse_objective
from normnas.search.result import ReportFn, TrialResult
from normnas.spaces.base import Arch, SearchSpace

MODEL_NAMES = ("model", "net", "network")
# built-in metrics: the TrialResult field of each, and the cost metric that measures it
BUILT_IN = {"accuracy": "accuracy", "params": "params", "flops": "flops", "latency": "latency_ms"}
_COSTS = {"params": "params", "flops": "flops", "latency": "latency_ms"}


def call_mode(fn: Any) -> str:
    """How `fn` is called: "model_data", "model" or "arch" (see the module doc).

    ConfigError (one line) when `fn` is not callable or its signature fits none of them.
    """
    if not callable(fn):
        raise ConfigError(f"evaluate: expected a function, got {type(fn).__name__}")
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: the richer call
        return "model_data"
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in params if p.kind in kinds]
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    required += [
        p for p in params
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]  # fmt: skip
    varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    name = getattr(fn, "__name__", "evaluate")
    if len(required) > 2 or (not positional and not varargs):
        raise ConfigError(
            f"evaluate: {name}{inspect.signature(fn)} must take (model, data) or (arch); "
            f"it has {len(required)} required parameters"
        )
    if len(positional) >= 2 or varargs:
        return "model_data"
    return "model" if positional[0].name in MODEL_NAMES else "arch"


class FunctionEvaluator:
    """A user's `evaluate` function as the judge of a search (see the module doc)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        space: SearchSpace,
        data: Any,  # normnas.data.DataBundle
        objectives: Sequence[str] = ("accuracy",),
        seed: int = 0,
        latency_device: str = "cpu",
    ) -> None:
        self.fn = fn
        self.mode = call_mode(fn)
        self.space = space
        self.data = data
        self.objectives = check_objectives(objectives)
        self.seed = seed
        self.latency_device = latency_device

    @property
    def name(self) -> str:
        """What the study records as its judge: the function's qualified name."""
        module = getattr(self.fn, "__module__", None) or "?"
        return f"{module}.{getattr(self.fn, '__qualname__', type(self.fn).__name__)}"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.data.in_channels, *self.data.image_size)  # (C, H, W) or (C, T)

    def build(self, arch: Arch) -> nn.Module:
        torch.manual_seed(self.seed)  # same init for the same arch and seed, as training's
        return self.space.build(arch, self.data.num_classes, self.data.in_channels)

    def cost_metrics(
        self, arch: Arch, names: Collection[str] | None = None, model: nn.Module | None = None
    ) -> dict[str, float]:
        """params, flops, macs, latency_ms (those in `names`) of the arch's network: what
        constraints check before the function runs."""
        from normnas.train.cost import network_costs

        model = self.build(arch) if model is None else model
        return network_costs(model, self.input_shape, names, self.latency_device)

    def evaluate(
        self,
        arch: Arch,
        fidelity: int | None = None,
        report: ReportFn | None = None,
        time_limit_s: float | None = None,
    ) -> TrialResult:
        """Call the function on `arch`; its metrics as a TrialResult (failed: one line).

        `time_limit_s` (the runner's time left) stops the function when it runs past it
        (see `search.deadline`); a call that ran past it is recorded `timeout` either way."""
        start = time.perf_counter()
        model = None
        try:
            with deadline(time_limit_s):
                if self.mode == "arch":
                    out = self.fn(arch)
                else:
                    model = self.build(arch)
                    call = (model, self.data) if self.mode == "model_data" else (model,)
                    out = self.fn(*call)
        except TimeLimitReached:
            return _overrun(time_limit_s, time.perf_counter() - start, stopped=True)
        except Exception as exc:  # the user's code: a failed trial, never a crashed search
            return TrialResult(
                status="failed", error=one_line(exc), cost_s=time.perf_counter() - start
            )
        if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
            return _overrun(time_limit_s, time.perf_counter() - start, stopped=False)
        try:
            metrics = self._metrics(out)
            missing = [
                _COSTS[n] for n in map(_name, self.objectives) if n in _COSTS and n not in metrics
            ]
            if missing:  # a built-in objective the function left out: measure it
                costs = self.cost_metrics(arch, missing)
                metrics |= {k: v for k, v in _by_objective(costs).items() if k not in metrics}
        except Exception as exc:  # the user's code: a failed trial, never a crashed search
            return TrialResult(
                status="failed", error=one_line(exc), cost_s=time.perf_counter() - start
            )
        cost_s = time.perf_counter() - start
        fields: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in metrics.items():
            if key in BUILT_IN:
                field = BUILT_IN[key]
                fields[field] = int(value) if field in ("params", "flops") else value
            else:
                extra[key] = value
        if model is not None and "params" not in fields:  # cheap, and every report shows it
            fields["params"] = sum(p.numel() for p in model.parameters())
        return TrialResult(status="ok", cost_s=cost_s, extra=extra, **fields)

    def _metrics(self, out: Any) -> dict[str, float]:
        """The function's result as {metric: finite float}; ValueError saying what is wrong."""
        names = [_name(o) for o in self.objectives]
        if isinstance(out, Mapping):
            metrics = {str(k): _number(f"metric {k!r}", v) for k, v in out.items()}
            absent = [n for n in names if n not in metrics and n not in _COSTS]
            if absent:
                raise ValueError(
                    f"evaluate returned no {absent[0]!r} (an objective); it returned "
                    f"{', '.join(map(repr, metrics)) or 'an empty dict'}"
                )
            return metrics
        if len(names) > 1:
            raise ValueError(
                f"evaluate returned one number, but there are {len(names)} objectives "
                f"({', '.join(self.objectives)}); return a dict with each"
            )
        return {names[0]: _number("its result", out)}


def _overrun(limit: float | None, took: float, stopped: bool) -> TrialResult:
    """The record of a call that ran past the time left in the budget."""
    how = "was stopped" if stopped else "returned late, its values are not used"
    return TrialResult(
        status="timeout",
        error=f"evaluate ran past the {limit or 0:.1f}s left in --time and {how} ({took:.1f}s)",
        cost_s=took,
    )


def _name(objective: str) -> str:
    return parse_objective(objective)[0]


def _by_objective(costs: Mapping[str, float]) -> dict[str, float]:
    """Cost metrics under objective names (latency_ms is the objective `latency`)."""
    back = {v: k for k, v in _COSTS.items()}
    return {back[k]: float(v) for k, v in costs.items() if k in back}


def _number(what: str, value: Any) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"evaluate returned {value!r} as {what}; expected a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"evaluate returned {number} as {what}; expected a finite number")
    return number
