"""Thompson sampling on a Bayesian additive model of the choices, over canonical classes.

Why it works on cell spaces such as NAS-Bench-201: the quality of a good cell is, to first
order, a sum of per-choice effects (which op sits on which edge). A linear model on the
one-hot encoding of the *canonical* cell fits that sum from a few dozen queries. Two details
make it find the top rather than the average:

- Censoring: the bottom half of the observed accuracies is clipped to their median before
  fitting. Broken cells (no conv on any path, pooling only) are far below the rest; left as
  they are, a linear model spends its weights explaining them and ranks the top poorly.
  Clipped, the model describes which choices separate good from very good.
- Thompson sampling: each proposal maximises one draw from the ridge posterior over all
  not-yet-queried canonical classes, so equivalent cells are never queried twice and
  uncertain choices still get tried (exploration without a tuned constant).

Until the study holds as many distinct results as the model has free parameters
(1 + sum of (choices - 1)), proposals are random untried classes. Nothing here is specific
to a data set: no thresholds, no lists of cells. Stateless between trials (it reads the
study), so restarts and parallel workers continue the same search.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import weakref
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial

from normnas.search.samplers._base import ArchSampler, Seen, check_int, check_positive, scored
from normnas.spaces.base import Arch, SearchSpace

ENUMERATE_LIMIT = 200_000  # spaces up to this many encodings are scored exhaustively
POOL_SIZE = 2_000  # otherwise: this many random classes + the neighbours of the best


@dataclass
class _Encoder:
    """One-hot encoding of a space's categorical parameters (and, if small, all classes)."""

    names: tuple[str, ...]
    choices: tuple[tuple[object, ...], ...]
    offsets: np.ndarray
    width: int
    keys: list[str] | None = None  # canonical key of each candidate class
    features: np.ndarray | None = None  # one-hot rows of the candidates' canonical archs
    index: dict[str, int] | None = None  # key -> candidate row

    def encode(self, params: dict[str, object]) -> np.ndarray:
        x = np.zeros(self.width)
        for k, (name, values) in enumerate(zip(self.names, self.choices, strict=True)):
            if name in params:  # an inactive parameter (LayerSpace) encodes as all zeros
                x[self.offsets[k] + values.index(params[name])] = 1.0
        return x

    @property
    def dof(self) -> int:
        """Free parameters of the additive model: an intercept + (choices - 1) per name."""
        return 1 + sum(len(v) - 1 for v in self.choices)


_ENCODERS: weakref.WeakKeyDictionary[SearchSpace, _Encoder] = weakref.WeakKeyDictionary()


def _encoder(space: SearchSpace, key) -> _Encoder:  # type: ignore[no-untyped-def]
    """The space's encoder, built once per space object (runs share it in a process)."""
    try:
        cached = _ENCODERS.get(space)
    except TypeError:  # not weak-referenceable / hashable: build every time
        cached = None
    if cached is not None:
        return cached
    dists = space.distributions()
    for name, dist in dists.items():
        if not isinstance(dist, CategoricalDistribution):
            raise ValueError(
                f"strategy 'additive' needs categorical parameters; {name!r} is "
                f"{type(dist).__name__}"
            )
    names = tuple(dists)
    choices = tuple(tuple(dists[n].choices) for n in names)  # type: ignore[attr-defined]
    sizes = [len(c) for c in choices]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    enc = _Encoder(names, choices, offsets, int(sum(sizes)))
    if math.prod(sizes) <= ENUMERATE_LIMIT:
        keys: list[str] = []
        rows: list[np.ndarray] = []
        index: dict[str, int] = {}
        for combo in itertools.product(*choices):
            arch = space.canonical(space.from_params(dict(zip(names, combo, strict=True))))
            k = key(arch)
            if k not in index:
                index[k] = len(keys)
                keys.append(k)
                rows.append(enc.encode(space.to_params(arch)))
        enc.keys, enc.features, enc.index = keys, np.array(rows), index
    with contextlib.suppress(TypeError):  # not weak-referenceable: no cache
        _ENCODERS[space] = enc
    return enc


