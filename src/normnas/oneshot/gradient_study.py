"""A gradient-based search as a study: train the relaxed supernet, derive, record one trial.

`run_gradient` is what `normnas search --method darts|gdas|drnas` runs instead of the
sampling loop. The relaxed supernet trains with a checkpoint per epoch beside the study
(a killed run resumes from its last finished epoch); after every epoch the history
(losses, accuracies, the cell derived so far, the entropy and the architecture weights) is
written to the study's user attr `gradient_history`. The derived architecture then
becomes one trial of the study, through the same runner as every search: its accuracy is
the derived sub-network's validation accuracy with the supernet's weights (BN statistics
recalibrated on training batches, since the searched cells keep none by default), its
curve the supernet's validation accuracy per epoch. `best`, `export`, reports and the final
retrain from scratch then treat it like any other trial.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from normnas.errors import ConfigError
from normnas.errors import error_line as one_line
from normnas.oneshot.evaluators import _CostMetrics
from normnas.search.result import ReportFn, TrialResult
from normnas.spaces.base import Arch, SearchSpace

HISTORY_ATTR = "gradient_history"
RESULT_ATTR = "gradient_result"
CALIB_BATCHES = 16  # training batches whose statistics the derived sub-network's BN gets


def make_relaxed(space: SearchSpace, data: Any, options: Any, C: int = 16, N: int = 5) -> nn.Module:
    """The relaxed supernet of `space` (NB201 cells with C channels and N cells per stage,
    or macro blocks) for `data`'s shapes."""
    from normnas.spaces.macro import MacroSpace
    from normnas.spaces.nb201 import NB201Space

    bn = {"affine": options.affine, "track_running_stats": options.track_running_stats}
    if isinstance(space, NB201Space):
        from normnas.oneshot.relaxed_nb201 import RelaxedNB201

        return RelaxedNB201(space, data.num_classes, data.in_channels, C=C, N=N, **bn)
    if isinstance(space, MacroSpace):
        from normnas.oneshot.relaxed_macro import RelaxedMacro

        return RelaxedMacro(space, data.num_classes, data.in_channels, **bn)
    raise ConfigError(
        f"--method: gradient methods relax the nb201 and macro spaces, not {space.name!r}"
    )


class DerivedEvaluator(_CostMetrics):
    """The derived architecture's validation accuracy with the relaxed supernet's weights."""

    def __init__(
        self, relaxed: Any, data: Any, result: Any, seed: int = 0, latency_device: str = "cpu"
    ) -> None:
        self.supernet = relaxed
        self.space: SearchSpace = relaxed.space
        self.data, self.result, self.seed = data, result, seed
        self.input_shape = (data.in_channels, *data.image_size)
        self.latency_device = latency_device

    def build(self, arch: Arch) -> nn.Module:  # the network the final retrain trains
        return self.space.build(arch, self.data.num_classes, self.data.in_channels)

    def evaluate(
        self,
        arch: Arch,
        fidelity: int | None = None,
        report: ReportFn | None = None,
        time_limit_s: float | None = None,
    ) -> TrialResult:
        from normnas.nn import recalibrate_bn
        from normnas.oneshot.bn_modes import calibration_batches
        from normnas.train.metrics import evaluate

        start = time.perf_counter()
        try:
            net = self.supernet.subnet(arch)
            device = next(net.parameters()).device
            batches = calibration_batches(self.data.train, CALIB_BATCHES, 128, self.seed, device)
            recalibrate_bn(net, batches)
            score = evaluate(net, self.data.valid, device=device)
            params = int(self.cost_metrics(arch, ("params",))["params"])
        except Exception as exc:
            return TrialResult(
                status="failed", error=one_line(exc), cost_s=time.perf_counter() - start
            )
        history = self.result.history
        return TrialResult(
            status="ok",
            accuracy=float(score.accuracy),
            params=params,
            cost_s=self.result.seconds + time.perf_counter() - start,
            curve=[float(e.valid_acc) for e in history],
            extra={
                "judge": "gradient",
                "method": self.result.selection.get("method"),
                "order": self.result.selection.get("order"),
                "selection": self.result.selection.get("selection"),
                "search_s": self.result.seconds,
                "search_epochs": len(history),
                "entropy": history[-1].entropy if history else None,
                "valid_loss": float(score.loss),
            },
        )


def gradient_options(cfg: Any, train_config: Any, max_epochs: int | None = None) -> Any:
    """`GradientOptions` from a RunConfig (`cfg.gradient`, `cfg.method`, seed, device)."""
    from normnas.oneshot.gradient import GradientOptions

    g = cfg.gradient
    epochs = g.epochs if g.epochs is not None else train_config.epochs
    return GradientOptions(
        method=cfg.method,
        order=g.order,
        epochs=epochs if max_epochs is None else min(epochs, max_epochs),
        batch_size=g.batch_size,
        w_lr=g.w_lr,
        arch_lr=g.arch_lr,
        tau_max=g.tau_max,
        tau_min=g.tau_min,
        drnas_reg=g.drnas_reg,
        selection=g.selection,
        exclude_none=g.exclude_none,
        pt_tune_epochs=g.pt_tune_epochs,
        affine=g.affine,
        track_running_stats=g.track_running_stats,
        seed=cfg.seed,
        device=cfg.device,
    )


def epoch_line(epoch: Any, epochs: int) -> str:
    """One plain line per epoch: what a user watching a gradient search wants to see."""
    return (
        f"epoch {epoch.epoch + 1}/{epochs}  loss {epoch.train_loss:.3f}  "
        f"train {epoch.train_acc:.3f}  valid {epoch.valid_acc:.3f}  "
        f"entropy {epoch.entropy:.3f}  {epoch.seconds:.1f}s  cell {epoch.derived}"
    )


def run_gradient(
    study: optuna.Study,
    space: SearchSpace,
    data: Any,
    options: Any,
    checkpoint: str | Path,
    max_time_s: float | None = None,
    echo: Callable[[str], None] | None = print,
    C: int = 16,
    N: int = 5,
) -> tuple[Any, DerivedEvaluator]:
    """Train (or resume) the relaxed supernet of `space` and derive its architecture.

    Returns the `GradientResult` and the evaluator that scores the derived arch as a trial
    (the caller runs it through the runner). The history goes to the study after every
    epoch, so a killed run leaves what it learnt.
    """
    from normnas.oneshot.gradient import search_gradient

    torch.manual_seed(options.seed)
    relaxed = make_relaxed(space, data, options, C, N).to(options.device)
    history: list[dict[str, Any]] = []

    def on_epoch(epoch: Any) -> None:
        history.append(epoch.to_dict())
        study.set_user_attr(HISTORY_ATTR, history)
        if echo is not None:
            echo(epoch_line(epoch, options.epochs))

    result = search_gradient(
        relaxed, data, options, checkpoint=checkpoint, on_epoch=on_epoch, max_time_s=max_time_s
    )
    # a resumed run only saw its own epochs: the whole history is the result's
    study.set_user_attr(HISTORY_ATTR, [e.to_dict() for e in result.history])
    study.set_user_attr(
        RESULT_ATTR,
        {
            "arch": result.arch_str,
            "seconds": result.seconds,
            "selection": result.selection,
            "decisions": [[d.name, list(d.options)] for d in relaxed.decisions],
        },
    )
    return result, DerivedEvaluator(relaxed, data, result, seed=options.seed)
