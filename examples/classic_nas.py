"""The classic NAS workflow, end to end on digits, in well under a minute on a CPU:

1. the search space as a list of layers, each field a value or a list of choices;
2. an evaluation function of your own: `evaluate(model, data)` trains the candidate briefly
   and returns its metrics;
3. an evolutionary search given by generations and population size;
4. the best architecture trained on train+valid and tested once (normnas's final retrain).

OMP_NUM_THREADS=1 .venv/bin/python examples/classic_nas.py [--storage sqlite:///classic.db]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import normnas
from normnas.spaces import LayerSpace

LAYERS = [
    {"type": "conv", "filters": [8, 16, 32], "kernel_size": [3, 5], "norm": ["bn", "gn", "none"],
     "placement": ["conv_norm_act", "conv_act_norm"]},
    {"type": "pool", "kind": ["max", "avg"], "size": 2},
    {"type": "conv", "filters": [16, 32], "norm": ["bn", "none"], "repeat": [1, 2]},
    {"type": "dropout", "rate": [0.0, 0.25], "optional": True},
    {"type": "dense", "units": [32, 64], "optional": True},
]  # fmt: skip


def evaluate(model: nn.Module, data: normnas.data.DataBundle) -> dict[str, float]:
    """Two epochs of Adam on the training split; accuracy on the validation split."""
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = data.train.x, data.train.y
    for _ in range(2):
        model.train()
        for batch in torch.randperm(len(y), generator=generator).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        correct = (model(data.valid.x).argmax(1) == data.valid.y).float().mean()
    return {"accuracy": float(correct), "params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", help="study storage (default: a temporary SQLite file)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="classic-nas-"))
    storage = args.storage or f"sqlite:///{folder / 'classic.db'}"

    space = LayerSpace(LAYERS, input_size=8)  # digits are 8x8: shapes are checked now
    outcome = normnas.search(
        space=space,
        data="digits",
        evaluate=evaluate,
        objectives=["accuracy"],
        strategy="evolution",
        generations=3,  # 3 x 5 = 15 evaluations: a random population of 5, then 2 x 5
        population_size=5,  # children of tournament winners, the oldest aging out
        epochs=6,  # for the final retrain of the best on train+valid
        storage=storage,
        study="classic-nas",
        seed=0,
    )
    assert outcome.best is not None and outcome.summary is not None
    print(f"{outcome.summary.n_total} architectures evaluated")
    print(f"best #{outcome.best.number}: validation accuracy {outcome.best.values[0]:.3f}")
    print(f"  {outcome.best.arch}")
    print(f"test accuracy of the retrained best: {outcome.test_accuracy:.3f}")
    print(f"model: {outcome.model_path}")


if __name__ == "__main__":
    main()
