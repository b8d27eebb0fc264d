"""Trials on a Ray cluster: `normnas search --executor ray` and `normnas ablate --executor ray`.

Each parallel trial slot is a Ray actor (`_Worker`, with `cpus_per_trial` CPUs and
`gpus_per_trial` GPUs) running the same runner loop as a local worker process, on the same
study. What the loop runs (study, space, evaluator) is a `RayJob`, built in the actor: a
search's (`SearchJob`) or an ablation's (`normnas.ablate.run.AblateJob`). The study's
storage must be one every node reaches (a PostgreSQL URL; on a one-machine
cluster a journal or SQLite file is fine). The samplers and evaluators are unchanged;
only where the loop runs differs.

- Budget: as with local workers, each actor takes a share of the trials left (exact total)
  and the same wall-time deadline.
- Data: the driver loads the data set once and puts it in Ray's object store
  (`ray.put`); each node fetches that object once, and the actors on a node read it from
  their node's store. Nothing is read from a shared folder and no worker downloads it.
- An actor that dies (its process killed, its node lost): its RUNNING trials are re-queued
  (marked `interrupted`, retried first) and a new actor takes over the rest of its share,
  at most MAX_RESTARTS_PER_WORKER times per slot. On a server storage Optuna's heartbeat
  would re-queue them too (see `study`): whichever comes first does it, once.
- Ctrl-C or SIGTERM: every actor is asked to stop (its running trial is marked interrupted
  and re-queued by the actor itself, between two storage writes, never inside one); the
  ones still busy after STOP_WAIT_S are killed and their trials re-queued here. Then
  `SearchInterrupted` with the command that resumes the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from normnas.config import RayOptions, RunConfig
from normnas.errors import UserError
from normnas.execute.workers import (
    MAX_RESTARTS_PER_WORKER,
    STOP_WAIT_S,
    WorkerDeath,
    WorkerReport,
    _in_atomic_code,
    shares,
    stop_on_signals,
    stopped,
)
from normnas.search.runner import Budget

INSTALL = "pip install 'normnas[ray]'"


def import_ray() -> Any:
    """The `ray` module; a one-line UserError saying what to install where it is missing."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray: Ray is not installed; {INSTALL}") from None
    return ray


@dataclass
class LoopParts:
    """What one runner loop runs: `run_search`'s arguments but the budget."""

    study: Any
    space: Any
    evaluator: Any
    objectives: Sequence[str] = ("accuracy",)
    constraints: Any = None
    dedup: bool = True


class RayJob(Protocol):
    """What the actors run, sent to each of them (so picklable: plain data and a class)."""

    def build(self, url: str, index: int, data: Any) -> LoopParts:
        """In the actor: open the study and build the space and evaluator on `data`."""
        ...


@dataclass
class SearchJob:
    """A search's loop: its `RunConfig` (as JSON data) and what `build_parts` makes of it."""

    cfg_data: dict[str, Any]

    def build(self, url: str, index: int, data: Any) -> LoopParts:
        from normnas.assemble import build_parts, make_study
        from normnas.search.study import open_storage

        cfg = RunConfig.model_validate(self.cfg_data)
        parts = build_parts(cfg, data=data, url=url)
        study = make_study(cfg, parts.space, open_storage(url), index)
        return LoopParts(
            study, parts.space, parts.evaluator, cfg.objectives, parts.constraints, cfg.dedup
        )


class _Worker:
    """A Ray actor's body: one runner loop on the shared study."""

    def __init__(self, job: RayJob, url: str, index: int, data: Any, threads: int) -> None:
        import optuna
        import torch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # as many threads as CPUs reserved for this trial (Ray sets no limit by itself)
        torch.set_num_threads(max(1, threads))
        self.parts = job.build(url, index, data)
        self._lock = threading.Lock()
        self._thread: int | None = None  # the thread running `run`, while it runs
        self._stopping = False

    def owner(self) -> str:
        """This actor as a trial's owner ('host:pid:start', see `study.worker_id`)."""
        from normnas.search.study import worker_id

        return worker_id()

    def run(self, trials: int | None, deadline: float | None) -> str:
        """Search until the share or the deadline: 'done' or 'interrupted'."""
        from normnas.search.runner import run_search

        wall = None if deadline is None else max(0.0, deadline - time.time())
        if trials == 0 or wall == 0.0:
            return "done"
        with self._lock:
            if self._stopping:
                return "interrupted"
            self._thread = threading.get_ident()
        try:
            p = self.parts
            run_search(
                p.study,
                p.space,
                p.evaluator,
                Budget(trials=trials, wall_s=wall),
                p.objectives,
                p.constraints,
                dedup=p.dedup,
                count_existing=False,
            )
        except KeyboardInterrupt:  # from `stop`: the runner marked the trial interrupted
            return "interrupted"
        finally:
            with self._lock:
                self._thread = None
        return "done"

    def stop(self) -> None:
        """Interrupt `run` (called from another of the actor's threads).

        KeyboardInterrupt is raised in the loop's thread, as SIGINT is in a local worker,
        and likewise never while Optuna or the database layer runs (a storage write cut
        in the middle would keep its lock): it waits for the loop to leave that code.
        """
        while True:
            with self._lock:
                self._stopping = True
                tid = self._thread
                if tid is None:
                    return
                frame = sys._current_frames().get(tid)
                if frame is not None and not _in_atomic_code(frame):
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(tid), ctypes.py_object(KeyboardInterrupt)
                    )
                    return
            time.sleep(0.02)


