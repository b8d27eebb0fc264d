"""The final model's diagnostics, measured once and kept in the study so that a report can
be built from the storage alone (on another machine, from a copied database).

Study attribute `final_model`: `checkpoint` (path when measured), `arch`, `test_accuracy`,
`params`, `flops`, `macs`, `latency_ms` and `latency_folded_ms` (batch-1 CPU latency
by `measure_latency`'s protocol, as trained and with BatchNorm folded into the
convolutions; None when nothing folds), how they were measured (`latency_load`, the
1-minute load average; `latency_cores`; `latency_threads`; `latency_reliable`, False when
either figure is not to be trusted), and `bn`: `bn_report`'s rows, each with `gamma_hist`
({edges, counts} of γ).
The search records it right after saving the final model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

FINAL_MODEL_ATTR = "final_model"
GAMMA_BINS = 12
LATENCY_NEEDS_S = 3.0  # the two timings of a small model on a loaded machine, with a margin


def measure_final_model(checkpoint: Path, latency_runs: int = 30) -> dict[str, Any]:
    """The diagnostics of the checkpoint's model (see the module doc)."""
    import torch

    from normnas.nn import bn_report, fold_bn
    from normnas.nn.batchnorm import is_batchnorm
    from normnas.search.final import load
    from normnas.train import Latency, measure_latency
    from normnas.train.cost import count_ops

    model, ckpt = load(checkpoint)
    shape = (int(ckpt["in_channels"]), *(int(s) for s in ckpt["image_size"]))
    ops = count_ops(model, shape)
    rows = bn_report(model)
    layers = [m for _, m in model.named_modules() if is_batchnorm(m)]
    for row, layer in zip(rows, layers, strict=True):
        if layer.weight is None:
            row["gamma_hist"] = None
            continue
        gamma = layer.weight.detach().double().cpu()
        lo, hi = float(gamma.min()), float(gamma.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        counts = torch.histc(gamma, bins=GAMMA_BINS, min=lo, max=hi)
        step = (hi - lo) / GAMMA_BINS
        row["gamma_hist"] = {
            "edges": [lo + k * step for k in range(GAMMA_BINS + 1)],
            "counts": [int(c) for c in counts.tolist()],
        }
    if latency_runs < 1:  # asked not to time it
        return {**_figures(model, ckpt, ops, checkpoint), "bn": rows, "latency_ms": None}
    latency = measure_latency(model, shape, batch_size=1, runs=latency_runs)
    folded: Latency | None = None
    if layers:
        try:
            net = fold_bn(model).eval()
            if sum(is_batchnorm(m) for m in net.modules()) < len(layers):  # something folded
                folded = measure_latency(net, shape, batch_size=1, runs=latency_runs)
        except Exception:  # a model whose BN does not fold: report the plain latency only
            folded = None
    # the two figures are compared in the report: one unreliable makes the pair so
    timed = [latency] if folded is None else [latency, folded]
    return {
        **_figures(model, ckpt, ops, checkpoint),
        "latency_ms": latency.median_ms,
        "latency_folded_ms": None if folded is None else folded.median_ms,
        "latency_load": max((t.load for t in timed if t.load is not None), default=None),
        "latency_cores": latency.cores,
        "latency_threads": latency.threads,
        "latency_reliable": all(t.reliable for t in timed),
        "bn": rows,
    }


def _figures(model: Any, ckpt: dict[str, Any], ops: Any, checkpoint: Path) -> dict[str, Any]:
    from normnas.train import count_params

    return {
        "checkpoint": str(checkpoint),
        "arch": ckpt.get("arch"),
        "test_accuracy": ckpt.get("test_accuracy"),
        "source": ckpt.get("source", "retrain"),
        "params": count_params(model),
        "flops": ops.flops,
        "macs": ops.macs,
    }


def record_final_model(
    study: optuna.Study, checkpoint: Path, time_left_s: float | None = None
) -> dict[str, Any]:
    """Measure the checkpoint's model and store the result as the study's `final_model`.

    With under LATENCY_NEEDS_S of `time_left_s` (the --time budget) the latency is not timed
    (`latency_ms` None, `latency_skipped` says why): a budget is a promise."""
    timed = time_left_s is None or time_left_s >= LATENCY_NEEDS_S
    diag = measure_final_model(checkpoint, latency_runs=30 if timed else 0)
    if not timed:
        diag["latency_skipped"] = "no time left in the --time budget"
    study.set_user_attr(FINAL_MODEL_ATTR, diag)
    return diag
