"""fANOVA parameter importances as Optuna's `FanovaImportanceEvaluator` computes them, fast.

Same forest (scikit-learn's, same settings and seed), same transform of the parameters and
the same decomposition, so the same numbers up to rounding; only the arithmetic differs.
Optuna walks each tree once per grid cell of each parameter in Python: a categorical of k
choices is k one-hot columns, 2^k cells, each a tree walk, which took 15 of the 17 CPU
seconds of the report of a 1,500-trial macro study. Here a tree's leaves are boxes; the
marginal prediction of a parameter at every cell of its grid is one matrix product of
"which leaves contain the cell" by the leaves' values weighted by their volume outside the
parameter's columns (Hutter et al. 2014, as Optuna's `_FanovaTree` computes it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna._transform import _SearchSpaceTransform
from optuna.importance import BaseImportanceEvaluator
from optuna.importance._base import _get_distributions
from optuna.trial import FrozenTrial, TrialState

_CELLS_X_LEAVES = 4_000_000  # the most grid cells x leaves held at once (32 MB of floats)


class FanovaEvaluator(BaseImportanceEvaluator):
    """Optuna's fANOVA evaluator (same arguments, same results), vectorised per tree.

    `trials`: the study's trials when the caller has read them already (the report has:
    a second read of a large RDB study costs seconds); by default they are read here.
    """

    def __init__(
        self,
        *,
        n_trees: int = 64,
        max_depth: int = 64,
        seed: int | None = None,
        trials: Sequence[FrozenTrial] | None = None,
    ) -> None:
        self.n_trees, self.max_depth, self.seed = n_trees, max_depth, seed
        self.trials = None if trials is None else list(trials)

    def evaluate(
        self,
        study: optuna.Study,
        params: list[str] | None = None,
        *,
        target: Callable[[FrozenTrial], float] | None = None,
    ) -> dict[str, float]:
        from sklearn.ensemble import RandomForestRegressor

        if target is None and study._is_multi_objective():
            raise ValueError("a multi-objective study needs `target` (e.g. the first value)")
        trials = self.trials if self.trials is not None else study.get_trials(deepcopy=False)
        # as Optuna: the parameters every completed trial has (named ones: its own rule)
        if params is None:
            distributions = _shared_distributions(trials)
            params = list(distributions)
        else:
            distributions = _get_distributions(study, params=params)
        several = {n: d for n, d in distributions.items() if not d.single()}
        single = {n: d for n, d in distributions.items() if d.single()}
        if not several:  # a parameter with one value explains nothing
            return dict.fromkeys(single, 0.0)
        value = target if target is not None else (lambda t: t.value)
        used = [
            t
            for t in trials
            if t.state == TrialState.COMPLETE
            and set(params) <= set(t.params)
            and np.isfinite(value(t))
        ]
        if len(used) <= 1:
            return dict.fromkeys(params, 0.0)
        trans = _SearchSpaceTransform(several, transform_log=False, transform_step=False)
        forest = RandomForestRegressor(
            n_estimators=self.n_trees,
            max_depth=self.max_depth,
            min_samples_split=2,
            min_samples_leaf=1,
            random_state=self.seed,
        )
        x = np.array([trans.transform(t.params) for t in used])
        forest.fit(x, np.array([value(t) for t in used]))
        imp = forest_importances(forest.estimators_, trans.bounds, trans.column_to_encoded_columns)
        out = {**dict(zip(several, map(float, imp), strict=True)), **dict.fromkeys(single, 0.0)}
        # Optuna's order: by importance, descending (ties: the later name first)
        return dict(reversed(sorted(out.items(), key=lambda item: item[1])))


def _shared_distributions(trials: Sequence[FrozenTrial]) -> dict[str, Any]:
    """Optuna's `intersection_search_space`: the distributions every completed trial has,
    by name. The same comparison, but identity first: trials read by `read_trials` share
    their distribution objects, and Optuna's element-wise `==` took a third of a second at
    1,500 trials."""
    space: dict[str, Any] | None = None
    for trial in reversed(trials):
        if trial.state != TrialState.COMPLETE:
            continue
        theirs = trial.distributions
        if space is None:
            space = dict(theirs)
            continue
        space = {n: d for n, d in space.items() if (o := theirs.get(n)) is d or o == d}
    return dict(sorted((space or {}).items()))


def forest_importances(
    estimators: Sequence[Any], bounds: np.ndarray, groups: Sequence[np.ndarray]
) -> np.ndarray:
    """Per group of encoded columns (a parameter), the mean over the trees of the share of
    the tree's variance its marginal explains (trees of zero variance left out)."""
    shares = []
    for estimator in estimators:
        total, marginals = tree_variances(estimator.tree_, bounds, groups)
        if total > 0.0:
            shares.append(marginals / total)
    if not shares:
        raise RuntimeError("Encountered zero total variance in all trees.")
    return np.mean(shares, axis=0)