@dataclass
class _Slot:
    index: int
    share: int | None
    actor: Any
    owner: str
    ref: Any  # the ObjectRef of its `run`


def _parallel(ray: Any, o: RayOptions) -> int:
    """How many trials run at once: --trials-in-parallel, else what the cluster fits."""
    have = ray.cluster_resources()
    if o.gpus_per_trial > 0 and have.get("GPU", 0) < o.gpus_per_trial:
        raise UserError(
            f"--gpus-per-trial {o.gpus_per_trial:g}: the Ray cluster has "
            f"{have.get('GPU', 0):g} GPUs"
        )
    if have.get("CPU", 0) < o.cpus_per_trial:
        raise UserError(
            f"--cpus-per-trial {o.cpus_per_trial:g}: the Ray cluster has "
            f"{have.get('CPU', 0):g} CPUs"
        )
    if o.trials_in_parallel is not None:
        return o.trials_in_parallel
    fit = int(have.get("CPU", 1) // o.cpus_per_trial)
    if o.gpus_per_trial > 0:
        fit = min(fit, int(have.get("GPU", 0) // o.gpus_per_trial))
    return max(1, fit)


def connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at `address` (None: $RAY_ADDRESS, else start a local one); True when
    this call started or joined it (so the run leaves it again), False when already joined."""
    if ray.is_initialized():
        return False
    import logging

    # Ray runs its workers at nice 15; our actors are the run's whole work, so on a cluster
    # started here they run at the priority a local worker process has: at 15 any ordinary
    # process on the machine starves them (seen: one epoch 35x slower beside two busy loops)
    extra: dict[str, Any] = {}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        extra["_system_config"] = {"worker_niceness": 0}
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=bool(os.environ.get("NORMNAS_DEBUG")),
            **extra,
        )
    except ConnectionError as e:
        raise UserError(f"--ray-address {address}: cannot reach a Ray cluster ({e})") from None
    return True


class _Cluster:
    """The actors of one `run_on_ray` call."""

    def __init__(
        self,
        ray: Any,
        job: RayJob,
        options: RayOptions,
        url: str,
        data: Any,
        deadline: float | None,
        n: int,
    ) -> None:
        self.ray, self.job, self.options, self.url, self.deadline = ray, job, options, url, deadline
        self.cls = ray.remote(max_concurrency=2)(_Worker)  # `run` and `stop` side by side
        self.data = ray.put(data)  # once: each node fetches it once from the object store
        self.live: dict[Any, _Slot] = {}  # run ref -> slot
        self.all: list[_Slot] = []
        self.restarts_left = MAX_RESTARTS_PER_WORKER * n

    def start(self, index: int, share: int | None) -> None:
        o = self.options
        actor = self.cls.options(num_cpus=o.cpus_per_trial, num_gpus=o.gpus_per_trial).remote(
            self.job, self.url, index, self.data, int(o.cpus_per_trial)
        )
        try:
            owner = self.ray.get(actor.owner.remote())  # waits for the actor to be built
        except self.ray.exceptions.RayError as e:  # its __init__ raised (data, storage)
            raise _task_error(index, e) from None
        slot = _Slot(index, share, actor, owner, actor.run.remote(share, self.deadline))
        self.live[slot.ref] = slot
        self.all.append(slot)

    def wait(self, study: Any, report: WorkerReport) -> None:
        """Until every actor is done; replaces dead ones; then raises the first error an
        actor's search raised (the others finish their shares first, as local workers do)."""
        ray = self.ray
        error: BaseException | None = None
        while self.live:
            done, _ = ray.wait(list(self.live), num_returns=1, timeout=1.0)
            for ref in done:
                slot = self.live.pop(ref)
                try:
                    if ray.get(ref) == "interrupted":
                        raise KeyboardInterrupt  # stopped from outside: the whole run stops
                except ray.exceptions.RayActorError:
                    report.deaths.append(self._died(study, slot))
                except ray.exceptions.RayTaskError as e:
                    error = error or _task_error(slot.index, e)
        if error is not None:
            raise error

    def _died(self, study: Any, slot: _Slot) -> WorkerDeath:
        from normnas.search.study import recover_interrupted

        recovered = recover_interrupted(study, owner=slot.owner)
        left = None if slot.share is None else slot.share - _counted_by(study, slot.owner)
        replace = (left is None or left > 0) and self.restarts_left > 0
        if replace and self.deadline is not None and self.deadline <= time.time():
            replace, left = False, 0
        if replace:
            self.restarts_left -= 1
            self.start(slot.index, left)
        pid = int(slot.owner.split(":")[-2]) if slot.owner.count(":") >= 2 else 0
        return _ActorDeath(slot.index, pid, -9, recovered, left, replace)

    def stop(self, study: Any) -> list[int]:
        """Ask every live actor to stop, wait, kill the rest; re-queue what they left."""
        from normnas.search.study import recover_interrupted

        ray = self.ray
        for slot in self.live.values():
            slot.actor.stop.remote()
        with contextlib.suppress(Exception):
            ray.wait(list(self.live), num_returns=len(self.live), timeout=STOP_WAIT_S)
        recovered: list[int] = []
        for slot in self.all:
            with contextlib.suppress(Exception):
                ray.kill(slot.actor)
        self.live = {}
        for slot in self.all:  # all gone now: whatever they left RUNNING is theirs
            recovered += recover_interrupted(study, owner=slot.owner)
        return recovered

    def close(self) -> None:
        for slot in self.all:
            with contextlib.suppress(Exception):
                self.ray.kill(slot.actor)


class _ActorDeath(WorkerDeath):
    def line(self) -> str:
        return super().line().replace("worker", "Ray worker", 1).replace(" (signal 9, SIGKILL)", "")


def _task_error(index: int, error: Any) -> BaseException:
    """The error an actor raised (in its search or its __init__): a UserError keeps its type."""
    from normnas.errors import one_line

    inner = error
    while getattr(inner, "cause", None) is not None:  # RayActorError → RayTaskError → cause
        inner = inner.cause
    if isinstance(inner, UserError):
        return inner
    return RuntimeError(f"Ray worker {index + 1}: {type(inner).__name__}: {one_line(inner)}")


def _counted_by(study: Any, owner: str) -> int:
    """Trials counted toward the budget that the worker `owner` evaluated."""
    from normnas.search import records as rec

    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get(rec.ATTR_WORKER) != owner or rec.ATTR_DUPLICATE in t.user_attrs:
            continue
        result = rec.result_of(t)
        n += result is not None and result.get("status") in rec.COUNTED
    return n


def run_on_ray(cfg: RunConfig, url: str, budget: Budget, data: Any) -> WorkerReport:
    """Run the search on Ray actors until the budget; see `run_job_on_ray`."""
    return run_job_on_ray(
        SearchJob(cfg.model_dump(mode="json")), cfg.ray, cfg.study_name, url, budget, data
    )


def run_job_on_ray(
    job: RayJob,
    options: RayOptions,
    study_name: str,
    url: str,
    budget: Budget,
    data: Any,
    what: str = "search",
) -> WorkerReport:
    """Run `job`'s loop on Ray actors until the budget; see the module doc.

    Raises `SearchInterrupted` on Ctrl-C/SIGTERM and the error of an actor whose loop
    raised; returns a `WorkerReport` of the actors that died.
    """
    from normnas.search import records as rec
    from normnas.search.study import load_study, open_storage

    ray = import_ray()
    if (options.address or "").startswith("ray://") and not _reachable_everywhere(url):
        raise UserError(
            f"--executor ray --ray-address {options.address}: the study must be in a storage "
            f"every node reaches, not the local file {url}; pass --storage postgresql://…"
        )
    study = load_study(study_name, open_storage(url))
    joined = connect(ray, options.address)
    report = WorkerReport()
    cluster: _Cluster | None = None
    try:
        n = _parallel(ray, options)
        done = sum(r.evaluated for r in rec.records(study))
        per: list[int | None] = [None] * n
        if budget.trials is not None:
            per = list(shares(max(0, budget.trials - done), n))
        deadline = None if budget.wall_s is None else time.time() + budget.wall_s
        with stop_on_signals():
            try:
                cluster = _Cluster(ray, job, options, url, data, deadline, n)
                for i in range(n):
                    if per[i] != 0:
                        cluster.start(i, per[i])
                cluster.wait(study, report)
            except KeyboardInterrupt:
                recovered = cluster.stop(study) if cluster is not None else []
                raise stopped("Ray workers'", recovered, what) from None
            finally:
                report.started = len(cluster.all) if cluster is not None else 0
    finally:
        if cluster is not None:
            cluster.close()
        if joined:
            ray.shutdown()
    return report


def _reachable_everywhere(url: str) -> bool:
    return not url.startswith(("journal:", "sqlite:"))
