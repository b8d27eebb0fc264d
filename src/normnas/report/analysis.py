"""Which choices matter: importances grouped by kind, top-10% shares, the headline sentence.

A parameter's kind is its last name part (`s1.b0.norm` and `arch.s0.b1.norm` are both
`norm`; `recipe.schedule` is `schedule`; NB201's `edge_2<-1` is `cell op`), so grouped
importances answer "how much do all the norm choices matter together". Macro slots beyond
their stage's depth are inactive and left out everywhere (older studies recorded them).
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from normnas.nn.norm import NORM_LABELS
from normnas.report.study_data import StudyData, TrialRow

# the kinds the report answers about, in the order it asks them
FOCUS_KINDS: tuple[str, ...] = ("norm", "placement", "schedule")
_SLOT = re.compile(r"^(?:arch\.)?(s\d+)\.b(\d+)\.")


@functools.cache
def kind_of(name: str) -> str:
    if name.split(".")[-1].startswith("edge_"):
        return "cell op"
    return name.split(".")[-1]


@functools.cache
def _slot_of(name: str) -> tuple[str, int] | None:
    """(the depth parameter of its stage, its slot) for a macro block's parameter, else None.

    Once per name, not per trial: the report asks for every trial's active parameters
    several times, and a regular expression per parameter and trial cost a second at 1,500.
    """
    m = _SLOT.match(name)
    if m is None:
        return None
    prefix = "arch." if name.startswith("arch.") else ""
    return f"{prefix}{m.group(1)}.depth", int(m.group(2))


def active_params(params: dict[str, Any]) -> dict[str, Any]:
    """`params` without the macro block slots beyond their stage's depth."""
    out = {}
    for name, value in params.items():
        slot = _slot_of(name)
        if slot is not None:
            depth = params.get(slot[0])
            if isinstance(depth, int) and slot[1] >= depth:
                continue
        out[name] = value
    return out


def kind_values(row: TrialRow, kind: str) -> list[Any]:
    """The values a trial chose for every active parameter of `kind` (one per block)."""
    # the row's active parameters are kept on it: the report asks for them a dozen times
    # per trial (each kind, the top share, the scores), and rows do not change once loaded
    active = row.__dict__.get("_active_params")
    if active is None:
        active = row.__dict__["_active_params"] = active_params(row.params)
    return [v for k, v in active.items() if kind_of(k) == kind]


def score(data: StudyData, row: TrialRow) -> float | None:
    """The figure choices are judged by: valid accuracy, else the first objective."""
    if row.accuracy is not None:
        return row.accuracy
    return row.values[0] if row.values else None


def top_share(data: StudyData, fraction: float = 0.1) -> list[TrialRow]:
    """The best `fraction` of the evaluated trials by first objective (at least one)."""
    rows = [r for r in data.evaluated if r.values]
    sign = -1.0 if data.maximize[0] else 1.0
    rows.sort(key=lambda r: (sign * r.values[0], r.number))  # type: ignore[index]
    return rows[: max(1, math.ceil(fraction * len(rows)))] if rows else []


def kinds_present(data: StudyData) -> list[str]:
    kinds: Counter[str] = Counter()
    for r in data.evaluated:
        for k in active_params(r.params):
            kinds[kind_of(k)] += 1
    return list(kinds)


@dataclass
class ChoiceStats:
    kind: str
    values: list[Any]  # in order of first appearance in the space
    share_top: dict[Any, float]  # share of the top trials' slots with this value
    share_all: dict[Any, float]
    scores: dict[Any, list[float]]  # scores of the trials using the value in any slot
    n_top: int


def choice_stats(data: StudyData, kind: str) -> ChoiceStats:
    rows = data.evaluated
    top = top_share(data)

    def shares(group: Sequence[TrialRow]) -> dict[Any, float]:
        c = Counter(v for r in group for v in kind_values(r, kind))
        total = sum(c.values()) or 1
        return {v: n / total for v, n in c.items()}

    values: list[Any] = []
    scores: dict[Any, list[float]] = {}
    for r in rows:
        s = score(data, r)
        for v in dict.fromkeys(kind_values(r, kind)):
            if v not in values:
                values.append(v)
            if s is not None:
                scores.setdefault(v, []).append(s)
    return ChoiceStats(kind, values, shares(top), shares(rows), scores, len(top))


