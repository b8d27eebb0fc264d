"""A whole search run from a RunConfig: study, search (inline or workers), final model."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from normnas.config import RunConfig
from normnas.search import records as rec
from normnas.search.runner import Budget, Constraints, SearchSummary, run_search
from normnas.search.spaces import make_space, space_spec
from normnas.search.strategies import make_pruner, make_sampler
from normnas.search.study import (
    META_ATTR,
    default_storage,
    open_storage,
    open_study,
    recover_interrupted,
    storage_dir,
    versions,
)
from normnas.spaces.base import SearchSpace


@dataclasses.dataclass
class SearchOutcome:
    """What `normnas.search(...)` returns."""

    study: optuna.Study
    summary: SearchSummary | None
    best: rec.TrialRecord | None  # best trial, or the Pareto point with the best first objective
    front: list[rec.TrialRecord]  # [best] for one objective, the Pareto front for several
    test_accuracy: float | None
    model_path: Path | None
    storage: str
    recovered: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Parts:
    space: SearchSpace
    data: Any
    evaluator: Any
    constraints: Constraints
    train_config: Any


def train_config(cfg: RunConfig) -> Any:
    from normnas.train import TrainConfig

    return TrainConfig(**cfg.train.model_dump(), seed=cfg.seed, device=cfg.device)


def build_parts(cfg: RunConfig, space: SearchSpace | None = None, data: Any = None) -> Parts:
    from normnas.data import load
    from normnas.search.evaluators import TrainEvaluator

    if space is None:
        space = make_space(cfg.space.name, cfg.space.space_options(), cfg.space.recipe)
    if data is None:
        data = load(cfg.data, root=cfg.data_root, valid_fraction=cfg.valid_fraction, seed=cfg.seed)
    constraints = Constraints(**cfg.constraints.model_dump())
    tc = train_config(cfg)
    evaluator = TrainEvaluator(space, data, tc, cfg.objectives, constraints=constraints)
    return Parts(space, data, evaluator, constraints, tc)


def worker_seed(seed: int, index: int) -> int:
    """Worker 0 uses the seed itself; others a derived one (no two workers share a stream)."""
    return seed if index == 0 else int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def make_study(cfg: RunConfig, space: SearchSpace, storage: Any, index: int = 0) -> optuna.Study:
    sampler = make_sampler(
        cfg.strategy, space, worker_seed(cfg.seed, index), **cfg.strategy_options
    )
    pruner = make_pruner(cfg.pruner, **cfg.pruner_options)
    return open_study(cfg.study_name, storage, rec.directions(cfg.objectives), sampler, pruner)


def run(
    cfg: RunConfig,
    space: SearchSpace | None = None,
    data: Any = None,
    progress: bool = False,
) -> SearchOutcome:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = cfg.storage or default_storage(cfg.workers)
    storage = open_storage(url)
    parts = build_parts(cfg, space, data)
    study = make_study(cfg, parts.space, storage)
    recovered = recover_interrupted(study)
    study.set_user_attr(
        META_ATTR,
        {
            "config": cfg.model_dump(mode="json"),
            "space": space_spec(parts.space),
            "versions": versions(),
        },
    )
    budget = Budget(trials=cfg.trials, wall_s=cfg.time)
    summary: SearchSummary | None
    if cfg.workers > 1:
        from normnas.execute.workers import run_workers

        if space is not None or data is not None:
            raise ValueError("workers > 1 needs the space and data given by name")
        run_workers(cfg, url, budget, progress=progress)
        summary = None
    else:
        summary = run_search(
            study,
            parts.space,
            parts.evaluator,
            budget,
            cfg.objectives,
            parts.constraints,
            dedup=cfg.dedup,
            progress=progress,
        )
    front = rec.best_records(study)
    best = front[0] if front else None
    test_acc, model_path = None, None
    if cfg.final and best is not None:
        from normnas.search import final

        arch = parts.space.from_params(best.params)
        fm = final.retrain(
            parts.space, arch, parts.data, parts.train_config, cfg.study_name, best.number
        )
        model_path = final.save(fm, storage_dir(url) / f"{cfg.study_name}-best.pt")
        test_acc = fm.test_accuracy
        study.set_user_attr("model_path", str(model_path))
        study.set_user_attr("test_accuracy", test_acc)
    return SearchOutcome(study, summary, best, front, test_acc, model_path, url, recovered)
