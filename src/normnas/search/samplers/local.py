"""Local search from the best architecture so far over `space.neighbors`, with restarts."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from normnas.search.samplers._base import ArchSampler, Seen, check_int, scored
from normnas.spaces.base import Arch, SearchSpace, space_size

RESTART_ATTR = "normnas:local_restart"


class LocalSearchSampler(ArchSampler):
    """First-improvement-free local search as in White et al. (2020), history-driven.

    The search runs in segments. A segment starts at a random architecture (marked by a
    trial system attribute, so restarts survive a process restart). Its centre is the best
    COMPLETE trial of the segment with a finite result; each proposal is an untried neighbour
    of the centre (uniformly chosen with the per-trial seeded generator). When every
    neighbour of the centre was tried (anywhere in the study) and none improved on it, a
    local optimum is reached and a new segment starts from a random untried architecture.
    Multi-objective studies rank by the first objective.
    """

    def __init__(
        self, space: SearchSpace, seed: int | None = None, restart_tries: int = 100
    ) -> None:
        check_int("local", "restart_tries", restart_tries, 1)
        super().__init__(space, seed)
        self.restart_tries = restart_tries

    def propose(self, study: optuna.Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        history = self.history(study, trial)
        tried = {s.key for s in history}
        start = _segment_start(study, trial)
        if start is None:
            return self._restart(study, trial, rng, tried)
        segment = [s for s in history if s.number >= start]
        best = scored(segment)
        if best:
            centre = max(best, key=lambda s: s.value)  # type: ignore[arg-type, return-value]
            return self._around(centre, study, trial, rng, tried)
        if _running_since(study, trial, start):
            # the segment's start is still being evaluated elsewhere: explore around it, or,
            # when its params are not all written yet (another worker is inside `suggest`),
            # try a random untried arch inside the same segment rather than starting a new one
            if segment:
                return self._around(segment[0], study, trial, rng, tried)
            return self._random(rng, tried)
        return self._restart(study, trial, rng, tried)

    def _around(
        self,
        centre: Seen,
        study: optuna.Study,
        trial: FrozenTrial,
        rng: np.random.Generator,
        tried: set[str],
    ) -> Arch:
        """An untried neighbour of `centre`; none left: a local optimum, restart."""
        untried = [a for a in self.space.neighbors(centre.arch) if self.key(a) not in tried]
        if untried:
            return untried[int(rng.integers(len(untried)))]
        return self._restart(study, trial, rng, tried)

    def _restart(
        self, study: optuna.Study, trial: FrozenTrial, rng: np.random.Generator, tried: set[str]
    ) -> Arch:
        study._storage.set_trial_system_attr(trial._trial_id, RESTART_ATTR, True)
        arch = self._random(rng, tried)
        size = space_size(self.space)  # canonical classes, as `tried` holds their keys
        if self.key(arch) in tried and size is not None and len(tried) >= size:
            self.exhausted = True
        return arch

    def _random(self, rng: np.random.Generator, tried: set[str]) -> Arch:
        arch = self.space.sample(rng)
        for _ in range(self.restart_tries):
            if self.key(arch) not in tried:
                return arch
            arch = self.space.sample(rng)
        return arch


def _segment_start(study: optuna.Study, trial: FrozenTrial) -> int | None:
    """Number of the latest trial (other than `trial`) that started a segment."""
    trials = study._get_trials(deepcopy=False, use_cache=True)
    marks = [
        t.number for t in trials if t.number != trial.number and t.system_attrs.get(RESTART_ATTR)
    ]
    return max(marks, default=None)


def _running_since(study: optuna.Study, trial: FrozenTrial, start: int) -> bool:
    trials = study._get_trials(deepcopy=False, states=(TrialState.RUNNING,), use_cache=True)
    return any(t.number >= start and t.number != trial.number for t in trials)
