"""The design of an ablation: which cells (one level per factor) are run, and why.

Three designs, each containing the baseline cell and every level of every factor:
- `full`: the full factorial, every combination of levels;
- `pairs`: a fractional design of two-factor grids around the baseline: for each pair of
  factors whose interaction is asked for (norm with each other factor when norm is a
  factor, else every pair), all combinations of the two with the other factors at their
  baselines. It measures those interactions at a fraction of the full factorial's cost;
- `ofat`: one factor at a time: the baseline plus each other level of each factor alone.

`choose_design` takes the largest that fits: the full factorial when its estimated time
fits the budget, else the pairs, else one factor at a time (which is run even if it does
not fit: the runner's wall budget then cuts it, seed by seed).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from normnas.ablate.factors import Factor, make_factor
from normnas.errors import ConfigError

DESIGN_KINDS: tuple[str, ...] = ("auto", "full", "pairs", "ofat")
DESIGN_NAMES = {
    "full": "full factorial",
    "pairs": "two-factor grids around the baseline (fractional)",
    "ofat": "one factor at a time around the baseline",
}
MAX_TRIALS = 240  # without a time budget: the largest design (cells x seeds) run unasked
BUDGET_MARGIN = 0.9  # a design fits when its estimate is at most this share of the time left

Cell = tuple[Any, ...]  # one level per factor, in the design's factor order


@dataclass(frozen=True)
class Design:
    kind: str  # full, pairs or ofat
    factors: tuple[Factor, ...]
    cells: tuple[Cell, ...]
    reason: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.factors)

    @property
    def baseline(self) -> Cell:
        return tuple(f.baseline for f in self.factors)

    def as_dict(self, cell: Cell) -> dict[str, Any]:
        return dict(zip(self.names, cell, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "factors": [f.to_dict() for f in self.factors],
            "cells": [list(c) for c in self.cells],
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Design:
        factors = tuple(
            make_factor(f["name"], f["levels"], f["baseline"]) for f in data["factors"]
        )
        return cls(data["kind"], factors, tuple(tuple(c) for c in data["cells"]), data["reason"])

    def describe(self) -> str:
        return f"{DESIGN_NAMES[self.kind]}: {len(self.cells)} cells; {self.reason}"


def full_factorial(factors: Sequence[Factor]) -> list[Cell]:
    return [tuple(c) for c in itertools.product(*(f.levels for f in factors))]


def interaction_pairs(factors: Sequence[Factor]) -> list[tuple[int, int]]:
    """Index pairs whose interactions a `pairs` design measures: norm with each other
    factor when norm is a factor (the questions are about the norm), else every pair."""
    names = [f.name for f in factors]
    if "norm" in names and len(names) > 1:
        i = names.index("norm")
        return [(i, j) for j in range(len(names)) if j != i]
    return list(itertools.combinations(range(len(names)), 2))


def pairs_design(factors: Sequence[Factor]) -> list[Cell]:
    """Two-factor grids around the baseline (see the module doc), baseline first."""
    base = tuple(f.baseline for f in factors)
    if len(factors) == 1:
        return one_at_a_time(factors)
    cells = [base]
    for i, j in interaction_pairs(factors):
        for a, b in itertools.product(factors[i].levels, factors[j].levels):
            cell = list(base)
            cell[i], cell[j] = a, b
            if tuple(cell) not in cells:
                cells.append(tuple(cell))
    return cells


def one_at_a_time(factors: Sequence[Factor]) -> list[Cell]:
    """The baseline, then each non-baseline level of each factor with the rest at baseline."""
    base = tuple(f.baseline for f in factors)
    cells = [base]
    for i, f in enumerate(factors):
        for level in f.levels:
            if level != f.baseline:
                cell = list(base)
                cell[i] = level
                cells.append(tuple(cell))
    return cells


MAKERS = {"full": full_factorial, "pairs": pairs_design, "ofat": one_at_a_time}


def relative_cost(factors: Sequence[Factor], cell: Cell) -> float:
    """A cell's expected training time relative to the baseline's: small batches take more
    optimizer steps per epoch (measured on digits on CPU: batch 8 about 3x batch 32, batch
    128 about 0.6x). Other factors barely change the cost of an epoch."""
    for f, level in zip(factors, cell, strict=True):
        if f.name == "batch_size":
            return max(0.5, (f.baseline / level) ** 0.8)
    return 1.0


def estimate_s(factors: Sequence[Factor], cells: Sequence[Cell], seeds: int, trial_s: float,
               workers: int = 1) -> float:  # fmt: skip
    """Estimated wall time of `cells` x `seeds` when the baseline trial takes `trial_s`."""
    return seeds * trial_s * sum(relative_cost(factors, c) for c in cells) / max(workers, 1)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def choose_design(
    factors: Sequence[Factor],
    seeds: int,
    requested: str = "auto",
    trial_s: float | None = None,
    budget_s: float | None = None,
    workers: int = 1,
    max_trials: int = MAX_TRIALS,
) -> Design:
    """The design to run and why (see the module doc). `trial_s` is the measured time of
    the baseline trial; `budget_s` the time left for the ablation (None: no limit, and
    designs of at most `max_trials` trials fit)."""
    factors = tuple(factors)
    if requested not in DESIGN_KINDS:
        raise ConfigError(f"design: {requested!r} is not one of {', '.join(DESIGN_KINDS)}")
    if len(factors) == 1:
        cells = full_factorial(factors)
        return Design("full", factors, tuple(cells), "one factor: every level is run")
    if requested != "auto":
        return Design(requested, factors, tuple(MAKERS[requested](factors)), "asked for")
    lines = []
    for kind in ("full", "pairs", "ofat"):
        cells = MAKERS[kind](factors)
        n = len(cells) * seeds
        if budget_s is not None and trial_s is not None:
            est = estimate_s(factors, cells, seeds, trial_s, workers)
            fits = est <= BUDGET_MARGIN * budget_s
            lines.append(f"{kind} {n} runs ~{_duration(est)}")
            limit = f"the {_duration(max(budget_s, 0.0))} left"
        else:
            fits = n <= max_trials
            lines.append(f"{kind} {n} runs")
            limit = f"{max_trials} runs (no --time given)"
        if fits or kind == "ofat":
            verdict = "fits" if fits else "does not fit either; --time will cut it"
            why = f"{'; '.join(lines)} — {DESIGN_NAMES[kind]} {verdict} within {limit}"
            return Design(kind, factors, tuple(cells), why)
    raise AssertionError("unreachable")
