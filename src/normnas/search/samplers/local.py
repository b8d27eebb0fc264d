"""Local search from the best architecture so far over `space.neighbors`, with restarts."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from normnas.search.samplers._base import ArchSampler, fitness, score
from normnas.spaces.base import Arch

RESTART_ATTR = "normnas:local_restart"


class LocalSearchSampler(ArchSampler):
    """First-improvement-free local search as in White et al. (2020), history-driven.

    The search runs in segments. A segment starts at a random architecture (marked by a
    trial system attribute, so restarts survive a process restart). Its centre is the best
    COMPLETE trial of the segment; each proposal is an untried neighbour of the centre
    (uniformly chosen with the per-trial seeded generator). When every neighbour of the
    centre was tried (anywhere in the study) and none improved on it, a local optimum is
    reached and a new segment starts from a random untried architecture.
    Multi-objective studies rank by the first objective.
    """

    def __init__(self, space, seed: int | None = None, restart_tries: int = 100) -> None:
        super().__init__(space, seed)
        self.restart_tries = restart_tries

    def propose(self, study: optuna.Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        trials = sorted(
            (
                t
                for t in study._get_trials(deepcopy=False, use_cache=True)
                if t.number != trial.number
            ),
            key=lambda t: t.number,
        )
        tried = {k for t in trials if t.params and (k := self.trial_key(t)) is not None}
        start = max(
            (i for i, t in enumerate(trials) if t.system_attrs.get(RESTART_ATTR)), default=None
        )
        if start is not None:
            segment = [t for t in trials[start:] if t.state == TrialState.COMPLETE]
            _, sign = fitness(study)
            if segment:
                centre = max(segment, key=lambda t: score(t, sign))
                untried = [
                    a
                    for a in self.space.neighbors(self.space.from_params(centre.params))
                    if self.key(a) not in tried
                ]
                if untried:
                    return untried[int(rng.integers(len(untried)))]
            elif any(t.state == TrialState.RUNNING for t in trials[start:]):
                # the segment's start is still being evaluated elsewhere: explore around it
                first = trials[start]
                untried = [
                    a
                    for a in self.space.neighbors(self.space.from_params(first.params))
                    if self.key(a) not in tried
                ]
                if untried:
                    return untried[int(rng.integers(len(untried)))]
        return self._restart(study, trial, rng, tried)

    def _restart(
        self, study: optuna.Study, trial: FrozenTrial, rng: np.random.Generator, tried: set[str]
    ) -> Arch:
        study._storage.set_trial_system_attr(trial._trial_id, RESTART_ATTR, True)
        arch = self.space.sample(rng)
        for _ in range(self.restart_tries):
            if self.key(arch) not in tried:
                return arch
            arch = self.space.sample(rng)
        size = len(self.space) if hasattr(self.space, "__len__") else None
        if size is not None and len(tried) >= size:
            self.exhausted = True
        return arch
