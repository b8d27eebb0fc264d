"""Searches under kills, interrupts and concurrent runs.

The end-to-end tests run real `normnas search` processes (tiny macro space, one epoch on the
embedded digits data: a trial takes about a second) and send them real signals; the others
check trial ownership on a real storage with real processes. The longest are marked slow:
run them with `pytest tests/search/test_processes.py -m slow`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState
from tests import support

from normnas.execute.workers import stop_on_signals
from normnas.search import records as rec
from normnas.search.study import (
    ATTR_HEARTBEAT,
    UNOWNED_GRACE_S,
    _Heartbeat,
    claim,
    open_storage,
    owner_alive,
    owner_check,
    parse_worker,
    process_start,
    recover_interrupted,
    worker_id,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

TINY = support.TINY
PYTHON_CLI = [sys.executable, "-c", "from normnas.cli import main; main()"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
STUDY = "p"


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "tiny.yaml").write_text(TINY)
    return tmp_path


def _search_args(url: str, *extra: str) -> list[str]:
    base = ["search", "-c", "tiny.yaml", "--study", STUDY, "--storage", url]
    return [*base, "--no-final", "--no-progress", *extra]


def _new_study(url: str) -> optuna.Study:
    # made before the commands start, so that polling it never races their table creation
    return optuna.create_study(study_name=STUDY, storage=open_storage(url), direction="maximize")


def _start(cwd: Path, args: list[str]) -> subprocess.Popen[str]:
    # a session of its own: a signal to its process group reaches it and its workers only
    return subprocess.Popen(
        [*PYTHON_CLI, *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _trials(study: optuna.Study) -> list[FrozenTrial]:
    return study._storage.get_all_trials(study._study_id, deepcopy=False)


def _running_owners(study: optuna.Study) -> dict[int, int]:
    """Trial number -> owner pid of the RUNNING trials that have an owner."""
    out = {}
    for t in _trials(study):
        owner = parse_worker(t.user_attrs.get(rec.ATTR_WORKER))
        if t.state == TrialState.RUNNING and owner is not None:
            out[t.number] = owner[1]
    return out


def _running(study: optuna.Study) -> list[int]:
    return [t.number for t in _trials(study) if t.state == TrialState.RUNNING]


def _workers(parent: int) -> set[int]:
    """The worker processes (multiprocessing children) of `parent`, from /proc."""
    out = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = f.read().rpartition(")")[2].split()[1]
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                spawned = b"spawn_main" in f.read()
        except (OSError, IndexError):
            continue
        if ppid == str(parent) and spawned:
            out.add(int(entry))
    return out


def _owners(study: optuna.Study) -> set[int]:
    return {
        owner[1]
        for t in _trials(study)
        if (owner := parse_worker(t.user_attrs.get(rec.ATTR_WORKER))) is not None
    }


def _gone(pid: int) -> bool:
    """No such process, or a zombie (dead; an orphan's may wait long for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _status(t: FrozenTrial) -> str | None:
    result = rec.result_of(t)
    return None if result is None else result.get("status")


def _check_interrupted_and_requeued(study: optuna.Study) -> list[int]:
    """Nothing left RUNNING; every failed trial was interrupted and has a retry of its params.

    Returns the numbers of the interrupted trials.
    """
    trials = _trials(study)
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted, "no trial was marked interrupted"
    for t in interrupted:
        assert _status(t) == "interrupted", (t.number, t.user_attrs)
        retries = [u for u in trials if u.user_attrs.get(rec.ATTR_RETRY) == t.number]
        assert len(retries) == (1 if t.params else 0), (t.number, len(retries))
        for u in retries:
            fixed = u.system_attrs.get("fixed_params", u.params)
            assert fixed == t.params
    return [t.number for t in interrupted]


def _resume_line(args: list[str]) -> str:
    return "normnas " + shlex.join(args)


def _clean(stderr: str) -> None:
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]


