"""Several local worker processes on one study (a journal file or an RDB storage).

Each worker runs the same runner with its own share of the trial budget (so the total is
exact: no trial lost, none extra) and the same wall-time deadline; samplers read the
shared study, so evolution and local search see every worker's results.

What happens to the processes (each worker records itself as the owner of its trials,
see `study.claim`):
- Ctrl-C (SIGINT to the process group or to the parent alone) or SIGTERM to the parent, or
  SIGINT/SIGTERM to one worker: the parent sends SIGTERM to every worker; each marks its
  running trial `interrupted` (re-queued for the resume) and exits with EXIT_INTERRUPTED,
  quietly. After STOP_WAIT_S the parent kills what is left and recovers its trials itself,
  then raises `SearchInterrupted` carrying the command that resumes the run.
- The parent killed, even by SIGKILL: each worker notices (PR_SET_PDEATHSIG on Linux, and a
  thread watching its parent pid everywhere), marks its running trial interrupted and exits;
  none lives on as an orphan.
- A worker killed (SIGKILL, the OOM killer, a crash): the parent re-queues its running trial
  and starts a replacement (same index, so the same sampler seed) for the rest of its share:
  the share less the trials it had counted. At most MAX_RESTARTS_PER_WORKER × workers
  replacements; each death is one line of `WorkerReport.notes`.
- A worker whose search raised (e.g. a StorageError): not replaced; the others finish and
  `run_workers` raises that error (a `UserError` keeps its type, anything else becomes a
  RuntimeError naming the worker).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from normnas.config import RunConfig
from normnas.search.events import ProgressDisplay, StudyFollower
from normnas.search.runner import Budget
from normnas.text import plural

EXIT_INTERRUPTED = 130  # a worker stopped by SIGINT/SIGTERM (or its parent's death)
EXIT_ERROR = 3  # a worker whose search raised; its error went to the parent
STOP_WAIT_S = 10.0  # how long interrupted workers get to mark their trials
MAX_RESTARTS_PER_WORKER = 2
PARENT_POLL_S = 0.5
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def shares(total: int, n: int) -> list[int]:
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


@dataclass
class WorkerDeath:
    index: int  # 0-based; the user sees index + 1
    pid: int
    exitcode: int  # negative: killed by that signal
    recovered: list[int]  # its RUNNING trials, re-queued
    left: int | None  # trials of its share it had not counted (None: no trial budget)
    replaced: bool  # a new worker took over `left`

    def line(self) -> str:
        how = f"exit code {self.exitcode}"
        if self.exitcode < 0:
            try:
                how = f"signal {-self.exitcode}, {signal.Signals(-self.exitcode).name}"
            except ValueError:
                how = f"signal {-self.exitcode}"
        trials = ", ".join(f"#{n}" for n in self.recovered)
        what = (
            f"its trial {trials} was re-queued"
            if len(self.recovered) == 1
            else f"its trials {trials} were re-queued"
            if self.recovered
            else "it had no trial running"
        )
        rest = ""
        if self.left is None or self.left > 0:
            share = (
                "the rest of its time"
                if self.left is None
                else f"its {plural(self.left, 'trial')} left"
            )
            rest = (
                f"; a new worker took over {share}"
                if self.replaced
                else f"; {share} were not run (too many workers died)"
            )
        return f"worker {self.index + 1} (pid {self.pid}) died ({how}); {what}{rest}"


@dataclass
class WorkerReport:
    """What `run_workers` tells the session: deaths and recoveries, and lines for the user."""

    started: int = 0  # worker processes started, replacements included
    deaths: list[WorkerDeath] = field(default_factory=list)

    @property
    def recovered(self) -> list[int]:
        return [n for d in self.deaths for n in d.recovered]

    @property
    def restarted(self) -> int:
        return sum(d.replaced for d in self.deaths)

    @property
    def notes(self) -> list[str]:
        return [d.line() for d in self.deaths]


# code that an exception raised at any line would leave holding a lock or half-written:
# a SQLite transaction interrupted there keeps its write lock, and the next write of the
# same process (marking the trial interrupted) waits on it for the whole busy timeout
_ATOMIC = tuple(f"{os.sep}{name}{os.sep}" for name in ("optuna", "sqlalchemy", "sqlite3"))
RETRY_SIGNAL_S = 0.05


def _in_atomic_code(frame: Any) -> bool:
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in _ATOMIC):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def stop_on_signals(restore: bool = True) -> Iterator[None]:
    """Within: the first SIGINT or SIGTERM raises KeyboardInterrupt in the main thread, and
    later ones are ignored, so the cleanup that follows is not cut short; the previous
    handlers come back on leaving (with `restore`, or when no signal came: a worker that is
    stopping stays deaf to the next one). Outside the main thread it does nothing.

    A signal that comes while Optuna or the database layer runs is taken again a moment
    later (RETRY_SIGNAL_S), so storage calls are never cut in the middle.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.getsignal(s) for s in signals}
    fired = []

    def ignore(signum: int, frame: Any) -> None:
        pass  # not SIG_IGN: Python reports a signal already pending for a handler now SIG_IGN

    def again(signum: int) -> None:
        threading.Timer(RETRY_SIGNAL_S, os.kill, (os.getpid(), signum)).start()

    def handler(signum: int, frame: Any) -> None:
        if _in_atomic_code(frame):
            again(signum)
            return
        for s in signals:
            signal.signal(s, ignore)
        fired.append(signum)
        raise KeyboardInterrupt

    old_hook = sys.unraisablehook

    def lost(unraisable: Any) -> None:
        # raised in a __del__ or a weakref callback, where Python prints an exception and
        # drops it: the search would go on, so the signal is taken again a moment later
        if unraisable.exc_type is KeyboardInterrupt and fired:
            for s in signals:
                signal.signal(s, handler)
            again(fired.pop())
            return
        old_hook(unraisable)

    for s in signals:
        signal.signal(s, handler)
    sys.unraisablehook = lost
    try:
        yield
    finally:
        sys.unraisablehook = old_hook
        if restore or not fired:
            for s, h in old.items():
                signal.signal(s, h if h is not None else signal.SIG_DFL)


