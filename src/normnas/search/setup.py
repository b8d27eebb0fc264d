"""The parts of a search run made from a RunConfig, and the checks made before any trial.

Space, data, judge (evaluator) and study; each check is a one-line `UserError`: the device
exists, the data's images are large enough for the space, and a study being resumed was
made with the same space, data and training (its fingerprint; `force` records the change
instead). The whole run (`normnas.session.run`) and the worker processes build on these;
nothing here knows how trials are executed.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from normnas.config import RunConfig
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
from normnas.search.spaces import make_space, network_part, space_spec
from normnas.search.strategies import make_pruner, make_sampler
from normnas.search.study import (
    default_storage,
    open_study,
    safe_file_stem,
    storage_dir,
    study_meta,
)
from normnas.spaces.base import SearchSpace
from normnas.text import plural


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


def supernet_path(cfg: RunConfig, url: str) -> Path:
    """Where a study's supernet checkpoint lives: beside the study's storage."""
    return storage_dir(url) / f"{safe_file_stem(cfg.study_name)}.{cfg.evaluator}.pt"


def trial_checkpoints(study_name: str, url: str) -> TrialCheckpoints:
    """Where a study keeps its best trials' trained weights: NAME.trials/ beside its storage."""
    return TrialCheckpoints(storage_dir(url) / f"{safe_file_stem(study_name)}.trials", keep=3)


def make_evaluator(cfg: RunConfig, parts: Parts, url: str) -> Any:
    """The study's judge: training from scratch, or a (trained or reloaded) supernet."""
    from normnas.search.evaluators import TrainEvaluator

    if cfg.evaluator == "proxy":
        from normnas.proxies import ProxyEvaluator

        return ProxyEvaluator(
            parts.space, parts.data, tuple(cfg.proxies), seed=cfg.seed, device=cfg.device
        )
    if cfg.evaluator == "train":
        return TrainEvaluator(
            parts.space,
            parts.data,
            parts.train_config,
            cfg.objectives,
            constraints=parts.constraints,
            checkpoints=trial_checkpoints(cfg.study_name, url),
        )
    from normnas.oneshot import (
        BNIndicatorEvaluator,
        SupernetEvaluator,
        SupernetOptions,
        prepare_supernet,
    )

    o = cfg.oneshot
    options = SupernetOptions(
        judge=cfg.evaluator,
        sampling=o.sampling,
        affine=o.affine,
        C=o.C,
        N=o.N,
        warmup_epochs=o.warmup_epochs,
        bn_epochs=o.bn_epochs,
    )
    tc = parts.train_config
    if o.epochs is not None:
        tc = dataclasses.replace(tc, epochs=o.epochs)
    supernet = prepare_supernet(parts.space, parts.data, tc, options, supernet_path(cfg, url))
    if cfg.evaluator == "bn-indicator":
        return BNIndicatorEvaluator(supernet, parts.data)
    return SupernetEvaluator(
        supernet, parts.data, bn_mode=o.bn_mode, calib_batches=o.calib_batches, seed=cfg.seed
    )


def warm_up(cfg: RunConfig, parts: Parts, study: optuna.Study) -> str:
    """Score `cfg.proxy_warmup` random architectures with the proxies and enqueue the best
    (as many as the strategy starts from) to be evaluated first; once per study. Its time
    comes out of `--time` like any other work of the command."""
    from normnas.proxies import proxy_warmup, seed_count, seed_study

    start = time.perf_counter()
    picks = proxy_warmup(
        parts.space, parts.data, cfg.proxy_warmup, tuple(cfg.proxies), seed=cfg.seed,
        device=cfg.device,
    )  # fmt: skip
    chosen = seed_study(study, parts.space, picks, seed_count(study.sampler))
    spent = time.perf_counter() - start
    study.set_user_attr("proxy_warmup_s", spent)
    return (
        f"proxy warm-up: {plural(len(picks), 'architecture')} scored by "
        f"{', '.join(cfg.proxies)} in "
        f"{spent:.1f}s; the best {len(chosen)} start the search"
    )


def build_parts(
    cfg: RunConfig,
    space: SearchSpace | None = None,
    data: Any = None,
    url: str | None = None,
    judge: bool = True,
) -> Parts:
    """Space, data, constraints, training config and (with `judge`) the evaluator."""
    from normnas.data import load

    if space is None:
        space = make_space(cfg.space.name, cfg.space.space_options(), cfg.space.recipe)
    if data is None:
        data = load(
            cfg.data,
            root=cfg.data_root,
            verify=cfg.verify,
            valid_fraction=cfg.valid_fraction,
            seed=cfg.seed,
        )
    check_image_size(space, data)
    constraints = Constraints(**cfg.constraints.model_dump())
    parts = Parts(space, data, None, constraints, train_config(cfg))
    if judge:
        parts.evaluator = make_evaluator(
            cfg, parts, url or cfg.storage or default_storage(cfg.workers)
        )
    return parts


def worker_seed(seed: int, index: int) -> int:
    """Worker 0 uses the seed itself; others a derived one (no two workers share a stream)."""
    return seed if index == 0 else int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def make_study(cfg: RunConfig, space: SearchSpace, storage: Any, index: int = 0) -> optuna.Study:
    sampler = make_sampler(
        cfg.strategy, space, worker_seed(cfg.seed, index), **cfg.strategy_options
    )
    pruner = make_pruner(cfg.pruner, **cfg.pruner_options)
    return open_study(cfg.study_name, storage, rec.directions(cfg.objectives), sampler, pruner)


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


def fingerprint(cfg: RunConfig, space: SearchSpace) -> dict[str, Any]:
    """What defines a study's results: rerunning with a change would mix incomparable trials."""
    data: dict[str, Any] = {"name": cfg.data}
    path = Path(cfg.data.split(":", 1)[1] if ":" in cfg.data[2:] else cfg.data).expanduser()
    if path.exists():
        data["path"] = str(path.resolve())
        if path.is_file():
            data["bytes"] = path.stat().st_size
    judge: dict[str, Any] = {"evaluator": cfg.evaluator}
    if cfg.evaluator in ("supernet", "bn-indicator"):
        judge["oneshot"] = cfg.oneshot.model_dump(mode="json")
    if cfg.evaluator == "proxy":
        judge["proxies"] = list(cfg.proxies)
    return {
        "space": space_spec(space),
        "data": data,
        "judge": judge,
        "valid_fraction": cfg.valid_fraction,
        "seed": cfg.seed,
        "train": cfg.train.model_dump(mode="json"),
        "objectives": list(cfg.objectives),
    }


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


def check_evaluate(cfg: RunConfig, evaluate: Any) -> None:
    """ConfigError when a custom evaluate function (or its absence) does not fit `cfg`."""
    from normnas.errors import ConfigError

    custom = [o for o in cfg.objectives if rec.is_custom(o)]
    if evaluate is None:
        if custom:
            raise ConfigError(
                f"--objective {custom[0]}: a metric of your own needs "
                "normnas.search(evaluate=your_function); the built-in judges give "
                "accuracy, params, flops and latency"
            )
        return
    from normnas.search.custom import call_mode

    call_mode(evaluate)  # a function whose signature fits: before any data is loaded
    if cfg.evaluator != "train" or cfg.method is not None:
        raise ConfigError("evaluate: your function is the judge; it takes no evaluator= or method=")
    if cfg.workers > 1:
        raise ConfigError("evaluate: your function runs in this process; use workers=1")
