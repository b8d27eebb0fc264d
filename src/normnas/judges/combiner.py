"""The learned combiner: predict the dearest judge's score from the cheaper judges' scores and
the architecture, say how sure it is, and pick the next candidate to promote.

Model: scikit-learn's `BayesianRidge` on [the cheap judges' scores as ranks in [0, 1] over
the pool, their rank vote, a one-hot encoding of the architecture's choices]. Why this one:
the combiner is fitted on few points (the dearest stage judges 10-50 candidates), so it
must be strongly regularized and fit in milliseconds after every result; a linear model in
one-hot choices is the additive model that ranks NAS-Bench-201 well (the `additive`
strategy's finding), and the cheap scores enter as ranks so no judge's scale dominates.
Its posterior over the weights is Gaussian in closed form (`coef_`, `sigma_`), which gives
both the predictive spread and Thompson sampling (draw weights, promote the best draw)
without an ensemble. Gradient-boosted trees (LightGBM, XGBoost) need more points than a
cascade's last stage has and give no posterior; a Gaussian process was measured as well
(see BENCHMARKS.md, "Cheap and right") and is not better here.

Before `min_points` results the combiner ranks by the vote of the cheap scores alone.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normnas.spaces.base import Arch, SearchSpace

# below this many results of the dearest judge, promote by the cheap scores' vote alone:
# measured on NAS-Bench-201 (BENCHMARKS.md), a fit on fewer points promoted worse than the vote
MIN_POINTS = 8
# how much better (leave-one-out Kendall tau) than the vote the fitted model must rank
# before it is used; a tie goes to the vote (see BENCHMARKS.md, "Cheap and right")
TRUST_MARGIN = 0.1


@dataclass
class Candidate:
    """An architecture of the cascade with every score it received and the stage it reached."""

    arch: Arch
    key: str
    scores: dict[str, float] = field(default_factory=dict)  # judge or proxy name -> score
    stage: int = 0  # index of the dearest stage that judged it
    cost_s: float = 0.0  # what judging it cost so far


def ranks01(values: Sequence[float]) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties share their mean rank; NaN and -inf rank lowest)."""
    from scipy.stats import rankdata  # here: scipy.stats costs seconds at every command's start

    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.isnan(v), -np.inf, v)
    if len(v) <= 1:
        return np.full(len(v), 0.5)
    return (rankdata(v, method="average") - 1.0) / (len(v) - 1.0)