def _watch_parent(parent: int) -> None:
    """SIGTERM to this process (its handler stops the search) when `parent` dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    def watch() -> None:  # everywhere, and on Linux for a parent gone before the prctl
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="normnas-parent-watch", daemon=True).start()


def _worker(
    cfg_data: dict[str, Any],
    url: str,
    trials: int | None,
    deadline: float | None,
    index: int,
    parent: int,
    errors: Any,  # the sending end of a pipe to the parent, for an error the search raised
) -> None:
    """A worker process: search until its share or the deadline; see the module doc."""
    code = 0
    try:
        with stop_on_signals(restore=False):
            _watch_parent(parent)
            _search(cfg_data, url, trials, deadline, index)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED  # the runner marked the running trial interrupted
    except Exception as exc:
        from normnas.errors import UserError, one_line

        if os.environ.get("NORMNAS_DEBUG"):
            import traceback

            traceback.print_exc()
        if not isinstance(exc, UserError):
            exc = RuntimeError(f"worker {index + 1}: {type(exc).__name__}: {one_line(exc)}")
        errors.send(exc)
        code = EXIT_ERROR
    # everything is written (storage writes and the error pipe are synchronous): skip the
    # interpreter's teardown, which takes seconds with torch loaded, so a stop is prompt
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _search(
    cfg_data: dict[str, Any], url: str, trials: int | None, deadline: float | None, index: int
) -> None:
    import optuna
    import torch

    from normnas.assemble import build_parts, make_study
    from normnas.search.runner import run_search
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


@dataclass
class _Proc:
    index: int
    share: int | None
    process: Any  # multiprocessing.Process
    errors: Any  # the receiving end of its error pipe


class _Stop(Exception):
    """A worker was stopped by a signal: the whole search stops."""


class _Pool:
    """The worker processes of one `run_workers` call."""

    def __init__(self, cfg: RunConfig, url: str, deadline: float | None) -> None:
        self.cfg, self.url, self.deadline = cfg, url, deadline
        self.ctx = mp.get_context("spawn")
        self.data = cfg.model_dump(mode="json")
        self.live: list[_Proc] = []
        self.all: list[_Proc] = []
        self.restarts_left = MAX_RESTARTS_PER_WORKER * cfg.workers

    def start(self, index: int, share: int | None) -> None:
        receive, send = self.ctx.Pipe(duplex=False)
        args = (self.data, self.url, share, self.deadline, index, os.getpid(), send)
        process = self.ctx.Process(target=_worker, args=args, daemon=False)
        # the child starts deaf to SIGINT (dispositions set to ignore survive exec) until it
        # installs its own handler, so a Ctrl-C while it imports prints no traceback; until
        # then the parent's SIGTERM ends it
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            process.start()
        finally:
            signal.signal(signal.SIGINT, old)
        send.close()  # the child has its own copy
        proc = _Proc(index, share, process, receive)
        self.live.append(proc)
        self.all.append(proc)

    def wait(self, study: Any, report: WorkerReport, tick: Any = None) -> None:
        """Until every worker is done; replaces dead ones; _Stop when one was stopped.
        `tick()` runs about once a second (the progress display reads the study)."""
        while self.live:
            if tick is not None:
                tick()
            sentinels = {p.process.sentinel: p for p in self.live}
            for ready in mp.connection.wait(list(sentinels), timeout=1.0):
                proc = sentinels[ready]  # type: ignore[index]
                proc.process.join()
                self.live.remove(proc)
                code = proc.process.exitcode
                if code == EXIT_INTERRUPTED:
                    raise _Stop
                if code not in (0, EXIT_ERROR):
                    report.deaths.append(self._died(study, proc, code))

    def _died(self, study: Any, proc: _Proc, code: int) -> WorkerDeath:
        from normnas.search.study import recover_interrupted

        pid = proc.process.pid
        recovered = recover_interrupted(study, pid=pid)
        left = None if proc.share is None else proc.share - _counted_by(study, pid)
        replace = (left is None or left > 0) and self.restarts_left > 0
        if replace and self.deadline is not None and self.deadline <= time.time():
            replace, left = False, 0  # its time was up anyway
        if replace:
            self.restarts_left -= 1
            self.start(proc.index, left)
        return WorkerDeath(proc.index, pid, code, recovered, left, replace)

    def stop(self, study: Any) -> list[int]:
        """SIGTERM every live worker, wait, kill the rest; recover what they left running."""
        from normnas.search.study import recover_interrupted

        for proc in self.live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.process.pid, signal.SIGTERM)
        end = time.monotonic() + STOP_WAIT_S
        for proc in self.live:
            proc.process.join(max(0.0, end - time.monotonic()))
        for proc in self.live:
            if proc.process.is_alive():
                proc.process.kill()
                proc.process.join()
        self.live = []
        recovered: list[int] = []
        for proc in self.all:  # all dead now: whatever they left RUNNING is theirs
            recovered += recover_interrupted(study, pid=proc.process.pid)
        return recovered

    def error(self) -> BaseException | None:
        """The first error a worker raised, if any."""
        for proc in self.all:
            if proc.errors.poll():
                with contextlib.suppress(EOFError, OSError):
                    return proc.errors.recv()  # type: ignore[no-any-return]
        return None


def _counted_by(study: Any, pid: int) -> int:
    """Trials counted toward the budget that process `pid` of this host evaluated."""
    import socket

    from normnas.search import records as rec
    from normnas.search.study import parse_worker

    host = socket.gethostname()
    n = 0
    for t in study.get_trials(deepcopy=False):
        owner = parse_worker(t.user_attrs.get(rec.ATTR_WORKER))
        if owner is None or owner[:2] != (host, pid) or rec.ATTR_DUPLICATE in t.user_attrs:
            continue
        result = rec.result_of(t)
        n += result is not None and result.get("status") in rec.COUNTED
    return n


def run_workers(
    cfg: RunConfig, url: str, budget: Budget, display: ProgressDisplay | None = None
) -> WorkerReport:
    """Run `cfg.workers` processes on the study at `url` until the budget; see the module doc.

    `display` (see `normnas.report.progress.make_progress`) is shown the workers' finished
    trials as they appear in the study, as a single process's run would show them. Raises
    `SearchInterrupted` (with the resume command) on Ctrl-C/SIGTERM, and the error of a
    worker whose search raised; returns a `WorkerReport` of the workers that died.
    """
    from normnas.search import records as rec
    from normnas.search.study import load_study, open_storage

    study = load_study(cfg.study_name, open_storage(url))
    done = sum(r.evaluated for r in rec.records(study))
    per: list[int | None] = [None] * cfg.workers
    if budget.trials is not None:
        per = list(shares(max(0, budget.trials - done), cfg.workers))
    deadline = None if budget.wall_s is None else time.time() + budget.wall_s
    pool = _Pool(cfg, url, deadline)
    report = WorkerReport()
    follower = None
    if display is not None:  # the same display as one process: read from the shared study
        follower = StudyFollower(display, budget, n_before=done, study=study)
        follower.skip_existing(study)
    with stop_on_signals():
        try:
            for i in range(cfg.workers):
                if per[i] != 0:
                    pool.start(i, per[i])
            pool.wait(study, report, tick=None if follower is None else follower.poll_quietly)
            if follower is not None:
                follower.poll_quietly()  # the last trials, finished after the last tick
        except (KeyboardInterrupt, _Stop):
            raise stopped("workers'", pool.stop(study)) from None
        finally:
            report.started = len(pool.all)
            if follower is not None:
                follower.display.close()
    error = pool.error()
    if error is not None:
        raise error
    return report


def stopped(whose: str, recovered: list[int], what: str = "search") -> Exception:
    """The `SearchInterrupted` of a stopped parallel `what` (a search, an ablation): `whose`
    running trials were marked interrupted (`recovered`: those this process re-queued)."""
    from normnas.errors import SearchInterrupted
    from normnas.search.setup import resume_command

    extra = f" (#{', #'.join(map(str, recovered))} recovered here)" if recovered else ""
    return SearchInterrupted(
        f"{what} stopped; the {whose} running trials were marked interrupted and will be "
        f"re-run on resume{extra} (finished trials are kept)",
        resume=resume_command(),
    )
