"""`normnas ablate` end to end on digits, and its resume after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from tests.support import invoke

from normnas.search import records as rec
from normnas.search.study import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

# two small conv blocks: a 1-epoch run on digits takes about a second
TINY_ARCH = (
    "[w8-k3-batchnorm-conv_norm_act-relu-plain] [w16-k3-batchnorm-conv_norm_act-relu-plain] "
    "dropout=0.0"
)
PYTHON_CLI = [sys.executable, "-c", "from normnas.cli import main; main()"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _args(url: str, *extra: str) -> list[str]:
    return [
        "ablate", "--arch", TINY_ARCH, "--factors", "norm", "--levels", "norm=bn,gn",
        "--study", "abl", "--storage", url, "--no-progress", *extra,
    ]  # fmt: skip


def _study(url: str) -> optuna.Study:
    return optuna.load_study(study_name="abl", storage=open_storage(url))


def _counted_points(study: optuna.Study) -> Counter:
    return Counter(
        (r.params["norm"], r.params["seed"]) for r in rec.records(study) if r.evaluated
    )


def test_ablate_on_digits_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    report = tmp_path / "r.html"
    done = invoke([*_args(url, "--seeds", "2", "--epochs", "1", "--report", str(report))],
                  tmp_path)  # fmt: skip
    assert done.exit_code == 0, done.output
    out = done.output
    assert "design: full factorial: 2 cells" in out
    assert "2 seeds -> 4 runs of 1 epoch" in out
    assert "GroupNorm" in out and "BatchNorm" in out
    assert "summary (95% t-intervals over seeds" in out
    assert ("beats BatchNorm" in out) or ("trails BatchNorm" in out) or ("do not differ" in out)
    study = _study(url)
    assert _counted_points(study) == Counter(
        {(n, s): 1 for n in ("batchnorm", "groupnorm") for s in (0, 1)}
    )
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    html = report.read_text()
    assert html.count("<svg") == 1 and "GroupNorm" in html
    assert "<script" not in html and "<link" not in html and "src=" not in html  # self-contained

    # a rerun of the finished ablation runs nothing and prints the same tables
    again = invoke([*_args(url, "--seeds", "2", "--epochs", "1")], tmp_path)
    assert again.exit_code == 0, again.output
    assert len(_study(url).trials) == 4
    # another configuration under the same study name is refused
    other = invoke([*_args(url, "--seeds", "2", "--epochs", "2")], tmp_path)
    assert other.exit_code == 2
    assert "was run differently: train.epochs: 1 recorded, 2 now" in other.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--factors", "nrm"], "unknown factor 'nrm'"),
        (["--levels", "norm=bn,zz"], "factor norm: unknown norm 'zz'"),
        (["--executor", "ray", "--workers", "2"], "--trials-in-parallel sets the parallel runs"),
        (["--cpus-per-trial", "2"], "need --executor ray"),
        (["--seeds", "0"], "seeds"),
        (["--arch", "resnet"], "--arch 'resnet'"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path: Path, args: list[str], message: str) -> None:
    done = invoke(["ablate", "--storage", f"sqlite:///{tmp_path / 'a.db'}", *args], tmp_path)
    assert done.exit_code == 2, done.output
    assert message in done.output
    assert "Traceback" not in done.output


def test_a_killed_ablation_resumes_without_redoing_finished_cells(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    (tmp_path / "slow.yaml").write_text("train: {batch_size: 8}\n")  # a run takes seconds
    args = _args(url, "-c", "slow.yaml", "--seeds", "2", "--epochs", "1")
    optuna.create_study(study_name="abl", storage=open_storage(url), direction="maximize")
    proc = subprocess.Popen(
        [*PYTHON_CLI, *args], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    study = _study(url)
    end = time.monotonic() + 180
    running: list[int] = []
    while time.monotonic() < end:
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        running = [t.number for t in trials if t.state == TrialState.RUNNING and t.params]
        if complete and running:
            break
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"no run finished in time: {proc.communicate()[1][-2000:]}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    before = {
        t.number: (t.params, t.values, t.datetime_complete, dict(t.user_attrs))
        for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.COMPLETE
    }
    rerun = invoke(args, tmp_path)  # in this process: the killed one's pid is gone
    assert rerun.exit_code == 0, rerun.output
    assert "re-queued 1 run cut short" in rerun.output
    study = _study(url)
    after = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number, (params, values, completed, attrs) in before.items():  # intact
        t = after[number]
        assert (t.params, t.values, t.datetime_complete, dict(t.user_attrs)) == (
            params, values, completed, attrs,
        )  # fmt: skip
    killed = after[running[0]]
    assert killed.state == TrialState.FAIL and rec.result_of(killed)["status"] == "interrupted"
    # every point ran exactly once to the end: nothing finished was redone
    assert _counted_points(study) == Counter(
        {(n, s): 1 for n in ("batchnorm", "groupnorm") for s in (0, 1)}
    )
    assert all(t.state.is_finished() for t in after.values())


def test_time_budget_times_the_baseline_first_and_runs_it_once(tmp_path: Path) -> None:
    # two seeds: the probe runs seed 0 alone, and the study's `seed` parameter must still
    # offer both (Optuna refuses a parameter whose choices change within a study)
    url = f"sqlite:///{tmp_path / 't.db'}"
    args = [
        "ablate", "--arch", TINY_ARCH, "--factors", "norm,batch_size", "--levels", "norm=bn,gn",
        "--levels", "batch_size=16,64", "--seeds", "2", "--epochs", "1", "--time", "20m",
        "--study", "abl", "--storage", url, "--no-progress",
    ]  # fmt: skip
    done = invoke(args, tmp_path)
    assert done.exit_code == 0, done.output
    assert "design: full factorial: 4 cells; full 8 runs ~" in done.output
    assert "full factorial fits within the" in done.output  # the 20 min less the probe
    study = _study(url)
    assert study.trials[0].params == {"norm": "batchnorm", "batch_size": 16, "seed": 0}
    points = Counter(
        (t.params["norm"], t.params["batch_size"], t.params["seed"]) for t in study.trials
    )
    assert points == Counter(
        {(n, b, s): 1 for n in ("batchnorm", "groupnorm") for b in (16, 64) for s in (0, 1)}
    )


def test_ray_flags_are_laid_over_the_files_ray_mapping_key_by_key(tmp_path: Path) -> None:
    from normnas.ablate.config import load_ablate_config
    from normnas.errors import ConfigError

    path = tmp_path / "a.yaml"
    path.write_text("executor: ray\nray: {cpus_per_trial: 2, address: auto}\n")
    cfg = load_ablate_config(path, {"ray.trials_in_parallel": 3, "ray.address": None})
    assert (cfg.ray.cpus_per_trial, cfg.ray.trials_in_parallel, cfg.ray.address) == (2, 3, "auto")
    with pytest.raises(ConfigError, match="need --executor ray"):
        load_ablate_config(path, {"executor": "local"})
