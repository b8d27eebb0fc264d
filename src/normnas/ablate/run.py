"""Run an ablation: its study, its design, its cells through the search runner, its stats.

An ablation is an Optuna study (same storage and runner as a search) whose trials are the
design's cells × seeds, with no pruner: every run trains all its epochs. The design and
what defines the runs (data, architecture, factors, seeds, epochs, base recipe) are
recorded in the study (`ABLATE_ATTR`); rerunning the same command resumes it: finished
runs are kept, a run cut by a kill is marked interrupted and re-run, nothing finished is
redone. A different configuration under the same `--study`
is refused (StudyMismatchError).

With `--time` and the `auto` design, the baseline cell's first seed is run first: its
measured time sizes the design (see `design.choose_design`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.pruners import NopPruner

from normnas.ablate.cells import (
    AblationEvaluator,
    AblationSpace,
    DesignSampler,
    default_arch,
    fitted_macro_space,
    missing_points,
)
from normnas.ablate.config import AblateConfig
from normnas.ablate.design import Design, choose_design
from normnas.ablate.stats import AblationStats, Obs, analyse
from normnas.errors import SearchInterrupted, StudyMismatchError, UserError
from normnas.search import records as rec
from normnas.search.runner import Budget, run_search
from normnas.search.study import default_storage, open_storage, open_study, recover_interrupted
from normnas.spaces import MacroArch, MacroSpace
from normnas.text import plural

EXIT_INTERRUPTED = 130  # a worker stopped by SIGINT/SIGTERM (or its parent's death)
ABLATE_ATTR = "normnas_ablate"  # study user attribute: fingerprint, design, seeds, command
Echo = Callable[[str], None]


@dataclasses.dataclass
class AblationOutcome:
    study: optuna.Study
    design: Design
    stats: AblationStats
    storage: str
    seeds: tuple[int, ...]
    notes: list[str]
    obs: list[Obs] = dataclasses.field(default_factory=list)
    report_path: str | None = None
    wall_s: float = 0.0


# -- the architecture ----------------------------------------------------------------------
def resolve_arch(text: str, url: str, space: str = "macro") -> tuple[Any, Any]:
    """`macro-default`, `study:NAME` (the best of a macro search in the storage), or a macro
    architecture string; the space returned holds every norm and placement of its blocks.
    With `space="seq"`: `seq-default`, `study:NAME` of a seq search, or a seq string."""
    text = text.strip()
    if space == "seq":
        return _resolve_seq(text, url)
    if text == "macro-default":
        arch = default_arch()
        return fitted_macro_space(arch), arch
    if text.startswith("study:"):
        return _best_of_study(text.removeprefix("study:"), url)
    try:
        arch = _parse_macro(text)
    except ValueError as err:
        raise UserError(
            f"--arch {text!r}: {err}; expected macro-default, study:NAME (the best of a macro "
            "search) or a macro architecture string like '[w16-k3-batchnorm-conv_norm_act-relu"
            "-plain] [...] dropout=0.0'"
        ) from None
    return fitted_macro_space(arch), arch


def _resolve_seq(text: str, url: str) -> tuple[Any, Any]:
    from normnas.ablate.cells import seq_default
    from normnas.spaces.seq import SeqSpace

    if text == "seq-default":
        space, arch = seq_default()
        return space.widened(arch), arch
    if text.startswith("study:"):
        from normnas.search.study import load_study, study_meta

        name = text.removeprefix("study:")
        study = load_study(name, url)
        front = rec.best_records(study)
        if not front or not front[0].arch:
            raise UserError(f"--arch study:{name}: the study has no completed trial")
        space_cfg = study_meta(study).get("config", {}).get("space", {})
        if space_cfg.get("name") != "seq":
            raise UserError(
                f"--arch study:{name}: its space is {space_cfg.get('name')!r}, not seq "
                "(--space seq ablates the blocks of a seq search)"
            )
        found = SeqSpace.from_dict(dict(space_cfg.get("options") or {}))
        arch = found.from_str(front[0].arch.split(" @ ")[0])
        return found.widened(arch), arch
    from normnas.spaces.seq import parse_seq_arch

    try:
        arch = parse_seq_arch(text)
        return SeqSpace.fitted(arch), arch
    except ValueError as err:
        raise UserError(
            f"--arch {text!r}: {err}; expected seq-default, study:NAME (the best of a seq "
            "search) or a seq architecture string like "
            "'[conv-w32-k7-d1-layernorm-pre] [attn-w64-h4-m2-layernorm-pre] dropout=0.0'"
        ) from None


def _parse_macro(text: str) -> MacroArch:
    # the blocks' grammar belongs to the macro space: read each block with its parser
    from normnas.spaces.macro import _parse_block

    body, sep, dropout = text.rpartition(" dropout=")
    stages = re.findall(r"\[([^\]]*)\]", body)
    if not sep or not stages or re.sub(r"\[[^\]]*\]", "", body).strip():
        raise ValueError("not of the form '[block, ...] [...] dropout=P'")
    return MacroArch(
        tuple(tuple(_parse_block(b) for b in s.split(",")) for s in stages), float(dropout)
    )


def _best_of_study(name: str, url: str) -> tuple[MacroSpace, MacroArch]:
    from normnas.nn import ALL_NORM_NAMES
    from normnas.search.study import load_study, study_meta
    from normnas.spaces._macro_model import PLACEMENTS

    study = load_study(name, url)
    front = rec.best_records(study)
    if not front or not front[0].arch:
        raise UserError(f"--arch study:{name}: the study has no completed trial")
    space_cfg = study_meta(study).get("config", {}).get("space", {})
    if space_cfg.get("name") != "macro":
        raise UserError(
            f"--arch study:{name}: its space is {space_cfg.get('name')!r}; ablate varies the "
            "norm and placement of macro-space blocks (search with --space macro)"
        )
    options = dict(space_cfg.get("options") or {})
    base = MacroSpace.from_dict(options).to_dict()
    base["norms"], base["placements"] = list(ALL_NORM_NAMES), list(PLACEMENTS)
    base["dropout"] = list(dict.fromkeys([*base["dropout"], 0.0, 0.2]))
    space = MacroSpace.from_dict(base)
    arch_text = front[0].arch.split(" @ ")[0]  # a joint search: the architecture part
    return space, space.from_str(arch_text)


def ablation_data(cfg: AblateConfig) -> Any:
    """The data the runs train and score on. With --space seq, each run trains on the whole
    train split and is scored on the test split: UCR valid splits hold 4 to 14 series, too
    few to tell treatments apart, and a designed experiment selects nothing on its score."""
    from normnas.data import load

    data = load(cfg.data, root=cfg.data_root, seed=0, sequences=cfg.space == "seq")
    if cfg.space == "seq":
        data = dataclasses.replace(data, train=data.train_plus_valid(), valid=data.test)
    return data


# -- the study -------------------------------------------------------------------------------
def fingerprint(cfg: AblateConfig, space: MacroSpace, arch: MacroArch) -> dict[str, Any]:
    """What defines the runs: a rerun with another value would mix incomparable runs."""
    extra = {} if cfg.space == "macro" else {"space": cfg.space}  # macro studies: as before
    return {
        **extra,
        "data": cfg.data,
        "arch": space.to_str(arch),
        "factors": [f.to_dict() for f in cfg.factor_list()],
        "seeds": cfg.seeds,
        "train": cfg.base_train(),
        "design": cfg.design,
    }


def default_study_name(cfg: AblateConfig, print_: dict[str, Any]) -> str:
    digest = hashlib.sha1(json.dumps(print_, sort_keys=True, default=str).encode()).hexdigest()
    data = re.sub(r"[^A-Za-z0-9]+", "-", cfg.data.rsplit("/", 1)[-1]).strip("-") or "data"
    return f"ablate-{data}-{digest[:8]}"


def recorded(study: optuna.Study, print_: dict[str, Any]) -> Design | None:
    """The design recorded in the study, after checking it was made with the same settings."""
    meta = study.user_attrs.get(ABLATE_ATTR)
    if not meta:
        if study.get_trials(deepcopy=False):
            raise StudyMismatchError(
                f"study {study.study_name!r} holds trials but is not an ablation; pass --study NEW"
            )
        return None
    from normnas.search.setup import fingerprint_change

    changes = fingerprint_change(_plain(meta["fingerprint"]), _plain(print_))
    if changes:
        more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
        raise StudyMismatchError(
            f"study {study.study_name!r} was run differently: {changes[0]}{more}; "
            "pass --study NEW (or drop --study for a study named after the settings)"
        )
    return None if meta.get("design") is None else Design.from_dict(meta["design"])


def _plain(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


def observations(study: optuna.Study, space: AblationSpace) -> list[Obs]:
    """One Obs per design point with a result; a point whose canonical twin ran (no norm:
    conv→act→norm is conv→norm→act) takes the twin's result as its own."""
    by_key: dict[str, rec.TrialRecord] = {}
    for r in rec.records(study):
        if r.status not in rec.COUNTED or not r.params:
            continue
        try:
            point = space.from_params(r.params)
        except ValueError:
            continue
        by_key.setdefault(space.to_str(space.canonical(point)), r)
    out = []
    for point in space.points:
        found = by_key.get(space.to_str(space.canonical(point)))
        if found is None:
            continue
        acc = found.result.get("accuracy")
        epoch_s = (found.result.get("extra") or {}).get("epoch_s")
        out.append(
            Obs(
                tuple(space.design.as_dict(point.cell).items()),
                point.seed,
                str(found.status),
                None if acc is None else float(acc),
                None if epoch_s is None else float(epoch_s),
            )
        )
    return out