class AdditiveThompsonSampler(ArchSampler):
    """Thompson sampling on a censored Bayesian ridge model of one-hot choices (see module).

    `ridge` is the prior precision in units of observations; `n_startup` defaults to the
    model's number of free parameters. Multi-objective studies rank by the first objective.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int | None = None,
        n_startup: int | None = None,
        ridge: float = 1.0,
    ) -> None:
        self.ridge = check_positive("additive", "ridge", ridge)
        if n_startup is not None:
            check_int("additive", "n_startup", n_startup, 0)
        super().__init__(space, seed)
        self.enc = _encoder(space, self.key)
        self.n_startup = self.enc.dof if n_startup is None else n_startup

    def propose(self, study: optuna.Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        history = self.history(study, trial)
        tried: set[str] = set()
        xs: list[np.ndarray] = []
        ys: list[float] = []
        for s in history:
            if s.key in tried:  # first result of a class only (no duplicates)
                continue
            tried.add(s.key)
            if s.value is not None:  # COMPLETE with a finite result (+-inf would give NaN)
                xs.append(self._features(s))
                ys.append(s.value)
        if len(ys) < max(self.n_startup, 2):
            return self._random_untried(rng, tried)
        w = self._posterior_draw(np.array(xs), np.array(ys), rng)
        if not np.all(np.isfinite(w)):  # a degenerate fit: explore rather than trust it
            return self._random_untried(rng, tried)
        return self._best_candidate(w, tried, scored(history), rng)

    # -- model ----------------------------------------------------------------------------
    def _posterior_draw(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One draw of the weights from the ridge posterior fitted on censored targets."""
        y = np.maximum(y, np.median(y))  # censor the bottom half (see the module doc)
        y = y - y.mean()
        a = np.hstack([x, np.ones((len(x), 1))])
        h = a.T @ a + self.ridge * np.eye(a.shape[1])
        mean = np.linalg.solve(h, a.T @ y)
        noise = max(float(np.mean((a @ mean - y) ** 2)), 1e-12)
        chol = np.linalg.cholesky(np.linalg.inv(h) * noise)
        return (mean + chol @ rng.standard_normal(len(mean)))[:-1]

    def _features(self, seen: Seen) -> np.ndarray:
        enc = self.enc
        if enc.index is not None and seen.key in enc.index:
            return enc.features[enc.index[seen.key]]  # type: ignore[index]
        return enc.encode(self.space.to_params(self.space.canonical(seen.arch)))

    # -- proposals ------------------------------------------------------------------------
    def _best_candidate(
        self,
        w: np.ndarray,
        tried: set[str],
        done: list[Seen],
        rng: np.random.Generator,
    ) -> Arch:
        enc = self.enc
        if enc.features is not None and enc.keys is not None:
            scores = enc.features @ w
            for k in tried:
                row = enc.index.get(k)  # type: ignore[union-attr]
                if row is not None:
                    scores[row] = -np.inf
            best = int(np.argmax(scores))
            if not np.isfinite(scores[best]):
                self.exhausted = True
                return self.space.sample(rng)
            return self.space.from_str(enc.keys[best])
        # a large space: score a pool of random archs and the neighbours of the best ones
        pool = [self.space.sample(rng) for _ in range(POOL_SIZE)]
        for s in sorted(done, key=lambda s: -s.value)[:3]:  # type: ignore[operator]
            pool.extend(self.space.neighbors(s.arch))
        best_arch, best_score = None, -np.inf
        for arch in pool:
            canon = self.space.canonical(arch)
            if self.key(canon) in tried:
                continue
            s = float(enc.encode(self.space.to_params(canon)) @ w)
            if s > best_score:
                best_arch, best_score = canon, s
        return best_arch if best_arch is not None else self.space.sample(rng)

    def _random_untried(self, rng: np.random.Generator, tried: set[str]) -> Arch:
        arch = self.space.sample(rng)
        for _ in range(100):
            if self.key(arch) not in tried:
                return arch
            arch = self.space.sample(rng)
        return arch
