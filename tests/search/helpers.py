"""A cheap real evaluator for search tests: NAS-Bench-201's packaged CIFAR-10 table."""

from __future__ import annotations

import csv
import gzip
from functools import cache
from pathlib import Path
from typing import ClassVar

import normnas
from normnas.search.result import ReportFn, TrialResult
from normnas.spaces import NB201Space

TABLE = Path(normnas.__file__).parent / "bench" / "data" / "nb201_cifar10.csv.gz"


@cache
def table() -> dict[str, tuple[float, float]]:
    with gzip.open(TABLE, "rt") as f:
        return {
            r["arch"]: (float(r["valid_acc_200ep"]) / 100, 12 * float(r["train_time_per_epoch_s"]))
            for r in csv.DictReader(f)
        }


class TableEvaluator:
    """Looks an NB201 cell up in the table: accuracy = 200-epoch valid accuracy."""

    def __init__(self, space: NB201Space) -> None:
        self.space = space
        self.calls = 0

    def evaluate(
        self, arch: tuple[str, ...], fidelity: int | None = None, report: ReportFn | None = None
    ) -> TrialResult:
        self.calls += 1
        acc, cost = table()[self.space.to_str(arch)]
        return TrialResult(
            status="ok", accuracy=acc, params=self.space.param_count(arch), cost_s=cost
        )

    def cost_metrics(self, arch: tuple[str, ...], names: tuple[str, ...] = ()) -> dict[str, float]:
        return {"params": float(self.space.param_count(arch))}


class TinySpace:
    """Six architectures (a in 0..2, b in x/y): small enough to exhaust."""

    name = "tiny"
    _choices: ClassVar[dict] = {"a": (0, 1, 2), "b": ("x", "y")}

    def distributions(self):  # type: ignore[no-untyped-def]
        from optuna.distributions import CategoricalDistribution

        return {k: CategoricalDistribution(v) for k, v in self._choices.items()}

    def suggest(self, trial):  # type: ignore[no-untyped-def]
        return tuple(trial.suggest_categorical(k, v) for k, v in self._choices.items())

    def from_params(self, params):  # type: ignore[no-untyped-def]
        return (params["a"], params["b"])

    def to_params(self, arch):  # type: ignore[no-untyped-def]
        return {"a": arch[0], "b": arch[1]}

    def sample(self, rng):  # type: ignore[no-untyped-def]
        return (int(rng.integers(3)), ("x", "y")[int(rng.integers(2))])

    def mutate(self, arch, rng):  # type: ignore[no-untyped-def]
        options = [n for n in self.neighbors(arch)]
        return options[int(rng.integers(len(options)))]

    def neighbors(self, arch):  # type: ignore[no-untyped-def]
        a, b = arch
        return [(x, b) for x in (0, 1, 2) if x != a] + [(a, "y" if b == "x" else "x")]

    def to_str(self, arch):  # type: ignore[no-untyped-def]
        return f"{arch[0]}{arch[1]}"

    def from_str(self, text):  # type: ignore[no-untyped-def]
        return (int(text[0]), text[1])

    def canonical(self, arch):  # type: ignore[no-untyped-def]
        return arch

    def build(self, arch, num_classes=10, in_channels=3):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def __len__(self) -> int:
        return 6


class TinyEvaluator:
    def __init__(self, fail: set[tuple] | None = None, steps: int = 0) -> None:
        self.fail = fail or set()
        self.steps = steps
        self.seen: list[tuple] = []

    def evaluate(self, arch, fidelity=None, report=None) -> TrialResult:  # type: ignore[no-untyped-def]
        self.seen.append(arch)
        if arch in self.fail:
            raise RuntimeError("boom\nsecond line")
        acc = 0.5 + 0.1 * arch[0] + (0.05 if arch[1] == "y" else 0.0)
        curve = []
        for step in range(self.steps):
            curve.append(acc * (step + 1) / self.steps)
            if report is not None and report(step, curve[-1]):
                return TrialResult(status="pruned", accuracy=curve[-1], curve=curve, cost_s=1.0)
        return TrialResult(
            status="ok", accuracy=acc, params=10 * (arch[0] + 1), curve=curve, cost_s=1.0
        )
