"""The statistics of an ablation: per-level means, paired differences, interactions.

Conventions (what a reviewer needs to know):
- Accuracy is the final-epoch validation accuracy, in percentage points. A run that
  diverged (non-finite loss) has no accuracy: it counts in the divergence rate of its
  level and is left out of the means and of the pairs it belongs to.
- Every interval is a two-sided 95% Student-t interval over seeds: mean ± t(0.975, n−1)·s/√n;
  one seed gives a mean without an interval.
- Per-level statistics use the cells where every other factor is at its baseline (these
  exist in every design), so a level is compared with the baseline all else equal.
- A comparison with the baseline is paired: the difference level − baseline is taken per
  seed (same seed, same initialization and batch order where shapes allow) over the seeds
  where both ran to the end, and the interval is that of the mean difference.
- An interaction of factors A and B: for each level b of B, the paired difference
  a − a₀ at B=b (others at baseline), and the interaction contrast
  (a − a₀ at b) − (a − a₀ at b₀), paired over seeds: does the effect of A change with B?
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from normnas.ablate.design import Design

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Obs:
    """One run of an ablation: its cell's levels, its seed and its outcome."""

    levels: tuple[tuple[str, Any], ...]  # (factor, level) in design order
    seed: int
    status: str  # ok, diverged, failed, timeout
    accuracy: float | None  # fraction in [0, 1]
    epoch_s: float | None = None

    @property
    def cell(self) -> dict[str, Any]:
        return dict(self.levels)

    @property
    def finished(self) -> bool:
        return self.status == "ok" and self.accuracy is not None


