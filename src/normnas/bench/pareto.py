"""Two objectives on the NB201 table: accuracy and latency, in seconds of real time.

The latency of every cell is predicted from the table that ships with the package
(`data/nb201_latency_torch_t1_b1.json`: PyTorch eager, BN folded, 1 thread, batch 1, profiled
on the maintainers' machine; see `normnas latency profile`), so a query stays instant. Each
of R seeded searches runs the standard runner with two objectives (maximize valid accuracy,
minimize latency) under the simulated training budget. A run is scored by the hypervolume
of its Pareto front, measured in (test accuracy at 200 epochs, predicted latency), as a
share of the hypervolume of the table's true front (every cell, same axes); the reference
point is the table's lowest test accuracy and its highest latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from normnas.bench.table import NB201Table, TableEvaluator
from normnas.latency.evaluator import PredictedLatency
from normnas.latency.predict import LatencyPredictor
from normnas.latency.resolve import packaged_table
from normnas.latency.table import LatencyTable
from normnas.search import records as rec
from normnas.search.runner import Budget, run_search
from normnas.search.strategies import make_sampler
from normnas.spaces.nb201 import NB201Space


def hypervolume(points: np.ndarray, ref: tuple[float, float]) -> float:
    """Area dominated by (accuracy up, latency down) `points` up to `ref` (acc, latency)."""
    acc_ref, lat_ref = ref
    best, area = acc_ref, 0.0
    for acc, lat in sorted(points.tolist(), key=lambda p: (p[1], -p[0])):
        if acc > best and lat < lat_ref:
            area += (acc - best) * (lat_ref - lat)
            best = acc
    return area


@dataclass
class ParetoResult:
    strategy: str
    runs: int
    budget: float
    mean_hv_share: float  # of the true front's hypervolume
    std_hv_share: float
    mean_front_size: float
    mean_queries: float
    wall_s: float
    latency_table: str
    shares: list[float] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        keys = ("strategy", "runs", "budget", "mean_hv_share", "std_hv_share",
                "mean_front_size", "mean_queries", "latency_table")  # fmt: skip
        return {**{k: getattr(self, k) for k in keys}, "wall_s": round(self.wall_s, 3)}


def run_pareto_bench(
    strategy: str,
    runs: int,
    budget: float,
    seed: int = 0,
    table: NB201Table | str | Path | None = None,
    latency_table: str | Path | None = None,
    options: dict[str, Any] | None = None,
    dedup: bool = True,
) -> ParetoResult:
    """R seeded two-objective searches (accuracy, latency) on the table (module doc)."""
    t0 = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tab = table if isinstance(table, NB201Table) else NB201Table.load(table)
    space = NB201Space()
    lat_path = Path(latency_table) if latency_table is not None else packaged_table()
    predictor = LatencyPredictor(LatencyTable.read(lat_path), space)
    inner = TableEvaluator(tab, space)
    evaluator = PredictedLatency(inner, predictor, space)
    every = np.array([[tab.test_acc_200ep[r], predictor.predict(a)]
                      for r, a in enumerate(tab.archs)])  # fmt: skip
    ref = (float(every[:, 0].min()), float(every[:, 1].max()))
    best_hv = hypervolume(every, ref)
    shares, sizes, queries = [], [], []
    objectives = ("accuracy", "latency")
    for r in range(runs):
        sampler = make_sampler(strategy, space, seed=seed + r, **(options or {}))
        study = optuna.create_study(
            directions=rec.directions(objectives),  # type: ignore[arg-type]
            sampler=sampler,
        )
        summary = run_search(study, space, evaluator, Budget(cost_s=budget), objectives,
                             dedup=dedup)  # fmt: skip
        front = []
        for t in summary.best_trials:
            row = inner.resolve(space.from_str(t.arch or ""))
            if row is not None:
                front.append([tab.test_acc_200ep[row], predictor.predict(tab.archs[row])])
        shares.append(hypervolume(np.array(front), ref) / best_hv if front else 0.0)
        sizes.append(len(front))
        queries.append(summary.n_evaluated - summary.n_failed)
    return ParetoResult(
        strategy=strategy, runs=runs, budget=float(budget),
        mean_hv_share=round(float(np.mean(shares)), 4),
        std_hv_share=round(float(np.std(shares)), 4),
        mean_front_size=round(float(np.mean(sizes)), 2),
        mean_queries=round(float(np.mean(queries)), 2),
        wall_s=time.perf_counter() - t0, latency_table=str(lat_path), shares=shares,
    )  # fmt: skip