# -- end to end: interrupts ---------------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    [
        "SIGINT",
        # SIGTERM becomes the KeyboardInterrupt of Ctrl-C (`stop_on_signals`, tested below),
        # after which the stop is the SIGINT case's: run with -m slow
        pytest.param("SIGTERM", marks=pytest.mark.slow),
    ],
)
def test_a_stopped_search_marks_its_trial_and_prints_how_to_resume(tiny: Path, how: str) -> None:
    url = f"sqlite:///{tiny / 'p.db'}"
    study = _new_study(url)
    args = _search_args(url, "--trials", "50")
    proc = _start(tiny, args)
    support.wait_for(lambda: _running(study), proc)
    if how == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal
    else:
        os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    _clean(err)
    assert _resume_line(args) in err.splitlines()[-1]
    _check_interrupted_and_requeued(study)


@pytest.mark.parametrize(
    "target", ["process group", pytest.param("parent alone", marks=pytest.mark.slow)]
)
def test_ctrl_c_with_workers_stops_them_all_quietly(tiny: Path, target: str) -> None:
    url = f"sqlite:///{tiny / 'p.db'}"
    study = _new_study(url)
    args = _search_args(url, "--trials", "60", "--workers", "2")
    proc = _start(tiny, args)
    workers = support.wait_for(lambda: len(_running(study)) == 2 and _workers(proc.pid), proc)
    assert len(workers) == 2
    if target == "process group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    _clean(err)
    assert _resume_line(args) in err.splitlines()[-1]
    assert all(_gone(pid) for pid in workers)  # they ended with the command
    _check_interrupted_and_requeued(study)


# -- end to end: kills and concurrent runs ------------------------------------------------