def _n_keys(space: AblationSpace) -> int:
    return len({space.to_str(space.canonical(p)) for p in space.points})


def _enqueue_missing(study: optuna.Study, space: AblationSpace) -> int:
    todo = missing_points(study, space)
    for p in todo:
        study.enqueue_trial(space.to_params(p))
    return len(todo)


def _run_inline(
    study: optuna.Study, space: AblationSpace, evaluator: Any, wall: float | None, progress: bool
) -> None:
    from normnas.execute.workers import stop_on_signals

    budget = Budget(trials=_n_keys(space), wall_s=wall)
    with stop_on_signals():  # SIGTERM as Ctrl-C: the running trial is marked interrupted
        display = None
        if progress:
            from normnas.report.progress import make_progress

            display = make_progress(budget, ("accuracy",), True)
        run_search(study, space, evaluator, budget, ("accuracy",), progress=display)


# -- the whole command -----------------------------------------------------------------------
def run_ablation(
    cfg: AblateConfig,
    progress: bool = False,
    echo: Echo = lambda line: print(line, file=sys.stderr, flush=True),
    started: float | None = None,
) -> AblationOutcome:
    """Open or resume the ablation study, run its missing cells, and compute its statistics."""
    from normnas.search.setup import check_device, check_image_size, resume_command
    from normnas.train import TrainConfig

    t0 = time.monotonic() if started is None else started
    if cfg.executor == "ray":
        from normnas.execute.ray_executor import import_ray

        import_ray()  # not installed: say so before any data is loaded
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_device(cfg.device)
    factors = cfg.factor_list()
    url = cfg.storage or default_storage(cfg.workers)
    macro, base_arch = resolve_arch(cfg.arch_text(), url, cfg.space)
    base = TrainConfig(**cfg.base_train())
    data = ablation_data(cfg)
    check_image_size(macro, data)
    print_ = fingerprint(cfg, macro, base_arch)
    name = cfg.study or default_study_name(cfg, print_)
    storage = open_storage(url)
    study = open_study(name, storage, ["maximize"], pruner=NopPruner())
    seeds = tuple(range(cfg.seeds))
    notes: list[str] = []
    design = recorded(study, print_)
    recovered = recover_interrupted(study)
    if recovered:
        notes.append(f"re-queued {plural(len(recovered), 'run')} cut short by an earlier kill")

    def time_left() -> float | None:
        return None if cfg.time is None else cfg.time - (time.monotonic() - t0)

    if design is None:
        # the fingerprint first: a kill during the probe leaves a study that resumes
        study.set_user_attr(ABLATE_ATTR, {"fingerprint": _plain(print_), "design": None})
        trial_s = None
        if cfg.time is not None and cfg.design == "auto" and len(factors) > 1:
            trial_s = _probe(study, name, storage, factors, seeds, macro, base_arch, data, base)
        left = time_left()
        design = choose_design(factors, len(seeds), cfg.design, trial_s, left, cfg.workers)
        study.set_user_attr(
            ABLATE_ATTR,
            {
                "fingerprint": _plain(print_),
                "design": design.to_dict(),
                "seeds": list(seeds),
                "command": resume_command(),
            },
        )
    runs = len(design.cells) * len(seeds)
    echo(f"ablation {name} in {url}")
    echo(
        f"design: {design.describe()}; {plural(len(seeds), 'seed')} -> "
        f"{plural(runs, 'run')} of {plural(cfg.epochs, 'epoch')}"
    )
    space = AblationSpace(design, seeds, macro, base_arch)
    study = open_study(name, storage, ["maximize"], DesignSampler(space), NopPruner())
    _enqueue_missing(study, space)
    left = time_left()
    todo = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    if todo and (left is None or left > 0):
        try:
            if cfg.executor == "ray":
                from normnas.execute.ray_executor import run_job_on_ray

                budget = Budget(trials=_n_keys(space), wall_s=left)
                job = AblateJob(cfg.model_dump(mode="json"), name)
                report = run_job_on_ray(job, cfg.ray, name, url, budget, data, "ablation")
                notes += report.notes
            elif cfg.workers > 1:
                run_workers(cfg, url, name, left)
            else:
                evaluator = AblationEvaluator(space, data, base)
                _run_inline(study, space, evaluator, left, progress)
        except KeyboardInterrupt:
            raise SearchInterrupted(
                "ablation stopped; finished runs are kept and the running one is re-run on resume",
                resume=resume_command(),
            ) from None
    obs = observations(study, space)
    stats = analyse(obs, design, len(seeds))
    outcome = AblationOutcome(study, design, stats, url, seeds, notes, obs)
    if cfg.report:
        from normnas.ablate.html import write_report

        outcome.report_path = str(write_report(outcome, cfg.report))
    outcome.wall_s = time.monotonic() - t0
    return outcome


