"""What a search run is made of, and the checks made before any trial, that need no config.

`Parts` (space, data, judge, constraints, training config) and each check as a one-line
`UserError`: the device exists, the data's images are large enough for the space, and a
study being resumed was made the same way (its fingerprint; `force` records the change
instead). Building the parts from a `RunConfig` (`normnas.assemble`) and choosing the judge
(`normnas.judges`) happen above `search/`, which imports neither; the whole run
(`normnas.session.run`) and the worker processes build on these. Nothing here knows how
trials are executed.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna

from normnas.errors import (
    DeviceError,
    NothingFeasibleError,
    SearchFailedError,
    StudyMismatchError,
    UserError,
)
from normnas.search import records as rec
from normnas.search.checkpoints import TrialCheckpoints
from normnas.search.runner import Constraints, SearchSummary
from normnas.search.spaces import network_part
from normnas.search.study import safe_file_stem, storage_dir, study_meta
from normnas.spaces.base import SearchSpace
from normnas.text import plural


@dataclasses.dataclass
class Parts:
    space: SearchSpace
    data: Any
    evaluator: Any
    constraints: Constraints
    train_config: Any


def trial_checkpoints(study_name: str, url: str) -> TrialCheckpoints:
    """Where a study keeps its best trials' trained weights: NAME.trials/ beside its storage."""
    return TrialCheckpoints(storage_dir(url) / f"{safe_file_stem(study_name)}.trials", keep=3)


def worker_seed(seed: int, index: int) -> int:
    """Worker 0 uses the seed itself; others a derived one (no two workers share a stream)."""
    return seed if index == 0 else int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def check_device(device: str) -> None:
    """DeviceError when `device` cannot run here (before any trial fails on it)."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            why = "torch was built without CUDA" if torch.version.cuda is None else "no GPU found"
            raise DeviceError(
                f"--device cuda: CUDA is not available here ({why}); use --device cpu"
            )


def check_image_size(space: SearchSpace, data: Any) -> None:
    """DataError when the data's images are smaller than every network of the space needs."""
    from normnas.errors import DataError

    net_space, *_ = network_part(space, space.sample(np.random.default_rng(0)))
    need = getattr(net_space, "min_image_size", None)
    size = getattr(data, "image_size", None)
    if size is not None:
        # sequence spaces say input_rank 1 ((N, C, T)); the others take (N, C, H, W) images
        rank = getattr(net_space, "input_rank", 2)
        if len(size) != rank:
            kind = {1: "sequences (channels x length)", 2: "images"}
            fix = "use --space seq" if len(size) == 1 else "use an image space (macro, nb201)"
            raise DataError(
                f"--data {getattr(data, 'name', '?')}: holds {kind.get(len(size), '?')}, but "
                f"the space {net_space.name!r} takes {kind.get(rank, '?')}; {fix}"
            )
    fixed = getattr(net_space, "input_size", None)  # a LayerSpace's shapes were checked on it
    if fixed is not None and size is not None and tuple(size) != tuple(fixed):
        raise DataError(
            f"--data {getattr(data, 'name', '?')}: images are {size[0]}x{size[1]}, but the "
            f"space {net_space.name!r} was defined for {fixed[0]}x{fixed[1]} images "
            "(its input_size); set input_size to the data's image size"
        )
    if need is None or size is None:
        return
    if min(size) < need:
        raise DataError(
            f"--data {getattr(data, 'name', '?')}: images are {size[0]}x{size[1]}, but the "
            f"space {net_space.name!r} needs at least {need}x{need} (its strides shrink "
            "smaller images to 1x1 maps, where normalization cannot train); "
            "resize the images or use fewer stride-2 stages"
        )


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def fingerprint_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Each differing entry as 'key: recorded → now'."""
    a, b = _flat(old), _flat(new)
    return [
        f"{k}: {a.get(k, '-')!r} recorded, {b.get(k, '-')!r} now"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def check_fingerprint(study: optuna.Study, print_: dict[str, Any], force: bool) -> list[str]:
    """StudyMismatchError when a study with trials was made differently; returns changes."""
    old = study_meta(study).get("fingerprint")
    if old is None or not study.get_trials(deepcopy=False):
        return []
    changes = fingerprint_change(old, print_)
    if changes and not force:
        more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
        raise StudyMismatchError(
            f"study {study.study_name!r} was run differently: {changes[0]}{more}; "
            "pass --study NEW for a new study, or --force to continue it and record the change"
        )
    return changes


def resume_command() -> str:
    """The command line that resumes this run (the same arguments)."""
    args = sys.argv[1:]
    return "normnas " + shlex.join(args) if args else ""


MIN_RETRAIN_S = 2.0  # under this the best trial's own weights are kept, not a retrain cut short


def closing_s(budget_s: float) -> float:
    """Wall time kept for the end of a `--time` run, after the final retrain: the test pass,
    the checkpoint, the final model's diagnostics and the report (1 s + 2% of the budget)."""
    return 1.0 + 0.02 * budget_s


def final_reserve(study: optuna.Study, data: Any) -> float:
    """Expected wall time of the final retrain: the best trial's cost scaled to train+valid."""
    front = rec.best_records(study)
    if not front:
        return 0.0
    cost = float(front[0].result.get("cost_s", 0.0))
    n_train, n_valid = len(data.train), len(data.valid)
    # a margin for what a trial's cost leaves out: the test pass, the checkpoint, timing noise
    return 1.25 * cost * (n_train + n_valid) / max(n_train, 1) + 1.0


def failure_of(study: optuna.Study, summary: SearchSummary | None) -> UserError | None:
    """SearchFailedError when the study has no successful trial (None otherwise)."""
    if rec.best_records(study):
        return None
    recs = [r for r in rec.records(study) if r.duplicate_of is None and r.status]
    by: dict[str, int] = {}
    for r in recs:
        by[r.status] = by.get(r.status, 0) + 1  # type: ignore[index]
    if summary is not None and summary.stopped_by == "infeasible":
        why = ", ".join(
            f"{constraint_flag(k)} excluded {n}" for k, n in summary.infeasible_reasons.items()
        )
        return NothingFeasibleError(
            f"no architecture met the constraints in {plural(summary.n_infeasible, 'proposal')} "
            f"({why}); relax the limit or use a smaller space"
        )
    n = sum(by.values())
    parts = ", ".join(f"{v} {k}" for k, v in sorted(by.items(), key=lambda p: -p[1]))
    first = next((r for r in recs if r.result.get("error")), None)
    err = f"; first error (#{first.number}): {first.result['error']}" if first else ""
    return SearchFailedError(
        f"0 of {plural(n, 'trial')} succeeded: {parts or 'none ran'}{err}"
    )


def constraint_flag(metric: str) -> str:
    return {"params": "--max-params", "flops": "--max-flops", "latency_ms": "--max-latency-ms"}.get(
        metric, metric
    )
