"""The search command end to end on a tiny macro space (1 epoch on digits per trial)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from tests import support

from normnas.search import records as rec
from normnas.search.study import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

TINY = support.TINY
NORMNAS = [sys.executable, "-c", "from normnas.cli import main; main()"]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "tiny.yaml").write_text(TINY)
    return tmp_path


def _invoke(args: list[str], cwd: Path):
    return support.invoke(args, cwd)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "evo"], "error: --strategy: unknown strategy 'evo'; valid: additive"),
        (
            ["--space", "cells"],
            "error: --space: must be one of 'macro', 'nb201', 'layers' or 'seq'",
        ),
        (["--objective", "speed"], "error: --objective: must be one of 'accuracy'"),
        (["--time", "soon"], "error: --time: 'soon' is not a duration"),
        (["--pruner", "asha"], "error: --pruner: must be one of 'none', 'sha' or 'hyperband'"),
        (["--seed", "-1"], "error: --seed: Input should be greater than or equal to 0"),
        (["--seed", str(2**32)], "error: --seed: Input should be less than or equal to 4294967295"),
        (["--max-params", "0"], "error: --max-params: Input should be greater than 0"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tiny, args, message):
    result = _invoke(["search", "-c", "tiny.yaml", *args], tiny)
    assert result.exit_code == 2
    assert result.output.strip().startswith(message)
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("yaml_extra", "message"),
    [
        ("epochz: 3\n", "error: epochz in bad.yaml: unknown key; allowed keys: data"),
        ("trials: many\n", "error: --trials [trials in bad.yaml]: Input should be a valid integer"),
        ("seed: [1]\n", "error: --seed [seed in bad.yaml]: Input should be a valid integer"),
        (
            "constraints: {max_params: -1}\n",
            "error: --max-params [constraints.max_params in bad.yaml]: Input should be greater",
        ),
    ],
)
def test_bad_config_file_exits_2_with_one_line(tiny, yaml_extra, message):
    (tiny / "bad.yaml").write_text(TINY + yaml_extra)
    result = _invoke(["search", "-c", "bad.yaml"], tiny)
    assert result.exit_code == 2 and result.output.strip().startswith(message)
    assert len(result.output.strip().splitlines()) == 1


def test_search_then_status_best_and_export_round_trip(tiny):
    result = _invoke(["search", "-c", "tiny.yaml", "--trials", "4", "--study", "t"], tiny)
    assert result.exit_code == 0, result.output
    assert "leaderboard of t" in result.output and "test accuracy" in result.output
    assert (tiny / "normnas.db").exists() and (tiny / "t-best.pt").exists()
    status = _invoke(["status", "--study", "t"], tiny)
    assert status.exit_code == 0 and "ok: 4" in status.output
    best = _invoke(["best", "--study", "t", "--json"], tiny)
    assert best.exit_code == 0 and '"accuracy"' in best.output

    from normnas.search import final

    model, ckpt = final.load(tiny / "t-best.pt")
    x = (torch.randn(5, 1, 8, 8) - torch.tensor(ckpt["mean"]).view(1, -1, 1, 1)) / torch.tensor(
        ckpt["std"]
    ).view(1, -1, 1, 1)
    with torch.no_grad():
        want = model(x)
    for fmt, extra in (("state_dict", []), ("torchscript", []), ("torchscript", ["--fold-bn"])):
        out = tiny / f"m-{fmt}{len(extra)}.pt"
        r = _invoke(["export", "--study", "t", "--out", str(out), "--format", fmt, *extra], tiny)
        assert r.exit_code == 0, r.output
        if fmt == "state_dict":
            data = torch.load(out, weights_only=True)
            assert data["arch"] == ckpt["arch"] and data["mean"] == ckpt["mean"]
            rebuilt, _ = final.load(out)
            got = rebuilt(x)
        else:
            got = torch.jit.load(str(out))(x)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    missing = _invoke(["status", "--study", "nope"], tiny)
    assert missing.exit_code == 2 and "no study 'nope'" in missing.output


def _evaluated(storage: str, study: str) -> list[rec.TrialRecord]:
    s = optuna.load_study(study_name=study, storage=open_storage(storage))
    return [r for r in rec.records(s) if r.evaluated]


def test_resume_after_sigkill_keeps_finished_trials_and_reaches_the_budget(tiny):
    url = f"sqlite:///{tiny / 'r.db'}"
    # 12 trials, killed after 3: room for a few more to finish while a busy machine polls
    cmd = [*NORMNAS, "search", "-c", "tiny.yaml", "--trials", "12", "--study", "r"]
    cmd += ["--storage", url, "--no-final", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, cwd=tiny, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 200  # a busy machine starts the command slowly
    before: dict[int, tuple] = {}
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        try:
            done = _evaluated(url, "r")
        except Exception:  # the study or its tables are not created yet
            continue
        if len(done) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    study = optuna.load_study(study_name="r", storage=open_storage(url))
    before = {
        t.number: (t.params, t.values, t.state) for t in study.trials if t.state.is_finished()
    }
    running = [t.number for t in study.trials if t.state == TrialState.RUNNING]
    assert 3 <= len(before) < 12

    rerun = subprocess.run(cmd, cwd=tiny, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    study = optuna.load_study(study_name="r", storage=open_storage(url))
    after = {t.number: t for t in study.trials}
    for number, (params, values, state) in before.items():
        assert (after[number].params, after[number].values, after[number].state) == (
            params,
            values,
            state,
        )
    for number in running:  # running when killed: failed, marked, and retried
        t = after[number]
        assert t.state == TrialState.FAIL and rec.result_of(t)["status"] == "interrupted"
        retried = [u for u in after.values() if u.user_attrs.get("retry_of") == number]
        # a kill during suggest leaves only some params recorded: the retry keeps all of them
        # (a kill right after the trial's creation leaves none: nothing to retry)
        assert bool(retried) == bool(t.params)
        assert not retried or retried[0].params.items() >= t.params.items()
    evaluated = _evaluated(url, "r")
    assert len(evaluated) == 12 and all(r.state == TrialState.COMPLETE for r in evaluated)
    assert not [t for t in after.values() if t.state == TrialState.RUNNING]


def test_two_workers_share_one_study_without_loss_or_duplicates(tiny):
    url = f"journal:{tiny / 'w.journal'}"
    # options of evolution would be refused for --strategy random: a config without them
    (tiny / "rand.yaml").write_text(TINY.replace("strategy_options: {population_size: 3}\n", ""))
    cmd = [*NORMNAS, "search", "-c", "rand.yaml", "--trials", "4", "--workers", "2"]
    cmd += ["--study", "w", "--storage", url, "--no-final", "--no-progress", "--strategy", "random"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, cwd=tiny, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    study = optuna.load_study(study_name="w", storage=open_storage(url))
    evaluated = _evaluated(url, "w")
    assert len(evaluated) == 4
    keys = [r.key for r in evaluated]
    assert len(set(keys)) == len(keys)
    assert all(t.state.is_finished() for t in study.trials)