def _probe(
    study: optuna.Study,
    name: str,
    storage: Any,
    factors: Any,
    seeds: tuple[int, ...],
    macro: MacroSpace,
    arch: MacroArch,
    data: Any,
    base: Any,
) -> float:
    """Seconds of the baseline cell's first seed (run now unless already in the study)."""
    probe = Design("ofat", tuple(factors), (tuple(f.baseline for f in factors),), "probe")
    space = AblationSpace(probe, seeds[:1], macro, arch, seed_choices=seeds)
    study = open_study(name, storage, ["maximize"], DesignSampler(space), NopPruner())
    _enqueue_missing(study, space)
    if study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        _run_inline(study, space, AblationEvaluator(space, data, base), None, False)
    obs = [r for r in rec.records(study) if r.status in rec.COUNTED]
    return float(obs[0].result.get("cost_s", 0.0)) if obs else 0.0


# -- several local worker processes ----------------------------------------------------------
def run_workers(cfg: AblateConfig, url: str, name: str, wall: float | None) -> None:
    """`cfg.workers` processes on the study, each running missing points until none is left.

    On Ctrl-C/SIGTERM each worker marks its running trial interrupted (re-run on resume).
    """
    ctx = mp.get_context("spawn")
    deadline = None if wall is None else time.time() + wall
    data = cfg.model_dump(mode="json")
    procs = [
        ctx.Process(target=_worker, args=(data, url, name, deadline), daemon=True)
        for _ in range(cfg.workers)
    ]
    from normnas.execute.workers import stop_on_signals

    for p in procs:
        p.start()
    try:
        with stop_on_signals():  # Ctrl-C or SIGTERM to this process: stop the workers too
            for p in procs:
                p.join()
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker's handler marks its trial interrupted
        for p in procs:
            p.join(10)
        raise
    if any(p.exitcode == EXIT_INTERRUPTED for p in procs):
        raise KeyboardInterrupt  # a worker was stopped by a signal: so is the ablation
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed:
        raise UserError(f"{len(failed)} of {cfg.workers} workers failed (exit {failed[0]})")


