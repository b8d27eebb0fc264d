"""Workers on a real PostgreSQL server (see conftest: a throw-away cluster per session).

Real `normnas search` processes (the tiny macro space, one epoch on digits: about a second
a trial) on one study: three workers of one command, then two separate commands (as on
two machines) where one is killed with SIGKILL and Optuna's heartbeat re-queues its trial.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState
from tests import support

from normnas.errors import StorageError
from normnas.search import records as rec
from normnas.search.study import heartbeat_settings, open_storage, parse_worker

optuna.logging.set_verbosity(optuna.logging.WARNING)

PYTHON_CLI = [sys.executable, "-c", "from normnas.cli import main; main()"]
STUDY = "pg"


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "tiny.yaml").write_text(support.TINY)
    return tmp_path


def _start(cwd: Path, url: str, *extra: str, env: dict[str, str] | None = None) -> Any:
    args = ["search", "-c", "tiny.yaml", "--study", STUDY, "--storage", url]
    return subprocess.Popen(
        [*PYTHON_CLI, *args, "--no-final", "--no-progress", *extra],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a signal to its group reaches it (and its workers) only
    )


def _finish(proc: Any, timeout: float = 180) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return str(out)


def _trials(url: str) -> list[FrozenTrial]:
    study = optuna.load_study(study_name=STUDY, storage=open_storage(url, write=False))
    return study.get_trials(deepcopy=False)


def _study_made(url: str) -> bool:
    try:
        _trials(url)
    except (StorageError, KeyError):
        return False
    return True


def _owner_pid(t: FrozenTrial) -> int | None:
    owner = parse_worker(t.user_attrs.get(rec.ATTR_WORKER))
    return None if owner is None else owner[1]


@pytest.mark.slow  # four processes importing torch: over a minute on 2 busy cores
def test_three_workers_meet_the_budget_and_status_names_each_trials_worker(
    tiny: Path, postgres_url: str
) -> None:
    proc = _start(tiny, postgres_url, "--workers", "3", "--trials", "6")
    support.wait_for(lambda: _study_made(postgres_url), proc)
    # `normnas status` while the workers run: each running trial with its worker
    shown: dict[int, int] = {}

    def status_lists_running() -> bool:
        out = support.invoke(["status", "--study", STUDY, "--storage", postgres_url], tiny)
        assert out.exit_code == 0, out.output
        for number, pid in re.findall(r"running #(\d+) on \S+ pid (\d+)", out.output):
            shown[int(number)] = int(pid)
        return len(shown) >= 1

    support.wait_for(status_lists_running, proc)
    _finish(proc)

    trials = _trials(postgres_url)
    assert all(t.state.is_finished() for t in trials)  # none left running or queued
    records = rec.records(optuna.load_study(study_name=STUDY, storage=open_storage(postgres_url)))
    evaluated = [r for r in records if r.evaluated]
    assert len(evaluated) == 6  # the budget, exactly: none lost, none extra
    keys = [r.key for r in evaluated]
    assert len(set(keys)) == len(keys)  # no architecture evaluated twice across workers
    owners = {t.number: _owner_pid(t) for t in trials}
    assert len({owners[r.number] for r in evaluated}) == 3  # all three workers took part
    assert proc.pid not in owners.values()  # the parent evaluates nothing itself
    for number, pid in shown.items():  # status named the worker the storage recorded
        assert owners[number] == pid


def test_a_killed_workers_trial_is_requeued_by_the_heartbeat_and_run_by_another(
    tiny: Path, postgres_url: str
) -> None:
    interval, grace = 1, 2  # seconds: Optuna's heartbeat every second, stale after two
    budget = 12  # the survivor's trials: at about a second each, it outlives the grace period
    beat = {"NORMNAS_HEARTBEAT_S": str(interval), "NORMNAS_GRACE_S": str(grace)}
    optuna.create_study(study_name=STUDY, storage=open_storage(postgres_url), direction="maximize")
    # two separate commands on one study, as on two machines: no parent watches either
    doomed = _start(tiny, postgres_url, "--trials", "30", env=beat)
    survivor = _start(tiny, postgres_url, "--trials", str(budget), env=beat)
    try:

        def doomed_trial() -> FrozenTrial | None:
            return next(
                (
                    t
                    for t in _trials(postgres_url)
                    if t.state == TrialState.RUNNING and t.params and _owner_pid(t) == doomed.pid
                ),
                None,
            )

        # the survivor is past its start (which recovers the trials of dead pids of this host
        # at once, not through the heartbeat) before the victim dies: only the heartbeat,
        # checked before each of its trials, can find the dead trial, as on another machine
        support.wait_for(lambda: any(_owner_pid(t) == survivor.pid for t in _trials(postgres_url)),
                  survivor)  # fmt: skip
        victim = support.wait_for(doomed_trial, doomed)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(30)
        _finish(survivor)
    finally:
        for proc in (doomed, survivor):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)

    trials = {t.number: t for t in _trials(postgres_url)}
    study = optuna.load_study(study_name=STUDY, storage=open_storage(postgres_url))
    by_number = {r.number: r for r in rec.records(study)}
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL  # failed by the survivor's heartbeat check
    assert by_number[victim.number].status == "interrupted"
    # the retry came through Optuna's callback (its system attribute), and the survivor ran it
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.user_attrs[rec.ATTR_RETRY] == victim.number
    assert {k: retry.params[k] for k in killed.params} == killed.params  # its choices, again
    assert retry.state == TrialState.COMPLETE and _owner_pid(retry) == survivor.pid
    assert all(t.state.is_finished() for t in trials.values())
    # the budget is the study's: what the victim finished before it died counts toward it
    assert sum(r.evaluated for r in by_number.values()) == budget


def test_heartbeat_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NORMNAS_HEARTBEAT_S", raising=False)
    monkeypatch.delenv("NORMNAS_GRACE_S", raising=False)
    assert heartbeat_settings() == (30, 120)
    monkeypatch.setenv("NORMNAS_HEARTBEAT_S", "5")
    monkeypatch.setenv("NORMNAS_GRACE_S", "12")
    assert heartbeat_settings() == (5, 12)
    monkeypatch.setenv("NORMNAS_GRACE_S", "9")
    with pytest.raises(StorageError, match=r"NORMNAS_GRACE_S=9 is under twice"):
        heartbeat_settings()
    monkeypatch.setenv("NORMNAS_HEARTBEAT_S", "1.5")
    with pytest.raises(StorageError, match=r"NORMNAS_HEARTBEAT_S='1.5': expected whole seconds"):
        heartbeat_settings()
