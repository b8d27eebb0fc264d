"""evaluate() against scikit-learn's metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

from normnas.data import Split, load
from normnas.train import evaluate
from normnas.train.metrics import macro_scores


def test_matches_sklearn_on_digits_with_an_untrained_net() -> None:
    split = load("digits").test
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    model.train()
    m = evaluate(model, split, batch_size=50)
    assert model.training  # mode restored
    with torch.no_grad():
        logits = model(split.x)
    y, pred = split.y.numpy(), logits.argmax(1).numpy()
    assert m.n == len(split)
    assert m.accuracy == pytest.approx(skm.accuracy_score(y, pred))
    assert 0.0 < m.accuracy < 0.9  # an informative case: errors in many classes
    p, r, f, _ = skm.precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    assert (m.precision, m.recall, m.f1) == pytest.approx((p, r, f))
    assert np.array_equal(m.confusion, skm.confusion_matrix(y, pred, labels=range(10)))
    probs = torch.softmax(logits, 1).numpy()
    assert m.loss == pytest.approx(skm.log_loss(y, probs, labels=range(10)), rel=1e-4)


def test_classes_missing_from_labels_and_predictions_follow_sklearn() -> None:
    # labels use classes 0, 1, 3; predictions 0, 1, 2: class 4 is in neither
    y = torch.tensor([0, 0, 1, 1, 3, 3])
    logits = torch.full((6, 5), -5.0)
    for i, c in enumerate([0, 1, 1, 2, 3, 0]):
        logits[i, c] = 5.0
    model = nn.Identity()
    split = Split(logits[:, :, None, None], y)
    m = evaluate(nn.Sequential(nn.Flatten(), model), split)
    pred = logits.argmax(1).numpy()
    p, r, f, _ = skm.precision_recall_fscore_support(
        y.numpy(), pred, average="macro", zero_division=0
    )
    assert (m.precision, m.recall, m.f1) == pytest.approx((p, r, f))
    assert m.confusion.shape == (5, 5)


def test_macro_scores_perfect_and_empty() -> None:
    assert macro_scores(np.diag([3, 4])) == pytest.approx((1.0, 1.0, 1.0))
    assert macro_scores(np.zeros((2, 2), dtype=int)) == (0.0, 0.0, 0.0)


def test_empty_split_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        evaluate(nn.Flatten(), Split(torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.long)))
