"""A whole search run from a RunConfig: study, search (inline or workers), final model.

Checks made before any trial runs, each a one-line `UserError`: the device exists, the
data's images are large enough for the space, and a study being resumed was made with
the same space, data and training (its fingerprint; `force` records the change instead).
`cfg.time` is the wall time of the whole run counted from `started` (loading data and the
final retrain included): the search keeps back an estimate of the final retrain's time,
and the final retrain is capped by what is left.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from normnas.config import RunConfig
from normnas.errors import (
    DeviceError,
    NothingFeasibleError,
    SearchFailedError,
    SearchInterrupted,
    StudyMismatchError,
    UserError,
)
from normnas.search import records as rec
from normnas.search.runner import Budget, Constraints, SearchSummary, run_search
from normnas.search.spaces import make_space, network_part, space_spec
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
    final_s: float | None = None  # wall time of the final retrain
    final_status: str | None = None  # "ok", or "timeout" when --time cut it short
    failure: UserError | None = None  # set when no trial succeeded (the command exits 1)
    wall_s: float | None = None  # the whole run
    notes: list[str] = dataclasses.field(default_factory=list)  # lines for the user
    data: Any = None  # the DataBundle searched on


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
    return storage_dir(url) / f"{cfg.study_name}.{cfg.evaluator}.pt"


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
        f"proxy warm-up: {len(picks)} architectures scored by {', '.join(cfg.proxies)} in "
        f"{spent:.1f}s; the best {len(chosen)} start the search"
    )


def run_method(
    cfg: RunConfig, parts: Parts, study: optuna.Study, url: str, budget: Budget, progress: bool
) -> SearchSummary:
    """A gradient method (`cfg.method`): train the relaxed supernet (checkpointed beside the
    study, resumed after a kill), derive the architecture, and record it as the study's one
    trial through the runner. With `--time` the supernet gets at most half of what is left:
    the rest is for the trial and the final retrain."""
    from normnas.oneshot.gradient_study import gradient_options, run_gradient

    options = gradient_options(cfg, parts.train_config)
    checkpoint = storage_dir(url) / f"{cfg.study_name}.{cfg.method}.pt"
    max_time = None if budget.wall_s is None else budget.wall_s / 2
    result, evaluator = run_gradient(
        study, parts.space, parts.data, options, checkpoint, max_time_s=max_time,
        echo=lambda line: print(line, file=sys.stderr, flush=True),
        C=cfg.gradient.C, N=cfg.gradient.N,
    )  # fmt: skip
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    if not finished and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study.enqueue_trial(parts.space.to_params(result.arch))
    return run_search(
        study,
        parts.space,
        evaluator,
        Budget(trials=1),
        cfg.objectives,
        parts.constraints,
        dedup=False,
        progress=progress,
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
    meta = study.user_attrs.get(META_ATTR) or {}
    old = meta.get("fingerprint")
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
            f"no architecture met the constraints in {summary.n_infeasible} proposals ({why}); "
            "relax the limit or use a smaller space"
        )
    n = sum(by.values())
    parts = ", ".join(f"{v} {k}" for k, v in sorted(by.items(), key=lambda p: -p[1]))
    first = next((r for r in recs if r.result.get("error")), None)
    err = f"; first error (#{first.number}): {first.result['error']}" if first else ""
    return SearchFailedError(f"0 of {n} trials succeeded: {parts or 'none ran'}{err}")


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


def run(
    cfg: RunConfig,
    space: SearchSpace | None = None,
    data: Any = None,
    progress: bool = False,
    started: float | None = None,
    evaluate: Any = None,
) -> SearchOutcome:
    """The whole run; `started` (time.monotonic()) is when the command began (for `time`).

    `evaluate` (a function, see `normnas.search.custom`) replaces the config's judge.
    """
    t0 = time.monotonic() if started is None else started
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_device(cfg.device)
    check_evaluate(cfg, evaluate)
    if cfg.executor == "ray":
        from normnas.execute.ray_executor import import_ray

        import_ray()  # a missing extra fails before the data is loaded
    # several processes share a journal file by default (Ray actors are processes too)
    url = cfg.storage or default_storage(2 if cfg.executor == "ray" else cfg.workers)
    storage = open_storage(url)
    parts = build_parts(cfg, space, data, url, judge=False)
    study = make_study(cfg, parts.space, storage)
    print_ = fingerprint(cfg, parts.space)
    if evaluate is not None:  # resuming with another function would mix incomparable values
        from normnas.search.custom import FunctionEvaluator

        parts.evaluator = FunctionEvaluator(
            evaluate, parts.space, parts.data, cfg.objectives, seed=cfg.seed
        )
        print_["judge"] = {"evaluator": "function", "function": parts.evaluator.name}
    changes = check_fingerprint(study, print_, cfg.force)
    recovered = recover_interrupted(study)
    meta = dict(study.user_attrs.get(META_ATTR) or {})
    history = list(meta.get("changes", [])) + ([{"forced": changes}] if changes else [])
    study.set_user_attr(
        META_ATTR,
        {
            "config": cfg.model_dump(mode="json"),
            "space": space_spec(parts.space),
            "versions": versions(),
            "fingerprint": print_,
            "changes": history,
            "command": resume_command(),
        },
    )
    if not study.metric_names:
        with warnings.catch_warnings():  # experimental in Optuna, but what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(cfg.objectives))
    wall = None if cfg.time is None else cfg.time - (time.monotonic() - t0)
    if wall is not None and wall <= 0:
        raise UserError(f"--time {cfg.time:g}s was used up before the search began (loading)")
    budget = Budget(trials=cfg.trials, wall_s=wall)
    summary: SearchSummary | None = None
    notes = [f"changed since the study began (--force): {c}" for c in changes]
    try:
        # a supernet is trained here, after the checks (a killed training resumes), and in
        # the parent only: workers load its finished checkpoint
        if cfg.method is not None:
            from normnas.execute.workers import stop_on_signals

            with stop_on_signals():
                summary = run_method(cfg, parts, study, url, budget, progress)
        else:
            if evaluate is None:
                parts.evaluator = make_evaluator(cfg, parts, url)
            if cfg.proxy_warmup and "proxy_warmup_s" not in study.user_attrs:
                notes.append(warm_up(cfg, parts, study))
            if cfg.time is not None:  # the supernet's training and the warm-up took their share
                budget.wall_s = cfg.time - (time.monotonic() - t0)
                if budget.wall_s <= 0:
                    raise UserError(f"--time {cfg.time:g}s was used up before the search began")
            if cfg.executor == "ray":
                from normnas.execute.ray_executor import run_on_ray

                if space is not None:
                    raise UserError("--executor ray needs the space given by name")
                report = run_on_ray(cfg, url, budget, parts.data)
                notes += report.notes
                recovered += report.recovered
            elif cfg.workers > 1:
                from normnas.execute.workers import run_workers

                if space is not None or data is not None:
                    raise UserError("--workers > 1 needs the space and data given by name")
                report = run_workers(cfg, url, budget, progress=progress)
                notes += list(getattr(report, "notes", []) or [])
                recovered += list(getattr(report, "recovered", []) or [])
            else:
                from normnas.execute.workers import stop_on_signals

                with stop_on_signals():  # SIGTERM as Ctrl-C; never cuts a storage write
                    summary = run_search(
                        study,
                        parts.space,
                        parts.evaluator,
                        budget,
                        cfg.objectives,
                        parts.constraints,
                        dedup=cfg.dedup,
                        progress=progress,
                        reserve_s=(lambda: final_reserve(study, parts.data)) if cfg.final else None,
                    )
    except KeyboardInterrupt:
        raise SearchInterrupted(
            "search stopped; the running trial was marked interrupted and will be re-run "
            "on resume (finished trials are kept)",
            resume=resume_command(),
        ) from None
    if summary is not None:  # what the report's summary says of this run
        study.set_user_attr(
            "last_run",
            {
                "stopped_by": summary.stopped_by,
                "wall_s": summary.wall_s,
                "n_evaluated": summary.n_evaluated,
                "status_counts": summary.status_counts,
            },
        )
    # a trial of a run killed just after creating it has no owner and is only taken for
    # dead once UNOWNED_GRACE_S old: check again now that this run's search has ended
    recovered += [n for n in recover_interrupted(study) if n not in recovered]
    front = rec.best_records(study)
    best = front[0] if front else None
    failure = failure_of(study, summary)
    test_acc, model_path, final_s, final_status = None, None, None, None
    if cfg.final and best is not None:
        from normnas.search import final

        arch = parts.space.from_params(best.params)
        tc = parts.train_config
        if cfg.time is not None:
            left = max(cfg.time - (time.monotonic() - t0), 1.0)
            cap = tc.max_time_s
            tc = dataclasses.replace(tc, max_time_s=left if cap is None else min(cap, left))
        f0 = time.monotonic()
        try:
            fm = final.retrain(parts.space, arch, parts.data, tc, cfg.study_name, best.number)
        except KeyboardInterrupt:
            raise SearchInterrupted(
                "final retrain stopped; the search's trials are all kept",
                resume=resume_command(),
            ) from None
        final_s = time.monotonic() - f0
        final_status = str(fm.checkpoint.get("final_status", "ok"))
        model_path = final.save(fm, storage_dir(url) / f"{cfg.study_name}-best.pt")
        test_acc = fm.test_accuracy
        study.set_user_attr("model_path", str(model_path))
        study.set_user_attr("test_accuracy", test_acc)
        study.set_user_attr("final_s", final_s)
        from normnas.search.final_diagnostics import record_final_model

        try:  # BN diagnostics, costs and latency: a report needs only the storage then
            record_final_model(study, model_path)
        except Exception as e:  # a figure for the report, never a reason to fail the run
            notes.append(f"final model diagnostics not recorded: {type(e).__name__}: {e}")
        if final_status == "timeout":
            notes.append(
                f"the final retrain was cut by --time after {fm.checkpoint.get('epochs_run')} of "
                f"{tc.epochs} epochs; its test accuracy is of that shorter training"
            )
    return SearchOutcome(
        study,
        summary,
        best,
        front,
        test_acc,
        model_path,
        url,
        recovered,
        final_s=final_s,
        final_status=final_status,
        failure=failure,
        wall_s=time.monotonic() - t0,
        notes=notes,
        data=parts.data,
    )