@pytest.mark.slow  # about 20 s: two startups of workers and a rerun
def test_killing_the_parent_ends_its_workers_and_a_rerun_resumes(tiny: Path) -> None:
    url = f"sqlite:///{tiny / 'p.db'}"
    study = _new_study(url)
    proc = _start(tiny, _search_args(url, "--trials", "60", "--workers", "2"))

    def two_running_after_two_done() -> set[int]:
        done = [t for t in _trials(study) if t.state == TrialState.COMPLETE]
        ok = len(done) >= 2 and len(_running(study)) == 2
        return _workers(proc.pid) if ok else set()

    workers = support.wait_for(two_running_after_two_done, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    end = time.monotonic() + 10
    while time.monotonic() < end and not all(_gone(pid) for pid in workers):
        time.sleep(0.1)
    assert all(_gone(pid) for pid in workers), "workers live on after their parent's death"
    # the orphans marked their running trials themselves before ending
    interrupted = _check_interrupted_and_requeued(study)
    finished = {t.number: (t.params, t.values) for t in _trials(study) if t.state.is_finished()}
    counted = sum(r.evaluated for r in rec.records(study))

    total = counted + len(interrupted)  # room for the retries, one process to be quick
    rerun = subprocess.run(
        [*PYTHON_CLI, *_search_args(url, "--trials", str(total))],
        cwd=tiny,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    study = optuna.load_study(study_name=STUDY, storage=open_storage(url))
    after = {t.number: t for t in _trials(study)}
    for number, (params, values) in finished.items():
        assert (after[number].params, after[number].values) == (params, values)
    for number in interrupted:  # each retried, and its retry evaluated
        retry = [t for t in after.values() if t.user_attrs.get(rec.ATTR_RETRY) == number]
        assert [t.state for t in retry] == [TrialState.COMPLETE]
    assert sum(r.evaluated for r in rec.records(study)) == total
    assert all(t.state.is_finished() for t in after.values())


@pytest.mark.slow  # about 20 s: the replacement worker starts from scratch
def test_a_killed_worker_is_replaced_and_its_trial_requeued(tiny: Path) -> None:
    url = f"journal:{tiny / 'p.journal'}"
    study = _new_study(url)
    proc = _start(tiny, _search_args(url, "--trials", "8", "--workers", "2"))

    def a_worker_running_a_trial_after_the_first_two() -> int | None:
        late = [pid for n, pid in _running_owners(study).items() if n >= 2]
        workers = _workers(proc.pid)
        if late and late[0] in workers:
            return late[0]
        if not _running_owners(study) and any(n >= 2 for n in _running(study)) and workers:
            return min(workers)  # a version that does not record owners
        return None

    victim = support.wait_for(a_worker_running_a_trial_after_the_first_two, proc)
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=150)
    assert proc.returncode == 0, err[-3000:]
    _clean(err)
    said = " ".join(out.split())  # the report may wrap lines
    assert f"(pid {victim}) died (signal 9" in said, out[-2000:]
    trials = _trials(study)
    evaluated = [r for r in rec.records(study) if r.evaluated]
    assert len(evaluated) == 8 and all(r.state == TrialState.COMPLETE for r in evaluated)
    assert all(t.state.is_finished() for t in trials)
    # what the victim left running was re-queued and then evaluated by someone else
    for t in trials:
        if t.state == TrialState.FAIL:
            assert _status(t) == "interrupted"
            assert parse_worker(t.user_attrs[rec.ATTR_WORKER])[1] == victim
            assert f"#{t.number}" in said
            retry = [u for u in trials if u.user_attrs.get(rec.ATTR_RETRY) == t.number]
            assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    # it had evaluated at most 2 of its 4: a replacement took over the rest
    assert len(_owners(study)) == 3


def test_two_searches_on_one_study_at_once_both_reach_the_budget(tiny: Path) -> None:
    url = f"sqlite:///{tiny / 'p.db'}"
    study = _new_study(url)
    # long enough for the two to overlap: on an idle machine 12 one-epoch trials end before
    # the second process has imported torch
    args = _search_args(url, "--trials", "12", "--epochs", "4")
    first = _start(tiny, args)
    support.wait_for(lambda: _running(study), first)  # the second starts beside a live trial
    second = _start(tiny, args)
    for proc in (first, second):
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        _clean(err)
    trials = _trials(study)
    # nobody's trial was taken for dead: no failure, nothing left running
    assert all(t.state == TrialState.COMPLETE for t in trials), [
        (t.number, t.state, t.user_attrs) for t in trials if t.state != TrialState.COMPLETE
    ]
    assert len(_owners(study)) == 2
    evaluated = [r for r in rec.records(study) if r.evaluated]
    # each run stops at 12 counted study-wide; near the end each may start one more trial
    # before it has seen the other's last result
    assert 12 <= len(evaluated) <= 14
    keys = [r.key for r in evaluated]
    assert len(set(keys)) == len(keys)


def _pop_queued(url: str, asks: int, ready: Any, out: Any) -> None:
    """In a spawned process: ask `asks` trials of study 'q' once both are `ready`, tell each."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="q", storage=open_storage(url))
    # both processes ask at the same moment, however long each took to start
    ready.wait(timeout=240)
    popped = []
    for _ in range(asks):
        trial = study.ask()
        if "fixed_params" in study._storage.get_trial_system_attrs(trial._trial_id):  # queued
            popped.append(trial.number)
        # popped by the other process too, which told it first: the assert sees it
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            study.tell(trial, 0.0)
    out.put(popped)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_processes_asking_at_once_never_pop_one_queued_trial_twice(
    tmp_path: Path, kind: str
) -> None:
    # Optuna's pop (read WAITING, write RUNNING) on SQLite was not atomic across processes:
    # 4-6 of 200 queued trials were run twice by two processes before BEGIN IMMEDIATE
    # (`study._SQLiteStorage`); a journal file is locked for each write
    import multiprocessing as mp

    url = f"sqlite:///{tmp_path / 'q.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'q.j'}"
    study = optuna.create_study(study_name="q", storage=open_storage(url))
    for i in range(120):
        study.enqueue_trial({"x": i}, skip_if_exists=False)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    ready = ctx.Barrier(2)  # passed when both have imported optuna and opened the storage
    procs = [ctx.Process(target=_pop_queued, args=(url, 60, ready, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    first, second = out.get(timeout=240), out.get(timeout=240)
    for proc in procs:
        proc.join(60)
    assert not set(first) & set(second)  # no queued trial ran in both processes
    assert len(first) + len(second) == 120  # and each ran in one: none lost
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(TrialState.COMPLETE) == len(states) == 120


# -- ownership on a real storage ----------------------------------------------------------

_DIST = {"x": CategoricalDistribution((0, 1, 2))}


def _running_trial(
    study: optuna.Study,
    worker: str | None = None,
    heartbeat: float | None = None,
    started: datetime.datetime | None = None,
    x: int = 0,
) -> FrozenTrial:
    """A RUNNING trial with param x, owned by `worker`, created through the storage itself."""
    attrs: dict[str, Any] = {}
    if worker is not None:
        attrs[rec.ATTR_WORKER] = worker
    if heartbeat is not None:
        attrs[ATTR_HEARTBEAT] = heartbeat
    template = FrozenTrial(
        number=-1,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=started or datetime.datetime.now(),
        datetime_complete=None,
        params={"x": x},
        distributions=_DIST,
        user_attrs=attrs,
        system_attrs={},
        intermediate_values={},
        trial_id=-1,
    )
    trial_id = study._storage.create_new_trial(study._study_id, template)
    return study._storage.get_trial(trial_id)


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_owner_alive_on_this_host(sleeper: subprocess.Popen, dead_pid: int) -> None:
    import socket

    host = socket.gethostname()
    study = optuna.create_study(direction="maximize")
    start = process_start(sleeper.pid)
    assert start.isdigit()
    live = _running_trial(study, f"{host}:{sleeper.pid}:{start}")
    reused = _running_trial(study, f"{host}:{sleeper.pid}:{int(start) - 1}")  # another process
    old_format = _running_trial(study, f"{host}:{sleeper.pid}")
    dead = _running_trial(study, f"{host}:{dead_pid}:{start}")
    assert owner_alive(live) is True and owner_alive(old_format) is True
    assert owner_alive(reused) is False and owner_alive(dead) is False

    zombie = subprocess.Popen(["true"])  # ended but not reaped: its pid still answers kill(0)
    with open(f"/proc/{zombie.pid}/stat") as f:
        zombie_start = f.read().rpartition(")")[2].split()[19]
    deadline = time.monotonic() + 10
    while not _gone(zombie.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(zombie.pid, 0)  # still there as far as signals go
    try:
        assert owner_alive(_running_trial(study, f"{host}:{zombie.pid}:{zombie_start}")) is False
    finally:
        zombie.wait()

    mine = study.ask()
    claim(study, mine)
    frozen = study._storage.get_trial(mine._trial_id)
    me = f"{host}:{os.getpid()}:{process_start(os.getpid())}"
    assert frozen.user_attrs[rec.ATTR_WORKER] == worker_id() == me
    assert owner_alive(frozen) is True  # being run here
    study.tell(mine, 0.5)
    assert owner_alive(study._storage.get_trial(mine._trial_id)) is None  # not running


def test_owner_alive_on_another_host_follows_the_heartbeat() -> None:
    study = optuna.create_study(direction="maximize")
    now = time.time()
    fresh = _running_trial(study, "elsewhere:1:5", heartbeat=now - 60)
    stale = _running_trial(study, "elsewhere:1:5", heartbeat=now - 3600)
    no_beat_yet = _running_trial(study, "elsewhere:2:5")
    assert owner_alive(fresh, now) is True
    assert owner_alive(stale, now) is False
    assert owner_alive(stale, now, grace_s=7200) is True
    assert owner_alive(no_beat_yet, now) is True  # judged by its start until the first beat
    long_ago = datetime.datetime.now() - datetime.timedelta(hours=1)
    assert owner_alive(_running_trial(study, "elsewhere:2:5", started=long_ago), now) is False


def test_recover_interrupted_takes_only_the_trials_of_gone_owners(
    tmp_path: Path, sleeper: subprocess.Popen, dead_pid: int
) -> None:
    import socket

    host = socket.gethostname()
    study = optuna.create_study(
        study_name="r", storage=open_storage(f"sqlite:///{tmp_path / 'r.db'}"), direction="maximize"
    )
    now = time.time()
    old = datetime.datetime.now() - datetime.timedelta(seconds=2 * UNOWNED_GRACE_S)
    keep = {
        _running_trial(study, f"{host}:{sleeper.pid}:{process_start(sleeper.pid)}").number,
        _running_trial(study, "elsewhere:7:1", heartbeat=now).number,
        _running_trial(study).number,  # no owner yet: a live run between ask and its claim
    }
    gone = {
        _running_trial(study, f"{host}:{dead_pid}:1", x=1).number,
        _running_trial(study, "elsewhere:7:1", heartbeat=now - 3600, x=2).number,
        _running_trial(study, started=old).number,  # no owner, long ago: a dead run's
    }
    mine = study.ask()
    claim(study, mine)
    keep.add(mine.number)

    assert recover_interrupted(study, pid=sleeper.pid) == []  # only that process's, alive
    assert set(recover_interrupted(study)) == gone
    assert recover_interrupted(study) == []  # each is recovered once
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert {n for n, t in by_number.items() if t.state == TrialState.RUNNING} == keep
    for n in gone:
        assert by_number[n].state == TrialState.FAIL and _status(by_number[n]) == "interrupted"
        retries = [t for t in by_number.values() if t.user_attrs.get(rec.ATTR_RETRY) == n]
        assert len(retries) == 1 and retries[0].state == TrialState.WAITING
        assert retries[0].system_attrs["fixed_params"] == by_number[n].params
    alive = owner_check(study)
    assert [alive(n) for n in sorted(gone)] == [None] * 3  # recovered: no longer running
    study.tell(mine, 0.5)


def test_owner_check_tells_status_which_running_trials_lost_their_owner(
    sleeper: subprocess.Popen, dead_pid: int
) -> None:
    import socket

    host = socket.gethostname()
    study = optuna.create_study(direction="maximize")
    live = _running_trial(study, f"{host}:{sleeper.pid}:{process_start(sleeper.pid)}")
    dead = _running_trial(study, f"{host}:{dead_pid}:1")
    done = study.ask()
    study.tell(done, 0.1)
    alive = owner_check(study)
    assert (alive(live.number), alive(dead.number), alive(done.number)) == (True, False, None)


def test_the_heartbeat_is_written_while_the_trial_runs_and_stops_after(tmp_path: Path) -> None:
    study = optuna.create_study(
        study_name="h", storage=open_storage(f"sqlite:///{tmp_path / 'h.db'}"), direction="maximize"
    )
    beat = _Heartbeat(interval_s=0.05, first_s=0.05)
    trial = study.ask()
    beat.track(study._storage, trial._trial_id)
    seen = []
    end = time.monotonic() + 20
    while len(set(seen)) < 3 and time.monotonic() < end:
        value = study._storage.get_trial(trial._trial_id).user_attrs.get(ATTR_HEARTBEAT)
        if value is not None:
            seen.append(value)
        time.sleep(0.05)
    assert len(set(seen)) >= 3 and seen == sorted(seen)
    assert abs(seen[-1] - time.time()) < 5
    assert beat.running() == {trial._trial_id}
    study.tell(trial, 0.5)
    end = time.monotonic() + 20
    while beat.running() and time.monotonic() < end:
        time.sleep(0.05)
    assert beat.running() == set()  # the storage said it finished: dropped


def test_stop_on_signals_turns_the_first_sigterm_into_keyboard_interrupt() -> None:
    before = signal.getsignal(signal.SIGTERM)
    # SIGINT's handler as it was: Python's default, or SIG_IGN in a job started with `&`
    before_int = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs here
    assert signal.getsignal(signal.SIGTERM) is before
    with pytest.raises(KeyboardInterrupt), stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # a second one, during the cleanup: ignored
            time.sleep(0.1)
    assert signal.getsignal(signal.SIGINT) is before_int