class ArchEncoder:
    """One-hot encoding of an architecture's parameters (every choice of the space)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.columns: list[tuple[str, Any]] = []
        for name, dist in sorted(space.distributions().items()):
            choices = getattr(dist, "choices", None)
            if choices is None:  # a numeric parameter: one column, its value
                self.columns.append((name, None))
            else:
                self.columns.extend((name, c) for c in choices)

    def params(self, arch: Arch) -> Mapping[str, Any]:
        full = getattr(self.space, "full_params", None)
        return full(arch) if callable(full) else self.space.to_params(arch)

    def encode(self, archs: Sequence[Arch]) -> np.ndarray:
        out = np.zeros((len(archs), len(self.columns)))
        for i, arch in enumerate(archs):
            p = self.params(arch)
            for j, (name, choice) in enumerate(self.columns):
                if name not in p:
                    continue
                if choice is None:
                    out[i, j] = float(p[name])
                else:
                    out[i, j] = float(p[name] == choice)
        return out


class Combiner:
    """Fits the dearest judge's score on the cheap scores + encoding; see the module doc."""

    def __init__(
        self,
        space: SearchSpace,
        score_names: Sequence[str],
        min_points: int = MIN_POINTS,
        use_arch: bool = True,
    ) -> None:
        self.encoder = ArchEncoder(space)
        self.score_names = tuple(score_names)
        self.min_points = min_points
        self.use_arch = use_arch
        self.model: Any = None
        self.trusted = False  # did the last `choose` use the fitted correction?

    def features(self, pool: Sequence[Candidate]) -> np.ndarray:
        """[rank of each cheap score over `pool`, their vote, one-hot choices]."""
        cols = [
            ranks01([c.scores.get(n, -math.inf) for c in pool]) for n in self.score_names
        ]
        ranks = np.stack(cols, axis=1) if cols else np.zeros((len(pool), 0))
        vote = ranks.mean(axis=1, keepdims=True) if cols else np.zeros((len(pool), 1))
        parts = [ranks, vote]
        if self.use_arch:
            parts.append(self.encoder.encode([c.arch for c in pool]))
        return np.concatenate(parts, axis=1)

    def vote(self, pool: Sequence[Candidate]) -> np.ndarray:
        """The cheap scores' rank vote over `pool` (higher is better)."""
        if not self.score_names:
            return np.zeros(len(pool))
        return np.mean(
            [ranks01([c.scores.get(n, -math.inf) for c in pool]) for n in self.score_names],
            axis=0,
        )

    def fit(self, x: np.ndarray, y: Sequence[float], vote: np.ndarray | None = None) -> bool:
        """Fit on rows `x` of `features` and targets `y`; False (not fitted) when too few.

        The model learns the targets' ranks (robust to a few broken networks at chance)
        as the cheap scores' vote plus a correction (`vote`: their vote for these rows, by
        default the vote column of `x`), so with nothing to learn it stays the vote."""
        from sklearn.linear_model import BayesianRidge

        y_arr = np.asarray(y, dtype=np.float64)
        if len(y_arr) < self.min_points:
            self.model = None
            return False
        base = x[:, len(self.score_names)] if vote is None else np.asarray(vote)
        model = BayesianRidge(fit_intercept=True, max_iter=300)
        model.fit(x, ranks01(y_arr) - base)
        self.model = model
        return True

    def _base(self, x: np.ndarray) -> np.ndarray:
        return x[:, len(self.score_names)]  # the vote column of `features`

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted rank of the target in [0, 1] (among the judged) and its spread."""
        if self.model is None:
            raise RuntimeError("Combiner.predict before a successful fit")
        mean, std = self.model.predict(x, return_std=True)
        return self._base(x) + mean, std

    def thompson(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One posterior draw of every row's target rank (Thompson sampling picks its argmax)."""
        if self.model is None:
            raise RuntimeError("Combiner.thompson before a successful fit")
        m = self.model
        w = rng.multivariate_normal(np.asarray(m.coef_), np.asarray(m.sigma_), method="eigh")
        return self._base(x) + x @ w + m.intercept_

    def earns_trust(self, x: np.ndarray, y: Sequence[float]) -> bool:
        """Does the fitted correction rank the judged candidates better than the vote alone,
        out of sample (leave-one-out Kendall tau)? Measured on NAS-Bench-201: with 10-50
        results a correction often ranks worse than the vote, so it must earn its place."""
        from scipy.stats import kendalltau

        y_arr = np.asarray(y, dtype=np.float64)
        n = len(y_arr)
        if n - 1 < self.min_points:  # each leave-one-out fit needs min_points itself
            return False
        loo = np.empty(n)
        probe = Combiner.__new__(Combiner)
        probe.__dict__.update(self.__dict__)
        for i in range(n):
            keep = np.arange(n) != i
            probe.fit(x[keep], y_arr[keep])
            loo[i] = probe.predict(x[i : i + 1])[0][0]
        tau_model = kendalltau(loo, y_arr)[0]
        tau_vote = kendalltau(self._base(x), y_arr)[0]
        return bool(np.nan_to_num(tau_model) > np.nan_to_num(tau_vote) + TRUST_MARGIN)

    def choose(
        self,
        pool: Sequence[Candidate],
        judged: Mapping[str, float],
        rng: np.random.Generator,
        thompson: bool = True,
        exclude: Collection[str] = (),
    ) -> int | None:
        """Index into `pool` of the next candidate to promote to the dearest judge.

        `judged` maps keys already judged by it to their scores (the training set); keys in
        `exclude` are not proposed either (judged and failed, or running). With fewer than
        `min_points` scores, the best vote not yet judged; then the argmax of a Thompson
        draw (or of the mean with `thompson=False`) among those not yet judged.
        """
        open_ = [i for i, c in enumerate(pool) if c.key not in judged and c.key not in exclude]
        if not open_:
            return None
        x = self.features(pool)
        done = [i for i, c in enumerate(pool) if c.key in judged]
        y = [judged[pool[i].key] for i in done]
        self.trusted = bool(done) and self.earns_trust(x[done], y)
        if not self.trusted or not self.fit(x[done], y):
            votes = self._base(x)
            return max(open_, key=lambda i: (votes[i], -i))
        values = self.thompson(x[open_], rng) if thompson else self.predict(x[open_])[0]
        return open_[int(np.argmax(values))]