def bootstrap_diff(
    a: Sequence[float], b: Sequence[float], n: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean(a) − mean(b) and its 95% percentile bootstrap interval (resampling each group)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    diffs = x[rng.integers(len(x), size=(n, len(x)))].mean(axis=1) - y[
        rng.integers(len(y), size=(n, len(y)))
    ].mean(axis=1)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(x.mean() - y.mean()), float(lo), float(hi)


def _label(kind: str, value: Any) -> str:
    if kind == "norm":
        return NORM_LABELS.get(str(value), str(value))
    if kind == "placement":
        return str(value).replace("_", "→")
    return str(value)


@dataclass
class Finding:
    """A with/without comparison of one choice value, with its bootstrap interval."""

    kind: str
    value: Any
    diff: float
    lo: float
    hi: float
    n_with: int
    n_without: int
    share_top: float
    share_all: float

    def sentence(self, score: str | None = None) -> str:
        """The finding in words: in points of validation accuracy, or in the judge's `score`
        (e.g. "proxy score") when the trials were ranked by one (a number, not a fraction)."""
        what = _label(self.kind, self.value)
        where = "in at least one block" if self.kind in ("norm", "placement") else ""
        change = "higher" if self.diff >= 0 else "lower"
        if score is None:  # accuracy differences in points (percent)
            amount = f"{100 * abs(self.diff):.1f} points of validation accuracy {change}"
            lo, hi = f"{100 * self.lo:+.1f}", f"{100 * self.hi:+.1f}"
        else:
            amount = f"{abs(self.diff):.3g} {change} in {score}"
            lo, hi = f"{self.lo:+.3g}", f"{self.hi:+.3g}"
        verdict = (
            "an interval above zero"
            if self.lo > 0
            else "an interval below zero"
            if self.hi < 0
            else "an interval that includes zero: this many trials cannot tell it from no effect"
        )
        return (
            f"Trials with {what} {where} scored {amount} than those without (95% bootstrap "
            f"interval {lo} to {hi}; {self.n_with} vs {self.n_without} trials), {verdict}; "
            f"the top 10% used it in {100 * self.share_top:.0f}% of their choices against "
            f"{100 * self.share_all:.0f}% over all trials."
        ).replace("  ", " ")


def finding(data: StudyData, kind: str, prefer: Any = None) -> Finding | None:
    """The with/without comparison for `prefer` (if it was tried both ways), else for the
    value whose difference is largest; None when no value was both used and not used."""
    stats = choice_stats(data, kind)
    # each trial's score and choices once (not once per value: 1,500 trials of a macro study
    # made that a second of the report)
    scored = [
        (s, kind_values(r, kind)) for r in data.evaluated if (s := score(data, r)) is not None
    ]
    best: Finding | None = None
    for v in stats.values:
        with_ = [s for s, chosen in scored if v in chosen]
        without = [s for s, chosen in scored if v not in chosen]
        if len(with_) < 2 or len(without) < 2:
            continue
        diff, lo, hi = bootstrap_diff(with_, without)  # type: ignore[arg-type]
        f = Finding(
            kind,
            v,
            diff,
            lo,
            hi,
            len(with_),
            len(without),
            stats.share_top.get(v, 0.0),
            stats.share_all.get(v, 0.0),
        )
        if v == prefer:
            return f
        if best is None or abs(f.diff) > abs(best.diff):
            best = f
    return best


def headline(data: StudyData) -> str:
    """The section's first sentence, computed from the study's numbers."""
    kinds = kinds_present(data)
    if len(data.evaluated) < 4:
        return (
            f"Only {len(data.evaluated)} successful trials: too few to say which choices "
            "matter; run more trials."
        )
    if "norm" in kinds:
        f = finding(data, "norm", prefer="batchnorm")
        if f is not None:
            return f.sentence(data.score)
        return "Every successful trial used the same norms, so their effect cannot be measured."
    if "cell op" in kinds:
        f = finding(data, "cell op", prefer="nor_conv_3x3")
        text = (
            "Normalization is fixed in this space (NAS-Bench-201 cells are ReLU→Conv→BN "
            "everywhere), so the question is which operations matter. "
        )
        if f is not None:
            text += (
                f.sentence(data.score)
                .replace(" in at least one block", "")
                .replace("Trials with", "Cells with")
            )
        return text
    return "This space has no normalization choice to compare."


def importances(data: StudyData, study: Any) -> tuple[dict[str, float], str]:
    """fANOVA importances per parameter for the first objective, and a note ('' if fine).

    Optuna computes them over the parameters every completed trial has (its intersection
    search space), so inactive slots, which only some trials define, never appear.
    """
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    evaluator: Any
    try:  # Optuna's fANOVA, same numbers, vectorised (it leans on Optuna's private helpers)
        from normnas.report.fanova import FanovaEvaluator

        evaluator = FanovaEvaluator(seed=0, trials=data.trials or None)  # no second read
    except ImportError:  # an Optuna that moved them: its own, slower evaluator
        evaluator = FanovaImportanceEvaluator(seed=0)

    done = [r for r in data.evaluated if r.values]
    if len(done) < 3:
        return {}, f"{len(done)} successful trials: fANOVA needs at least 3."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = get_param_importances(
                study,
                evaluator=evaluator,
                target=lambda t: t.values[0],
                normalize=True,
            )
    except (ValueError, RuntimeError, optuna.exceptions.OptunaError) as e:
        return {}, f"fANOVA could not run: {e}"
    if not imp:
        return {}, "no parameter with several values is shared by every completed trial."
    return {k: float(v) for k, v in imp.items()}, ""


def grouped(imp: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in imp.items():
        out[kind_of(name)] = out.get(kind_of(name), 0.0) + value
    return dict(sorted(out.items(), key=lambda p: -p[1]))