@dataclass(frozen=True)
class Interval:
    """A mean and the half-width of its 95% t-interval (None with fewer than two values)."""

    mean: float
    half: float | None
    n: int

    @property
    def low(self) -> float:
        return self.mean - (self.half if self.half is not None else math.nan)

    @property
    def high(self) -> float:
        return self.mean + (self.half if self.half is not None else math.nan)

    @property
    def excludes_zero(self) -> bool:
        """The interval lies wholly above or below 0 (False when there is none)."""
        return self.half is not None and (self.low > 0 or self.high < 0)

    def text(self, digits: int = 1) -> str:
        if self.half is None:
            return f"{self.mean:.{digits}f} (n={self.n}, no interval)"
        return f"{self.mean:.{digits}f} ± {self.half:.{digits}f}"


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t critical value for `df` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, df))


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval | None:
    """Mean ± t·s/√n of `values`; None when empty, no half-width for one value."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return None
    mean = sum(xs) / n
    if n == 1:
        return Interval(mean, None, 1)
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return Interval(mean, t_quantile(n - 1, confidence) * math.sqrt(var / n), n)


# -- selecting runs --------------------------------------------------------------------------
def runs_at(obs: Sequence[Obs], design: Design, fixed: Mapping[str, Any]) -> list[Obs]:
    """The runs whose cell has the levels `fixed` and every other factor at its baseline."""
    want = {f.name: f.baseline for f in design.factors} | dict(fixed)
    return [o for o in obs if o.cell == want]


def accuracy_by_seed(runs: Iterable[Obs]) -> dict[int, float]:
    """Percentage points by seed, finished runs only."""
    return {o.seed: 100.0 * float(o.accuracy) for o in runs if o.finished}  # type: ignore[arg-type]


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> Interval | None:
    """The mean of a − b over the seeds both have, with its t-interval."""
    seeds = sorted(set(a) & set(b))
    return t_interval(a[s] - b[s] for s in seeds)


# -- the tables ------------------------------------------------------------------------------
@dataclass
class LevelStats:
    factor: str
    level: Any
    runs: int
    diverged: int
    failed: int  # failed or timeout: no usable result
    accuracy: Interval | None  # points
    epoch_s: Interval | None
    vs_baseline: Interval | None = None  # paired difference, points (None for the baseline)

    @property
    def divergence_rate(self) -> float | None:
        return self.diverged / self.runs if self.runs else None


@dataclass
class InteractionRow:
    factor: str  # A: whose effect is measured
    level: Any  # a
    by: str  # B: what it is measured across
    at: Any  # b
    effect: Interval | None  # a − a₀ at B=b, points
    contrast: Interval | None  # (a − a₀ at b) − (a − a₀ at b₀); None at b = b₀


@dataclass
class AblationStats:
    design: Design
    levels: dict[str, list[LevelStats]] = field(default_factory=dict)
    interactions: dict[tuple[str, str], list[InteractionRow]] = field(default_factory=dict)
    stable_lr: dict[str, Any] = field(default_factory=dict)  # group label -> largest stable lr
    n_runs: int = 0
    n_expected: int = 0


def level_stats(obs: Sequence[Obs], design: Design) -> dict[str, list[LevelStats]]:
    out: dict[str, list[LevelStats]] = {}
    base_acc = accuracy_by_seed(runs_at(obs, design, {}))
    for f in design.factors:
        rows = []
        for level in f.levels:
            runs = runs_at(obs, design, {f.name: level})
            acc = accuracy_by_seed(runs)
            times = [o.epoch_s for o in runs if o.epoch_s is not None and o.finished]
            rows.append(
                LevelStats(
                    f.name,
                    level,
                    runs=len(runs),
                    diverged=sum(o.status == "diverged" for o in runs),
                    failed=sum(o.status in ("failed", "timeout") for o in runs),
                    accuracy=t_interval(acc.values()),
                    epoch_s=t_interval(times),
                    vs_baseline=None if level == f.baseline else paired(acc, base_acc),
                )
            )
        out[f.name] = rows
    return out


def grid_present(obs: Sequence[Obs], design: Design, a: str, b: str) -> bool:
    """Has the design every (a, b) combination with the other factors at baseline?"""
    fa, fb = (design.factors[design.names.index(n)] for n in (a, b))
    cells = {tuple(sorted(o.cell.items())) for o in obs}
    base = {f.name: f.baseline for f in design.factors}
    for la in fa.levels:
        for lb in fb.levels:
            want = tuple(sorted((base | {a: la, b: lb}).items()))
            if want not in cells:
                return False
    return True


def interaction(obs: Sequence[Obs], design: Design, a: str, b: str) -> list[InteractionRow]:
    """The effect of each level of `a` (vs its baseline) at each level of `b`."""
    fa, fb = (design.factors[design.names.index(n)] for n in (a, b))

    def acc(la: Any, lb: Any) -> dict[int, float]:
        return accuracy_by_seed(runs_at(obs, design, {a: la, b: lb}))

    rows = []
    for la in fa.levels:
        if la == fa.baseline:
            continue
        ref = _diffs(acc(la, fb.baseline), acc(fa.baseline, fb.baseline))
        for lb in fb.levels:
            here = _diffs(acc(la, lb), acc(fa.baseline, lb))
            contrast = None
            if lb != fb.baseline:
                seeds = sorted(set(here) & set(ref))
                contrast = t_interval(here[s] - ref[s] for s in seeds)
            rows.append(InteractionRow(a, la, b, lb, t_interval(here.values()), contrast))
    return rows


def _diffs(x: Mapping[int, float], y: Mapping[int, float]) -> dict[int, float]:
    return {s: x[s] - y[s] for s in sorted(set(x) & set(y))}


def largest_stable_lr(obs: Sequence[Obs], design: Design) -> dict[str, Any]:
    """Per norm level (when the norm x lr grid was run; else overall): the largest lr level
    at which no run diverged and at least one finished ('none' when every lr diverged)."""
    if "lr" not in design.names:
        return {}
    f_lr = design.factors[design.names.index("lr")]
    groups: list[tuple[str, dict[str, Any]]] = [("all", {})]
    if "norm" in design.names and grid_present(obs, design, "norm", "lr"):
        f_norm = design.factors[design.names.index("norm")]
        groups = [(str(n), {"norm": n}) for n in f_norm.levels]
    out: dict[str, Any] = {}
    for label, fixed in groups:
        best: Any = "none"
        for lr in sorted(f_lr.levels):
            runs = runs_at(obs, design, fixed | {"lr": lr})
            if runs and not any(o.status == "diverged" for o in runs) and any(
                o.finished for o in runs
            ):
                best = lr
        out[label] = best
    return out


def analyse(obs: Sequence[Obs], design: Design, n_seeds: int | None = None) -> AblationStats:
    """Every table of the ablation from its runs."""
    stats = AblationStats(design, level_stats(obs, design))
    names = design.names
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if grid_present(obs, design, a, b):
                first, second = (a, b) if a == "norm" or b != "norm" else (b, a)
                stats.interactions[(first, second)] = interaction(obs, design, first, second)
    stats.stable_lr = largest_stable_lr(obs, design)
    stats.n_runs = len(obs)
    stats.n_expected = len(design.cells) * (n_seeds or 0)
    return stats
