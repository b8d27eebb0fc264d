"""A whole search run from a RunConfig: study, search (inline, workers or Ray), final model.

The parts come from `normnas.assemble`, the judge from `normnas.judges` and the checks from
`normnas.search.setup`; this module picks the executor and the progress display, so that
neither the loop nor the executors import it (no circle).
`cfg.time` is the wall time of the whole run counted from `started` (loading data and the
final retrain included): the search keeps back an estimate of the final retrain's time,
and the final retrain is capped by what is left.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from normnas.assemble import build_parts, check_evaluate, fingerprint, make_study
from normnas.config import RunConfig
from normnas.errors import ConfigError, SearchInterrupted, UserError
from normnas.judges import make_evaluator, warm_up
from normnas.judges.cascade import parse_cascade
from normnas.search import records as rec
from normnas.search.runner import Budget, SearchSummary, run_search
from normnas.search.setup import (
    MIN_RETRAIN_S,
    Parts,
    check_device,
    check_fingerprint,
    closing_s,
    failure_of,
    final_reserve,
    resume_command,
    trial_checkpoints,
)
from normnas.search.spaces import space_spec
from normnas.search.study import (
    default_storage,
    open_storage,
    recover_interrupted,
    safe_file_stem,
    set_study_meta,
    storage_dir,
    study_meta,
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
    final_status: str | None = None  # "ok"; "timeout" when --time cut it short; or
    # "trial-weights" when the best trial's own network was kept instead (see final_note)
    final_note: str | None = None  # why the model is not a plain retrain, when it is not
    failure: UserError | None = None  # set when no trial succeeded (the command exits 1)
    wall_s: float | None = None  # the whole run
    notes: list[str] = dataclasses.field(default_factory=list)  # lines for the user
    data: Any = None  # the DataBundle searched on


def run_method(
    cfg: RunConfig,
    parts: Parts,
    study: optuna.Study,
    url: str,
    budget: Budget,
    progress: bool | str,
) -> SearchSummary:
    """A gradient method (`cfg.method`): train the relaxed supernet (checkpointed beside the
    study, resumed after a kill), derive the architecture, and record it as the study's one
    trial through the runner. With `--time` the supernet gets at most half of what is left:
    the rest is for the trial and the final retrain."""
    from normnas.oneshot.gradient_study import gradient_options, run_gradient

    options = gradient_options(cfg, parts.train_config)
    checkpoint = storage_dir(url) / f"{safe_file_stem(cfg.study_name)}.{cfg.method}.pt"
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
        progress=_display(Budget(trials=1), cfg.objectives, progress, cfg.evaluator),
    )


def _auto_cascade(
    cfg: RunConfig, parts: Parts, study: optuna.Study, t0: float
) -> tuple[RunConfig, str]:
    """`--cascade auto` made concrete: the cascade the study recorded when it is resumed,
    else one sized to the time left on this machine (`normnas.judges.auto`)."""
    recorded = (study_meta(study).get("config") or {}).get("cascade")
    if recorded and recorded != "auto":
        return cfg.model_copy(update={"cascade": recorded}), (
            f"cascade {recorded} (chosen when this study began)"
        )
    from normnas.judges.auto import choose

    left = float(cfg.time or 0) - (time.monotonic() - t0)
    choice = choose(cfg, parts, left)
    return cfg.model_copy(update={"cascade": choice.spec}), choice.line


def _cascade_config(cfg: RunConfig, stages: Any, evaluate: Any) -> RunConfig:
    """The run's config with the cascade's last judge as its evaluator; ConfigError (one
    line) for what a cascade cannot run with."""
    last = stages[-1].judge
    if cfg.method is not None or cfg.workers > 1 or cfg.executor == "ray":
        raise ConfigError(
            "--cascade: runs its stages in this process; it takes no --method, --workers or "
            "--executor ray"
        )
    if evaluate is not None:
        raise ConfigError("--cascade: its last stage is a judge by name, not evaluate=")
    if cfg.evaluator not in ("train", last):
        raise ConfigError(
            f"--cascade: its last stage judges with {last}, but --evaluator is {cfg.evaluator}"
        )
    if any(s.judge == "train" for s in stages[:-1]):
        raise ConfigError("--cascade: train can only be the last (dearest) stage")
    return cfg.model_copy(update={"evaluator": last})


def _reserve(cfg: RunConfig, study: optuna.Study, data: Any) -> Any:
    """The wall time a search keeps free for what follows it (a function of the study)."""
    if cfg.time is None:
        return None
    after = closing_s(cfg.time)
    if not cfg.final:
        return lambda: after
    return lambda: final_reserve(study, data) + after


def _display(
    budget: Budget, objectives: Any, mode: bool | str, judge: str | None = None
) -> Any:
    """The progress display of `mode` (see `report.progress.make_progress`), or None;
    `judge` names what a value is (a proxy's score is not an accuracy)."""
    if not mode:
        return None
    from normnas.report.progress import make_progress

    return make_progress(budget, tuple(objectives), mode, judge=judge)


def run(
    cfg: RunConfig,
    space: SearchSpace | None = None,
    data: Any = None,
    progress: bool | str = False,
    started: float | None = None,
    evaluate: Any = None,
) -> SearchOutcome:
    """The whole run; `started` (time.monotonic()) is when the command began (for `time`).

    `evaluate` (a function, see `normnas.search.custom`) replaces the config's judge.
    """
    t0 = time.monotonic() if started is None else started
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stages = None
    auto = cfg.cascade == "auto"
    if cfg.cascade:  # checked before the data is loaded
        stages = parse_cascade("proxy:1,train" if auto else cfg.cascade)
        cfg = _cascade_config(cfg, stages, evaluate)
        if auto and cfg.time is None:
            raise ConfigError("--cascade auto: sizes the stages to --time; give --time")
    elif cfg.proposer != "random":
        raise ConfigError(
            f"--proposer {cfg.proposer}: proposes a cascade's first stage; give --cascade"
        )
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
    auto_line = None
    if auto:  # measured here, after loading: the time it takes is part of the budget
        cfg, auto_line = _auto_cascade(cfg, parts, study, t0)
        stages = parse_cascade(str(cfg.cascade))
    print_ = fingerprint(cfg, parts.space)
    if evaluate is not None:  # resuming with another function would mix incomparable values
        from normnas.search.custom import FunctionEvaluator

        parts.evaluator = FunctionEvaluator(
            evaluate, parts.space, parts.data, cfg.objectives, seed=cfg.seed
        )
        print_["judge"] = {"evaluator": "function", "function": parts.evaluator.name}
    changes = check_fingerprint(study, print_, cfg.force)
    recovered = recover_interrupted(study)
    meta = study_meta(study)
    history = list(meta.get("changes", [])) + ([{"forced": changes}] if changes else [])
    set_study_meta(  # in parts under 1,024 characters: optuna-dashboard cuts longer values
        study,
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
            # names only ("f1", not "f1:maximize"): the directions are the study's own
            study.set_metric_names([rec.parse_objective(o)[0] for o in cfg.objectives])
    wall = None if cfg.time is None else cfg.time - (time.monotonic() - t0)
    if wall is not None and wall <= 0:
        raise UserError(f"--time {cfg.time:g}s was used up before the search began (loading)")
    budget = Budget(trials=cfg.trials, wall_s=wall)
    summary: SearchSummary | None = None
    notes = [f"changed since the study began (--force): {c}" for c in changes]
    if auto_line is not None:
        notes.append(auto_line)
        if progress:  # said at once: the user sees what runs before it runs
            print(auto_line, file=sys.stderr, flush=True)
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
            if stages is not None:
                from normnas.judges.screening import prepare_cascade

                def left() -> float | None:
                    return None if cfg.time is None else cfg.time - (time.monotonic() - t0)

                echo = (lambda line: print(line, file=sys.stderr, flush=True)) if progress else None
                study.sampler, line = prepare_cascade(
                    cfg, parts, study, url, stages, left, echo
                )
                notes.append(line)
                if stages[-1].n is not None:
                    n = stages[-1].n
                    budget.trials = n if budget.trials is None else min(budget.trials, n)
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
                display = _display(budget, cfg.objectives, progress, cfg.evaluator)
                try:
                    report = run_workers(cfg, url, budget, display=display)
                finally:  # also when the study cannot be opened (closing twice is harmless)
                    if display is not None:
                        display.close()
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
                        progress=_display(budget, cfg.objectives, progress, cfg.evaluator),
                        reserve_s=_reserve(cfg, study, parts.data),
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
    test_acc, model_path, final_s, final_status, final_note = None, None, None, None, None
    if cfg.final and best is not None:
        from normnas.search import final

        arch = parts.space.from_params(best.params)
        kept = trial_checkpoints(cfg.study_name, url).find(str(best.result.get("key", "")))
        tc = parts.train_config
        no_time = False
        if cfg.time is not None:
            # what follows the retrain (test, save, diagnostics, report) has its share too
            left = cfg.time - (time.monotonic() - t0) - closing_s(cfg.time)
            no_time = left < MIN_RETRAIN_S
            cap = tc.max_time_s
            left = max(left, 1.0)
            tc = dataclasses.replace(tc, max_time_s=left if cap is None else min(cap, left))
        f0 = time.monotonic()
        try:
            if no_time and kept is not None:
                fm, final_note = final.from_trial(
                    kept, parts.data, best.number, cfg.study_name,
                    f"no time was left in --time {cfg.time:g}s for a final retrain; trial "
                    f"#{best.number}'s own network scored",
                )  # fmt: skip
            else:
                fm = final.retrain(parts.space, arch, parts.data, tc, cfg.study_name, best.number)
                fm, final_note = final.choose_final(fm, parts.data, kept, best.number)
        except KeyboardInterrupt:
            raise SearchInterrupted(
                "final retrain stopped; the search's trials are all kept",
                resume=resume_command(),
            ) from None
        final_s = time.monotonic() - f0
        final_status = str(fm.checkpoint.get("final_status", "ok"))
        if final_note is not None:  # said apart from the notes: a warning, wherever read
            fm.checkpoint.setdefault("note", final_note)
        model_path = final.save(fm, storage_dir(url) / f"{safe_file_stem(cfg.study_name)}-best.pt")
        test_acc = fm.test_accuracy
        study.set_user_attr("model_path", str(model_path))
        study.set_user_attr("test_accuracy", test_acc)
        study.set_user_attr("final_s", final_s)
        study.set_user_attr("final_source", str(fm.checkpoint.get("source", "retrain")))
        study.set_user_attr("final_note", final_note)
        from normnas.search.final_diagnostics import record_final_model

        left = None if cfg.time is None else cfg.time - (time.monotonic() - t0)
        try:  # BN diagnostics, costs and latency: a report needs only the storage then
            record_final_model(study, model_path, time_left_s=left)
        except Exception as e:  # a figure for the report, never a reason to fail the run
            notes.append(f"final model diagnostics not recorded: {type(e).__name__}: {e}")
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
        final_note=final_note,
        failure=failure,
        wall_s=time.monotonic() - t0,
        notes=notes,
        data=parts.data,
    )
