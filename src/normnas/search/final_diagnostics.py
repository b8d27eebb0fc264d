"""The final model's diagnostics, measured once and kept in the study so that a report can
be built from the storage alone (on another machine, from a copied database).

Study attribute `final_model`: `checkpoint` (path when measured), `arch`, `test_accuracy`,
`params`, `flops`, `macs`, `latency_ms` and `latency_folded_ms` (median batch-1 CPU
latency, as trained and with BatchNorm folded into the convolutions; None when nothing
folds), and `bn`: `bn_report`'s rows, each with `gamma_hist` ({edges, counts} of γ).
The search records it right after saving the final model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

FINAL_MODEL_ATTR = "final_model"
GAMMA_BINS = 12


def measure_final_model(checkpoint: Path, latency_runs: int = 30) -> dict[str, Any]:
    """The diagnostics of the checkpoint's model (see the module doc)."""
    import torch

    from normnas.nn import bn_report, fold_bn
    from normnas.nn.batchnorm import is_batchnorm
    from normnas.search.final import load
    from normnas.train import count_params, measure_latency
    from normnas.train.cost import count_ops

    model, ckpt = load(checkpoint)
    h, w = ckpt["image_size"]
    shape = (int(ckpt["in_channels"]), int(h), int(w))
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
    latency = measure_latency(model, shape, batch_size=1, runs=latency_runs).median_ms
    folded: float | None = None
    if layers:
        try:
            net = fold_bn(model).eval()
            if sum(is_batchnorm(m) for m in net.modules()) < len(layers):  # something folded
                folded = measure_latency(net, shape, batch_size=1, runs=latency_runs).median_ms
        except Exception:  # a model whose BN does not fold: report the plain latency only
            folded = None
    return {
        "checkpoint": str(checkpoint),
        "arch": ckpt.get("arch"),
        "test_accuracy": ckpt.get("test_accuracy"),
        "params": count_params(model),
        "flops": ops.flops,
        "macs": ops.macs,
        "latency_ms": latency,
        "latency_folded_ms": folded,
        "bn": rows,
    }


def record_final_model(study: optuna.Study, checkpoint: Path) -> dict[str, Any]:
    """Measure the checkpoint's model and store the result as the study's `final_model`."""
    diag = measure_final_model(checkpoint)
    study.set_user_attr(FINAL_MODEL_ATTR, diag)
    return diag
