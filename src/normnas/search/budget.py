"""What a search may spend: trials, wall time or simulated cost (first reached stops it).

Its own module so that the loop (`search.runner`) and the events it emits (`search.events`)
both import it without importing each other; `normnas.search.runner.Budget` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Budget:
    trials: int | None = None  # evaluated (non-duplicate) trials
    wall_s: float | None = None  # real seconds
    cost_s: float | None = None  # sum of TrialResult.cost_s (simulated seconds for tables)

    def __post_init__(self) -> None:
        if self.trials is None and self.wall_s is None and self.cost_s is None:
            raise ValueError("a budget needs trials, wall_s or cost_s")
