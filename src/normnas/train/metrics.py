"""`evaluate(model, split) -> Metrics`: accuracy, loss, macro P/R/F1, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from normnas.data.split import Split


@dataclass
class Metrics:
    """Scores of a model on one split; fractions in [0, 1], `loss` is mean cross-entropy.

    Macro precision/recall/F1 average over the classes present in the labels or the
    predictions (as scikit-learn does by default), a 0/0 counting as 0.
    `confusion[i, j]` counts samples of true class i predicted as j (K x K, K = the
    model's number of outputs).
    """

    accuracy: float
    loss: float
    precision: float
    recall: float
    f1: float
    confusion: np.ndarray
    n: int

    def to_dict(self) -> dict[str, float | int | list[list[int]]]:
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "confusion": self.confusion.tolist(),
            "n": self.n,
        }


@torch.no_grad()
def predict(
    model: nn.Module, split: Split, batch_size: int = 512, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(summed cross-entropy as a 0-d tensor, predicted class per sample, number of outputs)
    in eval mode."""
    was_training = model.training
    model.eval()
    try:
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        preds = []
        outputs = 0
        for x, y in split.batches(batch_size, shuffle=False, device=device):
            out = model(x).float()
            loss_sum += F.cross_entropy(out, y, reduction="sum").double()
            preds.append(out.argmax(1))
            outputs = out.shape[1]
        pred = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long, device=device)
        return loss_sum, pred, outputs
    finally:
        model.train(was_training)


def macro_scores(confusion: np.ndarray) -> tuple[float, float, float]:
    """Macro precision, recall, F1 over classes seen in labels or predictions (0/0 -> 0)."""
    tp = np.diag(confusion).astype(np.float64)
    true = confusion.sum(1).astype(np.float64)
    pred = confusion.sum(0).astype(np.float64)
    present = (true + pred) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(pred > 0, tp / pred, 0.0)
        r = np.where(true > 0, tp / true, 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    if not present.any():
        return 0.0, 0.0, 0.0
    return float(p[present].mean()), float(r[present].mean()), float(f[present].mean())


def evaluate(
    model: nn.Module,
    split: Split,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    num_classes: int | None = None,
) -> Metrics:
    """Score `model` on `split` (eval mode, no grad; the model's mode is restored)."""
    if len(split) == 0:
        raise ValueError("evaluate: the split is empty")
    loss_sum, pred, outputs = predict(model, split, batch_size, device)
    y = split.y.to(pred.device)
    k = max(int(num_classes or outputs), int(y.max()) + 1)
    confusion = torch.bincount(y * k + pred, minlength=k * k).reshape(k, k).cpu().numpy()
    n = len(split)
    precision, recall, f1 = macro_scores(confusion)
    return Metrics(
        accuracy=float(np.trace(confusion)) / n,
        loss=float(loss_sum) / n,
        precision=precision,
        recall=recall,
        f1=f1,
        confusion=confusion.astype(np.int64),
        n=n,
    )
