"""Judges built on a trained supernet, as Evaluators every search strategy runs on unchanged.

- `SupernetEvaluator`: accuracy = the sub-network's validation accuracy with the shared
  weights under a BN mode (`running`, `batch`, `recalibrate`).
- `BNIndicatorEvaluator`: accuracy = the BN-scale score (`bn_score`), a number to rank by,
  not a fraction; `extra["accuracy_is"] = "bn_score"` says so.

`cost_s` is the measured wall time of each query (recalibration included). Both have
`cost_metrics(arch, names)` (params, flops, macs, latency_ms of `space.build(arch)` at the
supernet's size), so constraints work as with training. `prepare_supernet` trains the
supernet a study needs, or loads it from its finished checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normnas.data.split import DataBundle
from normnas.errors import ConfigError
from normnas.errors import error_line as one_line  # a failed trial's record
from normnas.oneshot.base import Supernet
from normnas.oneshot.bn_modes import (
    BN_MODES,
    DEFAULT_CALIB_BATCH_SIZE,
    DEFAULT_CALIB_BATCHES,
    BNMode,
    calibration_batches,
    evaluate_subnet,
)
from normnas.oneshot.indicator import bn_score, train_bn_indicator
from normnas.oneshot.training import SAMPLINGS, train_supernet
from normnas.search.result import ReportFn, TrialResult
from normnas.spaces.base import Arch, SearchSpace
from normnas.train.config import TrainConfig


class _CostMetrics:
    """params/flops/macs/latency_ms of the stand-alone network of an arch, untrained."""

    supernet: Supernet
    input_shape: tuple[int, int, int]
    latency_device: str

    def build(self, arch: Arch) -> nn.Module:
        net: Any = self.supernet
        kwargs = {k: getattr(net, k) for k in ("C", "N") if hasattr(net, k)}
        space = self.supernet.space
        return space.build(arch, net.num_classes, net.in_channels, **kwargs)

    def cost_metrics(
        self, arch: Arch, names: Collection[str] | None = None, model: nn.Module | None = None
    ) -> dict[str, float]:
        from normnas.train.cost import network_costs

        model = self.build(arch) if model is None else model
        return network_costs(model, self.input_shape, names, self.latency_device)

    def _params(self, arch: Arch) -> int | None:
        count = getattr(self.supernet.space, "param_count", None)
        net: Any = self.supernet
        if callable(count) and hasattr(net, "C"):
            return int(count(arch, C=net.C, N=net.N, num_classes=net.num_classes,
                             in_channels=net.in_channels))  # fmt: skip
        return int(self.cost_metrics(arch, ("params",))["params"])


class SupernetEvaluator(_CostMetrics):
    """Score a sub-network by its validation accuracy with the supernet's shared weights.

    `bn_mode` picks its BN statistics (see `normnas.oneshot.bn_modes`); `recalibrate`
    uses `calib_batches` fixed batches of the training split (the same for every arch).
    `fidelity` is ignored (the supernet is trained once). The supernet must be trained.
    """

    def __init__(
        self,
        supernet: Supernet,
        data: DataBundle,
        bn_mode: BNMode = "recalibrate",
        calib_batches: int = DEFAULT_CALIB_BATCHES,
        calib_batch_size: int = DEFAULT_CALIB_BATCH_SIZE,
        batch_size: int = 256,
        seed: int = 0,
        latency_device: str = "cpu",
    ) -> None:
        if bn_mode not in BN_MODES:
            raise ConfigError(f"bn_mode: expected one of {', '.join(BN_MODES)}, got {bn_mode!r}")
        if calib_batches < 1:
            raise ConfigError(f"calib_batches: expected an integer >= 1, got {calib_batches}")
        self.supernet, self.data, self.bn_mode = supernet, data, bn_mode
        self.space: SearchSpace = supernet.space
        self.calib_batches, self.batch_size, self.seed = calib_batches, batch_size, seed
        h, w = data.image_size
        self.input_shape = (data.in_channels, h, w)
        self.latency_device = latency_device
        self._batches: list[torch.Tensor] | None = None
        self.calib_batch_size = calib_batch_size

    def evaluate(
        self,
        arch: Arch,
        fidelity: int | None = None,
        report: ReportFn | None = None,
        time_limit_s: float | None = None,
    ) -> TrialResult:
        start = time.perf_counter()
        try:
            device = next(self.supernet.parameters()).device  # type: ignore[attr-defined]
            if self.bn_mode == "recalibrate" and self._batches is None:
                self._batches = calibration_batches(
                    self.data.train, self.calib_batches, self.calib_batch_size, self.seed, device
                )
            score = evaluate_subnet(
                self.supernet,
                arch,
                self.data.valid,
                self.bn_mode,
                calib_batches=self._batches or self.calib_batches,
                batch_size=self.batch_size,
            )
            params = self._params(arch)
        except Exception as exc:
            return TrialResult(
                status="failed", error=one_line(exc), cost_s=time.perf_counter() - start
            )
        return TrialResult(
            status="ok",
            accuracy=score.accuracy,
            params=params,
            cost_s=time.perf_counter() - start,
            extra={
                "judge": "supernet",
                "bn_mode": self.bn_mode,
                "calib_batches": self.calib_batches if self.bn_mode == "recalibrate" else 0,
                "valid_loss": score.loss,
            },
        )


class BNIndicatorEvaluator(_CostMetrics):
    """Score a sub-network by BN-NAS's BN-scale indicator (`bn_score`), no data needed.

    The score goes under `accuracy` so every strategy maximizes it unchanged; it is not a
    fraction (a sum of mean |gamma| over the path's ops), and `extra["accuracy_is"]` is
    `"bn_score"`. The supernet must have been trained by `train_bn_indicator`.
    """

    def __init__(
        self,
        supernet: Supernet,
        data: DataBundle | None = None,
        latency_device: str = "cpu",
    ) -> None:
        self.supernet = supernet
        self.space: SearchSpace = supernet.space
        # the input size only matters to flops/macs/latency in cost_metrics
        h, w = data.image_size if data is not None else (32, 32)
        self.input_shape = (supernet.in_channels, h, w)
        self.latency_device = latency_device

    def evaluate(
        self,
        arch: Arch,
        fidelity: int | None = None,
        report: ReportFn | None = None,
        time_limit_s: float | None = None,
    ) -> TrialResult:
        start = time.perf_counter()
        try:
            score = bn_score(self.supernet, arch)
            params = self._params(arch)
        except Exception as exc:
            return TrialResult(
                status="failed", error=one_line(exc), cost_s=time.perf_counter() - start
            )
        return TrialResult(
            status="ok",
            accuracy=score,
            params=params,
            cost_s=time.perf_counter() - start,
            extra={"judge": "bn-indicator", "accuracy_is": "bn_score"},
        )


@dataclass
class SupernetOptions:
    """How the supernet of a study is built and trained.

    `judge="supernet"` trains it with SPOS/FairNAS (`sampling`) for the TrainConfig's
    epochs; `judge="bn-indicator"` runs `train_bn_indicator` (`warmup_epochs` of all
    weights, then `bn_epochs` of BN affine only; the TrainConfig's epochs are unused).
    `C`/`N`: width and cells per stage of the NB201 supernet (other spaces ignore them).
    `few_shot` (an NB201 edge, 0-5 or a name like `3<-0`): split the supernet on that edge
    into five sub-supernets (`normnas.oneshot.few_shot`), spending `few_shot_fraction` of
    the epochs on them. `sampling="sandwich"` needs the macro supernet.
    """

    judge: str = "supernet"
    sampling: str = "uniform"
    affine: bool = True
    C: int = 16
    N: int = 5
    warmup_epochs: int = 2
    bn_epochs: int = 5
    few_shot: int | str | None = None
    few_shot_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.judge not in ("supernet", "bn-indicator"):
            raise ConfigError(f"judge: expected 'supernet' or 'bn-indicator', got {self.judge!r}")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(
                f"sampling: expected one of {', '.join(SAMPLINGS)}, got {self.sampling!r}"
            )
        if self.judge == "bn-indicator" and not self.affine:
            raise ConfigError("affine: the BN indicator needs affine=True (it scores |gamma|)")
        for name in ("C", "N", "bn_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs: expected >= 0, got {self.warmup_epochs}")
        if self.few_shot is not None:
            from normnas.oneshot.few_shot import parse_edge

            try:
                self.few_shot = parse_edge(self.few_shot)
            except ValueError as exc:
                raise ConfigError(f"few_shot: {exc}") from None
            if self.judge != "supernet":
                raise ConfigError("few_shot: only the supernet judge splits (not bn-indicator)")
            if not 0 < self.few_shot_fraction < 1:
                raise ConfigError(
                    f"few_shot_fraction: expected a number in (0, 1), got {self.few_shot_fraction}"
                )


def make_supernet(
    space: SearchSpace, num_classes: int, in_channels: int, options: SupernetOptions
) -> Supernet:
    """The supernet of `space` (NB201 here; the macro space's lives in supernet_macro)."""
    if getattr(space, "name", None) == "nb201":
        from normnas.oneshot.supernet_nb201 import NB201Supernet

        return NB201Supernet(  # type: ignore[return-value]
            space,  # type: ignore[arg-type]
            num_classes,
            in_channels,
            C=options.C,
            N=options.N,
            affine=options.affine,
        )
    if getattr(space, "name", None) == "macro":
        from normnas.oneshot import supernet_macro

        return supernet_macro.MacroSupernet(  # type: ignore[attr-defined,no-any-return]
            space, num_classes, in_channels, affine=options.affine
        )
    raise ConfigError(
        f"space: no supernet for the {getattr(space, 'name', space)!r} space "
        "(weight sharing supports nb201 and macro)"
    )


def prepare_supernet(
    space: SearchSpace,
    data: DataBundle,
    train_config: TrainConfig,
    options: SupernetOptions | None = None,
    checkpoint_path: str | Path | None = None,
) -> Supernet:
    """Build and train the supernet a study judges with (or reuse its checkpoint).

    With `checkpoint_path` (beside the study, e.g. `<study>.supernet.pt`), training
    checkpoints there every epoch; a rerun resumes a killed training and a finished one is
    only loaded. The supernet is initialised with `train_config.seed`.
    """
    options = options or SupernetOptions()
    if options.few_shot is not None and getattr(space, "name", None) != "nb201":
        raise ConfigError(
            f"few_shot: splitting is for the nb201 space's supernet, not {space.name!r}"
        )
    if options.sampling == "sandwich" and getattr(space, "name", None) != "macro":
        raise ConfigError(
            "sampling: sandwich needs sub-networks of different sizes (the macro space), "
            f"not {getattr(space, 'name', space)!r}"
        )
    torch.manual_seed(train_config.seed)
    supernet = make_supernet(space, data.num_classes, data.in_channels, options)
    if options.few_shot is not None:
        return _prepare_few_shot(supernet, data, train_config, options, checkpoint_path)
    if options.judge == "bn-indicator":
        _, result = train_bn_indicator(
            supernet,
            data,
            options.warmup_epochs,
            options.bn_epochs,
            train_config,
            options.sampling,  # type: ignore[arg-type]
            checkpoint_path,
        )
    else:
        result = train_supernet(
            supernet,
            data,
            train_config,
            options.sampling,  # type: ignore[arg-type]
            checkpoint_path,
        )
    if result.status == "diverged":
        raise ConfigError(
            f"supernet training diverged ({result.error}); lower the learning rate (--lr)"
        )
    return supernet


def _prepare_few_shot(
    supernet: Supernet,
    data: DataBundle,
    train_config: TrainConfig,
    options: SupernetOptions,
    checkpoint_path: str | Path | None,
) -> Supernet:
    """The one-shot supernet for its share of the epochs, then its five sub-supernets."""
    import dataclasses

    from normnas.oneshot.few_shot import few_shot_epochs, split_supernet, train_few_shot

    try:
        first, per_sub = few_shot_epochs(train_config.epochs, options.few_shot_fraction)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    sampling = options.sampling
    result = train_supernet(
        supernet,
        data,
        dataclasses.replace(train_config, epochs=first),
        sampling,  # type: ignore[arg-type]
        checkpoint_path,
    )
    _check_diverged(result.status, result.error)
    if result.status != "ok":  # out of time: judge with the one-shot supernet as it is
        return supernet
    fewshot = split_supernet(supernet, options.few_shot)  # type: ignore[arg-type]
    subs = train_few_shot(
        fewshot,
        data,
        dataclasses.replace(train_config, epochs=per_sub),
        sampling,  # type: ignore[arg-type]
        checkpoint_path,
    )
    for r in subs.values():
        _check_diverged(r.status, r.error)
    return fewshot  # type: ignore[return-value]


def _check_diverged(status: str, error: str | None) -> None:
    if status == "diverged":
        raise ConfigError(f"supernet training diverged ({error}); lower the learning rate (--lr)")
