"""An ablation as a search the runner can run: a space of (design cell, seed) points, a
sampler that proposes only points not yet run, and an evaluator that trains a point.

Every trial of an ablation study is one design cell trained with one seed. The points are
enqueued (so the dashboard and `normnas status` show the plan); `DesignSampler` proposes
the next missing point when the queue is empty (a retry after a kill, a race between
workers), never a point outside the design, and tells the runner the study is exhausted
once every point is done or running. Resume after a kill and several workers on one
storage therefore work as for a search.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from normnas.ablate.design import Cell, Design
from normnas.ablate.factors import DROPOUT, L1_STRENGTH, WEIGHT_DECAY
from normnas.search import records as rec
from normnas.search.evaluators import TrainEvaluator
from normnas.search.result import ReportFn, TrialResult
from normnas.spaces import Block, MacroArch, MacroSpace

SEED_PARAM = "seed"


@dataclass(frozen=True)
class Point:
    """One trial of an ablation: a design cell (one level per factor) and a training seed."""

    cell: Cell
    seed: int


class AblationSpace:
    """The points of a design: Optuna parameters are the factor names and `seed`.

    `build` builds the base architecture with the cell's norm and placement on every block;
    `settings` gives the training fields and regularizer a cell sets.
    """

    name = "ablation"

    def __init__(
        self,
        design: Design,
        seeds: Sequence[int],
        macro: MacroSpace,
        base_arch: MacroArch,
        seed_choices: Sequence[int] | None = None,
    ) -> None:
        self.design = design
        self.seeds = tuple(int(s) for s in seeds)
        # the `seed` parameter's choices: all the study's seeds even when only some are run
        # here (the --time probe runs seed 0 alone), since Optuna refuses a parameter whose
        # choices change between trials of one study
        self.seed_choices = self.seeds if seed_choices is None else tuple(seed_choices)
        self.macro = macro
        self.base_arch = macro.validate(base_arch)
        # seed-major: after a --time cut every cell has its first seeds, so pairs still form
        self.points = tuple(Point(c, s) for s in self.seeds for c in design.cells)

    # -- parameters ------------------------------------------------------------------------
    def distributions(self) -> dict[str, BaseDistribution]:
        out: dict[str, BaseDistribution] = {
            f.name: CategoricalDistribution(f.levels) for f in self.design.factors
        }
        out[SEED_PARAM] = CategoricalDistribution(self.seed_choices)
        return out

    def suggest(self, trial: optuna.Trial) -> Point:
        params = {n: trial.suggest_categorical(n, d.choices)  # type: ignore[attr-defined]
                  for n, d in self.distributions().items()}  # fmt: skip
        return self.from_params(params)

    def from_params(self, params: Mapping[str, Any]) -> Point:
        cell = []
        for f in self.design.factors:
            if f.name not in params or params[f.name] not in f.levels:
                raise ValueError(f"ablation: {f.name}={params.get(f.name)!r} is not a level")
            cell.append(f.levels[f.levels.index(params[f.name])])
        seed = params.get(SEED_PARAM)
        if seed not in self.seed_choices:
            raise ValueError(f"ablation: seed={seed!r} is not one of {list(self.seed_choices)}")
        return Point(tuple(cell), int(seed))

    def to_params(self, point: Point) -> dict[str, Any]:
        return {**self.design.as_dict(point.cell), SEED_PARAM: point.seed}

    # -- strings and identity ----------------------------------------------------------------
    def to_str(self, point: Point) -> str:
        """E.g. `norm=groupnorm batch_size=8 seed=1`."""
        return " ".join(f"{k}={v}" for k, v in self.to_params(point).items())

    def from_str(self, text: str) -> Point:
        params: dict[str, Any] = {}
        for token in text.split():
            key, _, value = token.partition("=")
            dist = self.distributions().get(key)
            if dist is None:
                raise ValueError(f"ablation: cannot read {token!r}")
            params[key] = next((c for c in dist.choices if str(c) == value), value)  # type: ignore[attr-defined]
        return self.from_params(params)

    def canonical(self, point: Point) -> Point:
        """The first placement level whose network is the same as this point's, by the
        network space's `canonical`: without a norm, conv→act→norm is conv→norm→act (and
        every seq placement is the same), so one run serves those cells."""
        names = self.design.names
        if "placement" not in names:
            return point
        i = names.index("placement")
        target = self.macro.canonical(self.arch_of(point))
        for level in self.design.factors[i].levels:
            cell = list(point.cell)
            cell[i] = level
            twin = Point(tuple(cell), point.seed)
            if self.macro.canonical(self.arch_of(twin)) == target:
                return twin
        return point

    def sample(self, rng: np.random.Generator) -> Point:
        return self.points[int(rng.integers(len(self.points)))]

    def mutate(self, point: Point, rng: np.random.Generator) -> Point:
        raise ValueError("ablation: a designed experiment has no moves; its points are fixed")

    def neighbors(self, point: Point) -> list[Point]:
        return []

    # -- what a point trains -----------------------------------------------------------------
    def arch_of(self, point: Point) -> MacroArch:
        """The base architecture with the cell's norm / placement on every block and, for the
        `dropout` regularizer, dropout before the classifier."""
        levels = self.design.as_dict(point.cell)
        changes = {k: levels[k] for k in ("norm", "placement") if k in levels}
        stages = tuple(
            tuple(dataclasses.replace(b, **changes) for b in stage)
            for stage in self.base_arch.stages
        )
        dropout = self.base_arch.dropout
        if "regularizer" in levels:
            dropout = DROPOUT if levels["regularizer"] == "dropout" else 0.0
        return type(self.base_arch)(stages, dropout)  # MacroArch or SeqArch: (stages, dropout)

    def settings(self, point: Point) -> tuple[dict[str, Any], str | None]:
        """(TrainConfig fields the cell sets, its regularizer or None)."""
        levels = self.design.as_dict(point.cell)
        changes: dict[str, Any] = {"seed": point.seed}
        for name in ("batch_size", "schedule", "lr", "bn_momentum"):
            if name in levels:
                changes[name] = levels[name]
        regularizer = levels.get("regularizer")
        if regularizer is not None:
            changes["weight_decay"] = WEIGHT_DECAY if regularizer == "l2" else 0.0
        return changes, regularizer

    def build(self, point: Point, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
        return self.macro.build(self.arch_of(point), num_classes, in_channels)


def fitted_macro_space(arch: MacroArch) -> MacroSpace:
    """A macro space that holds `arch` and every norm and placement (strides 1, 2, 2, ...:
    the macro space's default convention), so any cell's variant of `arch` is valid in it."""
    from normnas.nn import ALL_NORM_NAMES
    from normnas.spaces._macro_model import PLACEMENTS

    def uniq(values: Sequence[Any]) -> list[Any]:
        return list(dict.fromkeys(values))

    blocks = [b for s in arch.stages for b in s]
    stages = [
        {"widths": uniq(b.width for b in s), "min_blocks": len(s), "max_blocks": len(s),
         "stride": 1 if i == 0 else 2}
        for i, s in enumerate(arch.stages)
    ]  # fmt: skip
    return MacroSpace(
        stages=stages,
        kernels=uniq(b.kernel for b in blocks),
        norms=ALL_NORM_NAMES,
        placements=PLACEMENTS,
        activations=uniq(b.activation for b in blocks),
        residual=uniq(b.residual for b in blocks),
        dropout=uniq([arch.dropout, 0.0, DROPOUT]),
    )


def default_arch() -> MacroArch:
    """`macro-default`: three conv blocks (16, 32, 64 wide, 3x3, BN, conv→norm→act, ReLU)."""
    return MacroArch(
        tuple((Block(w, 3, "batchnorm", "conv_norm_act", "relu", False),) for w in (16, 32, 64)),
        0.0,
    )


def seq_default() -> tuple[Any, Any]:
    """`seq-default` (space, arch): a 7-wide conv block of 32 channels, then (after a pool
    of 2) a 5-wide conv block and a transformer block (4 heads, MLP ratio 2) of 64, every
    block LayerNorm, pre-norm: the sequence habit that an ablation varies."""
    from normnas.spaces.seq import SeqBlock, SeqSpace

    conv = SeqBlock("conv", 32, "layernorm", "pre", kernel=7, dilation=1)
    arch_stages = (
        (conv,),
        (
            SeqBlock("conv", 64, "layernorm", "pre", kernel=5, dilation=1),
            SeqBlock("attn", 64, "layernorm", "pre", heads=4, mlp_ratio=2),
        ),
    )
    from normnas.spaces.seq import SeqArch

    arch = SeqArch(arch_stages, 0.0)
    return SeqSpace.fitted(arch), arch


# -- regularizers that TrainConfig has no field for: gradient hooks ------------------------
def add_regularizer(model: nn.Module, regularizer: str | None) -> nn.Module:
    """`l1`: add L1_STRENGTH·sign(w) to the gradient of conv/linear weights; `bn-only`: add
    WEIGHT_DECAY·p to the gradient of the norm layers' scale and shift. With SGD these are
    exactly an L1 penalty and coupled weight decay on those parameters."""
    if regularizer == "l1":
        for p in model.parameters():
            if p.ndim > 1:
                p.register_hook(lambda g, p=p: g + L1_STRENGTH * p.detach().sign())
    elif regularizer == "bn-only":
        for m in model.modules():
            if "norm" in type(m).__name__.lower():
                for p in m.parameters(recurse=False):
                    p.register_hook(lambda g, p=p: g + WEIGHT_DECAY * p.detach())
    return model


class _RegularizedTrainEvaluator(TrainEvaluator):
    """TrainEvaluator with the cell's hook regularizer; times its cost measurement so that
    the time per epoch is the training's alone."""

    def __init__(self, *args: Any, regularizer: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.regularizer = regularizer
        self.metrics_s = 0.0

    def build(self, arch: MacroArch) -> nn.Module:
        return add_regularizer(super().build(arch), self.regularizer)

    def cost_metrics(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        start = time.perf_counter()
        try:
            return super().cost_metrics(*args, **kwargs)
        finally:
            self.metrics_s += time.perf_counter() - start


class AblationEvaluator:
    """Train one point with `TrainEvaluator` (the search's own judge) and its cell's settings.

    It takes no `time_limit_s`: a started run always finishes its epochs (a run cut short
    would be a different treatment), so `--time` may be overrun by one run.
    """

    def __init__(self, space: AblationSpace, data: Any, base: Any, warm_up: bool = True) -> None:
        self.space = space
        self.data = data
        self.base = base  # normnas.train.TrainConfig: everything a cell does not set
        if warm_up:
            # the first cost measurement and training step of a process take seconds of
            # one-off set-up: pay them here, not in the first cell's time per epoch
            judge = TrainEvaluator(space.macro, data, dataclasses.replace(base, epochs=1))
            model = judge.build(space.base_arch)
            judge.cost_metrics(space.base_arch, ("params", "flops", "macs"), model)
            x, y = data.train.on(torch.device(base.device))
            nn.functional.cross_entropy(model(x[:4]), y[:4]).backward()

    def evaluate(
        self, point: Point, fidelity: int | None = None, report: ReportFn | None = None
    ) -> TrialResult:
        changes, regularizer = self.space.settings(point)
        config = dataclasses.replace(self.base, **changes)
        judge = _RegularizedTrainEvaluator(
            self.space.macro, self.data, config, regularizer=regularizer
        )
        # no report: a designed run is never pruned (a cut run would be another treatment)
        result = judge.evaluate(self.space.arch_of(point), fidelity, None)
        epochs = int(result.extra.get("epochs") or 0)
        if epochs:  # training and validation, without the cost measurement
            result.extra["epoch_s"] = max(result.cost_s - judge.metrics_s, 0.0) / epochs
        return result


# -- the sampler ---------------------------------------------------------------------------
def _params_of(t: FrozenTrial) -> dict[str, Any]:
    if t.state == TrialState.WAITING:
        return dict(t.system_attrs.get("fixed_params") or {})
    return dict(t.params)


def covered_keys(study: optuna.Study, space: AblationSpace) -> set[str]:
    """Keys of the points that are done (a counted or duplicate result), running or queued."""
    out: set[str] = set()
    for t in study.get_trials(deepcopy=False):
        if t.state.is_finished():
            result = rec.result_of(t) or {}
            done = result.get("status") in rec.COUNTED or rec.ATTR_DUPLICATE in t.user_attrs
            if not done:
                continue
        params = _params_of(t)
        try:
            point = space.from_params(params)
        except (ValueError, TypeError):
            continue
        out.add(space.to_str(space.canonical(point)))
    return out


def missing_points(study: optuna.Study, space: AblationSpace) -> list[Point]:
    """The design's points not done, running or queued, in run order (one per key)."""
    covered = covered_keys(study, space)
    out = []
    for p in space.points:
        key = space.to_str(space.canonical(p))
        if key not in covered:
            covered.add(key)
            out.append(p)
    return out


class DesignSampler(optuna.samplers.BaseSampler):
    """Proposes the next missing point of the design; exhausted when none is left."""

    def __init__(self, space: AblationSpace) -> None:
        self.space = space

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.space.distributions()

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space or trial.system_attrs.get("fixed_params"):
            return {}  # an enqueued point: its parameters are fixed already
        todo = missing_points(study, self.space)
        return self.space.to_params(todo[0] if todo else self.space.points[0])

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return param_distribution.choices[0]  # type: ignore[attr-defined]  # never reached

    def exhausted_for(self, study: optuna.Study) -> bool:
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        return not waiting and not missing_points(study, self.space)
