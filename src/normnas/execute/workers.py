"""Several local worker processes on one study (a journal file or an RDB storage).

Each worker runs the same runner with its own share of the trial budget (so the total is
exact: no trial lost, none extra) and the same wall-time deadline; samplers read the
shared study, so evolution and local search see every worker's results.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any

from normnas.config import RunConfig
from normnas.search.runner import Budget


def shares(total: int, n: int) -> list[int]:
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def _worker(
    cfg_data: dict[str, Any], url: str, trials: int | None, deadline: float | None, index: int
) -> None:
    import optuna
    import torch

    from normnas.search.runner import run_search
    from normnas.search.session import build_parts, make_study
    from normnas.search.study import open_storage

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg_data["workers"]))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = RunConfig.model_validate(cfg_data)
    parts = build_parts(cfg)
    study = make_study(cfg, parts.space, open_storage(url), index)
    wall = None if deadline is None else max(0.0, deadline - time.time())
    if trials == 0 or wall == 0.0:
        return
    run_search(
        study,
        parts.space,
        parts.evaluator,
        Budget(trials=trials, wall_s=wall),
        cfg.objectives,
        parts.constraints,
        dedup=cfg.dedup,
        count_existing=False,
    )


def run_workers(cfg: RunConfig, url: str, budget: Budget, progress: bool = False) -> None:
    """Start `cfg.workers` processes on the study at `url` and wait for them all."""
    from normnas.search import records as rec
    from normnas.search.study import load_study, open_storage

    study = load_study(cfg.study_name, open_storage(url))
    done = sum(r.evaluated for r in rec.records(study))
    per = [None] * cfg.workers
    if budget.trials is not None:
        per = shares(max(0, budget.trials - done), cfg.workers)  # type: ignore[assignment]
    deadline = None if budget.wall_s is None else time.time() + budget.wall_s
    ctx = mp.get_context("spawn")
    data = cfg.model_dump(mode="json")
    procs = [
        ctx.Process(target=_worker, args=(data, url, per[i], deadline, i), daemon=False)
        for i in range(cfg.workers)
        if per[i] != 0
    ]
    for p in procs:
        p.start()
    bad = []
    for p in procs:
        p.join()
        if p.exitcode != 0:
            bad.append(p.exitcode)
    if bad:
        raise RuntimeError(f"{len(bad)} of {len(procs)} workers failed (exit codes {bad})")
