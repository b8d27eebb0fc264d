"""What the search loop tells its listeners after each trial, and the same events read back
from a study whose trials run elsewhere (worker processes, Ray actors).

The loop and the executors make events; how they are shown (`normnas.report.progress`) is
the caller's choice, passed in as a `ProgressDisplay`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from normnas.search import records as rec

if TYPE_CHECKING:
    from normnas.search.budget import Budget


@dataclass
class TrialEvent:
    """What the runner tells a progress callback after each trial."""

    number: int
    status: str
    duplicate_of: int | None
    values: tuple[float, ...] | None
    n_evaluated: int  # counted toward the budget, study-wide
    spent_cost_s: float
    elapsed_s: float
    budget: Budget
    arch: str | None = None  # the trial's architecture string (None if it never got one)


class ProgressDisplay(Protocol):
    """A progress display: shown each finished trial, closed when the search ends."""

    def update(self, event: TrialEvent) -> None: ...

    def close(self) -> None: ...


class StudyFollower:
    """Progress of trials run elsewhere (worker processes): each `poll` reads the study's
    newly finished trials and shows them as a single process's run would."""

    def __init__(
        self, display: ProgressDisplay, budget: Budget, n_before: int = 0, study: Any = None
    ) -> None:
        self.study = study
        self.display = display
        self.budget = budget
        self.seen: set[int] = set()
        self.n_evaluated = n_before
        self.t0 = time.perf_counter()

    def skip_existing(self, study: Any) -> None:
        """Trials finished before the run are not this run's progress."""
        self.seen |= {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}

    def poll(self, study: Any) -> None:
        fresh = [
            r for r in rec.records(study) if r.state.is_finished() and r.number not in self.seen
        ]
        for r in fresh:
            if r.status is None and r.duplicate_of is None:
                continue  # its result attributes are not all written yet
            self.seen.add(r.number)
            self.n_evaluated += r.evaluated
            event = TrialEvent(
                r.number, str(r.status), r.duplicate_of, r.values, self.n_evaluated, 0.0,
                time.perf_counter() - self.t0, self.budget, arch=r.arch,
            )  # fmt: skip
            self.display.update(event)

    def poll_quietly(self) -> None:
        """`poll(self.study)`; a storage hiccup costs a display update, never the run."""
        with contextlib.suppress(Exception):
            self.poll(self.study)