def _loop_parts(cfg: AblateConfig, url: str, name: str, data: Any) -> tuple[Any, Any, Any]:
    """In a worker: the study with its recorded design, the design's space, the evaluator."""
    from normnas.search.study import load_study
    from normnas.train import TrainConfig

    macro, arch = resolve_arch(cfg.arch_text(), url, cfg.space)
    storage = open_storage(url)
    meta = load_study(name, storage).user_attrs[ABLATE_ATTR]
    space = AblationSpace(Design.from_dict(meta["design"]), meta["seeds"], macro, arch)
    study = open_study(name, storage, ["maximize"], DesignSampler(space), NopPruner())
    return study, space, AblationEvaluator(space, data, TrainConfig(**cfg.base_train()))


@dataclasses.dataclass
class AblateJob:
    """The ablation's runs on Ray actors (`execute.ray_executor.RayJob`)."""

    cfg_data: dict[str, Any]
    name: str

    def build(self, url: str, index: int, data: Any) -> Any:
        from normnas.execute.ray_executor import LoopParts

        cfg = AblateConfig.model_validate(self.cfg_data)
        study, space, evaluator = _loop_parts(cfg, url, self.name, data)
        return LoopParts(study, space, evaluator)


def _worker(data: dict[str, Any], url: str, name: str, deadline: float | None) -> None:
    import torch

    from normnas.execute.workers import stop_on_signals

    _watch_parent(os.getppid())
    cfg = AblateConfig.model_validate(data)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.workers))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    images = ablation_data(cfg)
    study, space, evaluator = _loop_parts(cfg, url, name, images)
    wall = None if deadline is None else max(0.1, deadline - time.time())
    try:
        with stop_on_signals(restore=False):
            run_search(
                study, space, evaluator, Budget(trials=_n_keys(space), wall_s=wall),
                ("accuracy",),
            )  # fmt: skip
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)  # the runner marked the running trial interrupted


def _watch_parent(parent: int) -> None:
    """SIGTERM to this worker when its parent dies (even by SIGKILL): no orphan runs on."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="ablate-parent-watch", daemon=True).start()
