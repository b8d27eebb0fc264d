"""TrainEvaluator: score an architecture by training it (the real, expensive evaluator)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection, Sequence
from typing import Any

import torch
from torch import nn

from normnas.errors import error_line as one_line  # a failed trial's record
from normnas.search.checkpoints import TrialCheckpoints, make_checkpoint
from normnas.search.records import check_objectives
from normnas.search.result import ReportFn, TrialResult
from normnas.search.runner import Constraints
from normnas.search.spaces import network_part
from normnas.spaces.base import Arch, SearchSpace

# Recipe fields (normnas.spaces.Recipe) that set TrainConfig fields of the same name
RECIPE_FIELDS = (
    "lr",
    "schedule",
    "optimizer",
    "weight_decay",
    "wd_on_norm_and_bias",
    "bn_momentum",
    "batch_size",
    "label_smoothing",
)


class TrainEvaluator:
    """Build the network, check constraints, train it with `normnas.train.fit`, report.

    Accuracy is the *final* epoch's validation accuracy (not the best epoch's): it is what
    the same recipe gives when retrained for the same epochs, and it does not reward lucky
    epochs. `fidelity` (epochs) overrides the config's epochs; per-epoch validation accuracy
    goes to `report` (pruners). Params and FLOPs are always measured (cheap); latency only
    when an objective or constraint needs it (or `measure_latency=True`). `cost_s` is the
    wall time of the whole evaluation. Exceptions become status `failed` with one line.
    For a JointSpace the recipe sets the TrainConfig fields of the same names.
    """

    def __init__(
        self,
        space: SearchSpace,
        data: Any,  # normnas.data.DataBundle
        train_config: Any = None,  # normnas.train.TrainConfig
        objectives: Sequence[str] = ("accuracy",),
        measure_latency: bool | None = None,
        constraints: Constraints | None = None,
        latency_device: str = "cpu",
        checkpoints: TrialCheckpoints | None = None,
    ) -> None:
        from normnas.train import TrainConfig

        self.space = space
        self.data = data
        self.train_config = train_config if train_config is not None else TrainConfig()
        self.objectives = check_objectives(objectives)
        self.constraints = constraints
        if measure_latency is None:
            measure_latency = "latency" in self.objectives or bool(
                constraints and constraints.max_latency_ms is not None
            )
        self.measure_latency = measure_latency
        self.latency_device = latency_device
        self.checkpoints = checkpoints  # where the best trials' trained weights are kept

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.data.in_channels, *self.data.image_size)  # (C, H, W) or (C, T)

    def config_for(self, arch: Arch, epochs: int | None = None) -> Any:
        """The TrainConfig of one trial: the base config, the arch's recipe, the fidelity."""
        _, _, recipe = network_part(self.space, arch)
        changes: dict[str, Any] = {}
        if recipe is not None:
            changes = {f: getattr(recipe, f) for f in RECIPE_FIELDS if hasattr(recipe, f)}
        if epochs is not None:
            changes["epochs"] = int(epochs)
            changes["warmup_epochs"] = min(self.train_config.warmup_epochs, int(epochs))
        return dataclasses.replace(self.train_config, **changes)

    def build(self, arch: Arch) -> nn.Module:
        torch.manual_seed(self.train_config.seed)  # same init for the same arch and seed
        return self.space.build(arch, self.data.num_classes, self.data.in_channels)

    def cost_metrics(
        self, arch: Arch, names: Collection[str] | None = None, model: nn.Module | None = None
    ) -> dict[str, float]:
        """params, flops, macs and latency_ms (those in `names`) of the arch's network, untrained.

        flops counts every op under `normnas.train.cost`'s convention; macs only multiply-adds.
        """
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
        """Train and score `arch`; `time_limit_s` caps its training (the runner's time left)."""
        from normnas.train import fit

        start = time.perf_counter()
        try:
            model = self.build(arch)
            names = ["params", "flops", "macs"] + (["latency_ms"] if self.measure_latency else [])
            cost = self.cost_metrics(arch, names, model)
            metrics = {
                "params": int(cost["params"]),
                "flops": int(cost["flops"]),
                "macs": int(cost["macs"]),
                "latency_ms": cost.get("latency_ms"),
            }
            why = self.constraints.violation(cost) if self.constraints else None
            if why is not None:
                return TrialResult(status="infeasible", error=why, **metrics)
            config = self.config_for(arch, fidelity)
            if time_limit_s is not None:
                cap = config.max_time_s
                limit = time_limit_s if cap is None else min(cap, time_limit_s)
                config = dataclasses.replace(config, max_time_s=limit)

            def callback(record: Any) -> bool:
                if report is None or record.valid_acc is None:
                    return False
                return bool(report(record.epoch, record.valid_acc))

            trained = fit(model, self.data, config, callback=callback)
        except Exception as exc:
            return TrialResult(
                status="failed", error=one_line(exc), cost_s=time.perf_counter() - start
            )
        status = {"ok": "ok", "diverged": "diverged", "timeout": "timeout", "stopped": "pruned"}
        extra: dict[str, Any] = {"seed": config.seed, "epochs": trained.epochs_run}
        if trained.status == "ok" and trained.final_valid_acc is not None:
            kept = self._keep(arch, model, trained)
            if kept is not None:
                extra["weights"] = kept
        return TrialResult(
            status=status[trained.status],  # type: ignore[arg-type]
            accuracy=trained.final_valid_acc,
            curve=trained.valid_curve,
            cost_s=time.perf_counter() - start,
            error=trained.error,
            extra=extra,
            **metrics,
        )

    def _keep(self, arch: Arch, model: nn.Module, trained: Any) -> str | None:
        """Save the trained network among the best trials' checkpoints; the file's name."""
        if self.checkpoints is None or not self.checkpoints.wanted(trained.final_valid_acc):
            return None
        model.eval()
        checkpoint = make_checkpoint(
            self.space, arch, self.data, model,
            valid_accuracy=float(trained.final_valid_acc),
            epochs_run=int(trained.epochs_run),
            source="trial",
        )  # fmt: skip
        key = self.space.to_str(self.space.canonical(arch))
        path = self.checkpoints.add(key, float(trained.final_valid_acc), checkpoint)
        return None if path is None else path.name
