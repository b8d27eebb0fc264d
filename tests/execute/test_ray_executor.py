"""`--executor ray` on a real local Ray cluster (2 CPUs, started once for this module).

The searches run in this process (the Ray driver) on the tiny macro space with one epoch on
digits, with their actors in Ray's worker processes; one actor is killed with SIGKILL
mid-trial, and one search is stopped by SIGINT as Ctrl-C would.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from tests import support

from normnas.config import parse_config
from normnas.errors import SearchInterrupted
from normnas.search import records as rec
from normnas.search.study import open_storage, parse_worker

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="Ray not installed; pip install 'normnas[ray]'")
    import logging

    # worker_niceness 0, as `connect` starts a local cluster: at Ray's default 15 the
    # actors starve whenever anything else runs on the machine
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False, _system_config={"worker_niceness": 0})  # fmt: skip
    yield ray
    ray.shutdown()


def _config(tmp_path: Path, trials: int, **extra: Any) -> Any:
    data = yaml.safe_load(support.TINY)
    data.update(
        study="ray", storage=f"journal:{tmp_path / 's.journal'}", trials=trials, final=False,
        executor="ray", ray={"trials_in_parallel": 2}, **extra,
    )  # fmt: skip
    return parse_config(data)


def _study(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(
        study_name="ray", storage=open_storage(f"journal:{tmp_path / 's.journal'}")
    )


def _owner_pid(t: Any) -> int | None:
    owner = parse_worker(t.user_attrs.get(rec.ATTR_WORKER))
    return None if owner is None else owner[1]


def _running_with_params(tmp_path: Path) -> list[Any]:
    try:
        trials = _study(tmp_path).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    except Exception:  # the study is not made yet
        return []
    return [t for t in trials if t.params and _owner_pid(t) not in (None, os.getpid())]


def _in_thread(target: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["outcome"] = target()
        except BaseException as e:
            box["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def _wait(what: Any, thread: threading.Thread, box: dict[str, Any], timeout: float = 240) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        if not thread.is_alive():
            raise AssertionError(f"the search ended first: {box}")
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_ray_search_runs_every_trial_once(ray_cluster: Any, tmp_path: Path) -> None:
    from normnas.session import run

    outcome = run(_config(tmp_path, trials=4))
    study = _study(tmp_path)
    trials = study.get_trials(deepcopy=False)
    assert all(t.state.is_finished() for t in trials)  # none running, none queued: none lost
    evaluated = [r for r in rec.records(study) if r.evaluated]
    assert len(evaluated) == 4  # the budget, exactly
    keys = [r.key for r in evaluated]
    assert len(set(keys)) == len(keys)  # no architecture run twice
    # results as a local run records them: status, accuracy in [0, 1], parameter count
    assert all(r.status == "ok" and 0.0 <= r.result["accuracy"] <= 1.0 for r in evaluated)
    assert all(r.result["params"] > 0 and r.arch for r in evaluated)
    # evaluated by the two actors (Ray worker processes), not by this driver
    owners = {_owner_pid(t) for t in trials if t.number in {r.number for r in evaluated}}
    assert len(owners) == 2 and os.getpid() not in owners
    assert outcome.best is not None and outcome.best.number in {r.number for r in evaluated}
    assert outcome.notes == []  # no actor died


@pytest.mark.slow  # a replacement actor starts (torch imported again): over a minute here
def test_a_killed_actors_trial_is_requeued_and_the_budget_met(
    ray_cluster: Any, tmp_path: Path
) -> None:
    from normnas.session import run

    thread, box = _in_thread(lambda: run(_config(tmp_path, trials=5)))
    victim = _wait(lambda: next(iter(_running_with_params(tmp_path)), None), thread, box)
    os.kill(_owner_pid(victim), signal.SIGKILL)  # the actor's process, mid-trial
    thread.join(300)
    assert "error" not in box, box.get("error")
    outcome = box["outcome"]
    study = _study(tmp_path)
    records = {r.number: r for r in rec.records(study)}
    assert records[victim.number].status == "interrupted"
    assert victim.number in outcome.recovered
    retry = [t for t in study.get_trials(deepcopy=False)
             if t.user_attrs.get(rec.ATTR_RETRY) == victim.number]  # fmt: skip
    assert len(retry) == 1 and retry[0].state.is_finished()
    chosen = study.trials[victim.number].params  # what it had chosen when it was killed
    assert chosen and {k: retry[0].params[k] for k in chosen} == chosen
    assert sum(r.evaluated for r in records.values()) == 5  # the budget, still met
    assert all(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    assert any(f"pid {_owner_pid(victim)}) died" in n for n in outcome.notes), outcome.notes


def test_ctrl_c_stops_the_actors_and_requeues_their_trials(
    ray_cluster: Any, tmp_path: Path
) -> None:
    from normnas.session import run

    def interrupt_when_running() -> None:
        end = time.monotonic() + 240
        while time.monotonic() < end and not _running_with_params(tmp_path):
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C in the driver's terminal

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    with pytest.raises(SearchInterrupted) as stopped:
        run(_config(tmp_path, trials=30))
    # each actor marked its own trial (between storage writes); none had to be killed
    assert "recovered here" not in str(stopped.value)
    study = _study(tmp_path)
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == TrialState.RUNNING]  # stopped, none left
    interrupted = [r.number for r in rec.records(study) if r.status == "interrupted"]
    assert interrupted  # the trial cut short was marked, and is queued for the resume
    queued = {t.user_attrs.get(rec.ATTR_RETRY) for t in trials if t.state == TrialState.WAITING}
    assert set(interrupted) <= queued
    assert sum(r.evaluated for r in rec.records(study)) < 30


def test_an_ablation_on_ray_runs_what_a_local_one_runs(ray_cluster: Any, tmp_path: Path) -> None:
    import torch

    arch = (
        "[w8-k3-batchnorm-conv_norm_act-relu-plain] [w16-k3-batchnorm-conv_norm_act-relu-plain] "
        "dropout=0.0"
    )
    args = ["ablate", "--arch", arch, "--factors", "norm", "--levels", "norm=bn,none",
            "--seeds", "2", "--epochs", "1", "--no-progress"]  # fmt: skip
    on_ray = f"journal:{tmp_path / 'ray.journal'}"
    done = support.invoke([*args, "--storage", on_ray, "--study", "abl", "--executor", "ray",
                           "--trials-in-parallel", "2"], tmp_path)  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "No norm" in done.output and "summary (95% t-intervals" in done.output
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each actor (one CPU per run): the same arithmetic
    try:
        here = f"journal:{tmp_path / 'here.journal'}"
        local = support.invoke([*args, "--storage", here, "--study", "abl"], tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert local.exit_code == 0, local.output

    def runs(url: str) -> dict[tuple[str, int], Any]:
        study = optuna.load_study(study_name="abl", storage=open_storage(url))
        return {(r.params["norm"], r.params["seed"]): r for r in rec.records(study) if r.evaluated}

    ray_runs, local_runs = runs(on_ray), runs(here)
    assert set(ray_runs) == {(n, s) for n in ("batchnorm", "none") for s in (0, 1)}
    # each point once, in the actors (two Ray worker processes, not this driver)
    study = optuna.load_study(study_name="abl", storage=open_storage(on_ray))
    numbers = {r.number for r in ray_runs.values()}
    owners = {_owner_pid(t) for t in study.get_trials(deepcopy=False) if t.number in numbers}
    assert len(owners) == 2 and os.getpid() not in owners
    assert len(study.get_trials(deepcopy=False)) == 4
    # same seed, same initialization and batches: the same accuracy as the local run
    for point, r in ray_runs.items():
        assert r.result["accuracy"] == pytest.approx(local_runs[point].result["accuracy"])


def test_without_ray_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    (tmp_path / "tiny.yaml").write_text(support.TINY)
    out = support.invoke(["search", "-c", "tiny.yaml", "--executor", "ray", "--no-final"], tmp_path)
    assert out.exit_code != 0
    assert "--executor ray: Ray is not installed; pip install 'normnas[ray]'" in out.output
    assert not (tmp_path / "normnas.journal").exists()  # it failed before any work
    ablate = support.invoke(["ablate", "--executor", "ray", "--storage",
                             f"sqlite:///{tmp_path / 'a.db'}"], tmp_path)  # fmt: skip
    assert ablate.exit_code == 2
    assert "--executor ray: Ray is not installed; pip install 'normnas[ray]'" in ablate.output
    assert not (tmp_path / "a.db").exists()