def tree_variances(
    tree: Any, bounds: np.ndarray, groups: Sequence[np.ndarray]
) -> tuple[float, np.ndarray]:
    """(variance of the tree's prediction over the space, variance of its marginal in each
    group of columns), both weighted by volume as fANOVA defines them."""
    lo, hi, values = _leaf_boxes(tree, bounds)
    widths = hi - lo
    volume = np.prod(widths, axis=1)
    total = _weighted_variance(values, volume)
    # the grid of each column: the intervals between its split thresholds in this tree
    feature, threshold = np.asarray(tree.feature), np.asarray(tree.threshold)
    # a cell is in a leaf when lo < x <= hi (the walk goes left when x <= threshold); the
    # space's own bounds are open, so a cell at a bound is inside as well
    lo_open = np.where(lo == bounds[:, 0], -np.inf, lo)
    hi_open = np.where(hi == bounds[:, 1], np.inf, hi)
    marginals = np.empty(len(groups))
    for g, columns in enumerate(groups):
        inside, sizes = [], []
        for c in columns:
            edges = np.concatenate(
                ([bounds[c, 0]], np.unique(threshold[feature == c]), [bounds[c, 1]])
            )
            mids = 0.5 * (edges[1:] + edges[:-1])
            inside.append((lo_open[:, c] < mids[:, None]) & (mids[:, None] <= hi_open[:, c]))
            sizes.append(np.diff(edges))
        # each leaf's volume off the group (a width is never 0: thresholds lie inside)
        outside = volume / np.prod(widths[:, columns], axis=1)
        marginals[g] = _marginal_variance(inside, sizes, values, outside)
    return total, np.clip(marginals, 0.0, None)


def _leaf_boxes(tree: Any, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower corners, upper corners, values) of the tree's leaves: level by level, each
    child takes its parent's box cut at the parent's threshold."""
    feature = np.asarray(tree.feature)
    threshold = np.asarray(tree.threshold)
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    n = int(tree.node_count)
    lo = np.empty((n, len(bounds)))
    hi = np.empty((n, len(bounds)))
    lo[0], hi[0] = bounds[:, 0], bounds[:, 1]
    nodes = np.array([0])
    while nodes.size:
        inner = nodes[feature[nodes] >= 0]
        f, t, ls, rs = feature[inner], threshold[inner], left[inner], right[inner]
        lo[ls], hi[ls] = lo[inner], hi[inner]
        hi[ls, f] = t
        lo[rs], hi[rs] = lo[inner], hi[inner]
        lo[rs, f] = t
        nodes = np.concatenate((ls, rs))
    leaves = feature < 0
    values = np.asarray(tree.value)[leaves, 0, 0].astype(float)
    return lo[leaves], hi[leaves], values


def _marginal_variance(
    inside: list[np.ndarray], sizes: list[np.ndarray], values: np.ndarray, outside: np.ndarray
) -> float:
    """Variance over the grid cells (weighted by cell size and the volume averaged over) of
    the marginal prediction: at a cell, the mean of the values of the leaves containing it,
    weighted by their volume off the group. `inside[j][a, l]`: interval a of the group's
    column j lies in leaf l."""
    shape = tuple(len(s) for s in sizes)
    n_cells = math.prod(shape)
    step = max(1, _CELLS_X_LEAVES // max(1, len(values)))
    weighted = values * outside
    cell_values, cell_weights = [], []
    for start in range(0, n_cells, step):  # one block of cells at a time: bounded memory
        index = np.unravel_index(np.arange(start, min(start + step, n_cells)), shape)
        member = inside[0][index[0]].astype(float)
        size = sizes[0][index[0]]
        for j in range(1, len(shape)):
            member *= inside[j][index[j]]
            size = size * sizes[j][index[j]]
        den = member @ outside
        cell_values.append((member @ weighted) / den)
        cell_weights.append(den * size)
    return _weighted_variance(np.concatenate(cell_values), np.concatenate(cell_weights))


def _weighted_variance(values: np.ndarray, weights: np.ndarray) -> float:
    mean = np.average(values, weights=weights)
    return float(np.average((values - mean) ** 2, weights=weights))
