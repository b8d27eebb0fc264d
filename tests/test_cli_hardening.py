"""The search command when nothing goes right: each case ends in one line and a real exit code.

Searches run on the embedded digits data with a tiny macro space (1 epoch per trial).
"""

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from tests import support
from typer.testing import CliRunner

from normnas.cli import app
from normnas.search import records as rec
from normnas.search.study import open_storage, study_meta

optuna.logging.set_verbosity(optuna.logging.WARNING)

TINY = support.TINY.replace(
    "strategy: evolution\nstrategy_options: {population_size: 3}\n", "strategy: random\n"
)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "tiny.yaml").write_text(TINY)
    return tmp_path


def _invoke(args: list[str], cwd: Path):
    return support.invoke(args, cwd)


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def _study(cwd: Path, name: str, url: str = "sqlite:///normnas.db") -> optuna.Study:
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return optuna.load_study(study_name=name, storage=open_storage(url))
    finally:
        os.chdir(old)


def test_nothing_feasible_stops_and_names_the_constraint(tiny):
    # a journal file: the 200 proposals before the stop are ~4,600 storage writes, which a
    # SQLite file commits (and syncs) one by one, over a minute on a busy disk
    args = ["search", "-c", "tiny.yaml", "--max-params", "1", "--trials", "3", "--study", "nf"]
    url = f"journal:{tiny / 'nf.journal'}"
    result = _invoke([*args, "--storage", url], tiny)
    assert result.exit_code == 1, result.output
    (line,) = _errors(result.output)
    assert "no architecture met the constraints" in line and "--max-params excluded" in line
    assert "Traceback" not in result.output
    study = _study(tiny, "nf", url)
    statuses = {r.status for r in rec.records(study) if r.duplicate_of is None}
    assert statuses == {"infeasible"}


def test_a_run_where_every_trial_diverged_says_so_and_exits_1(tiny):
    (tiny / "div.yaml").write_text(TINY.replace("epochs: 1,", "epochs: 1, lr: 1.0e+8,"))
    result = _invoke(["search", "-c", "div.yaml", "--trials", "3", "--study", "d"], tiny)
    assert result.exit_code == 1, result.output
    (line,) = _errors(result.output)
    assert line.startswith("error: 0 of 3 trials succeeded: 3 diverged; first error (#")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_refused_before_any_trial(tiny):
    result = _invoke(["search", "-c", "tiny.yaml", "--device", "cuda", "--study", "c"], tiny)
    assert result.exit_code == 2
    assert _errors(result.output) == [_errors(result.output)[0]]
    assert "--device cuda: CUDA is not available here" in result.output
    assert not (tiny / "normnas.db").exists() or not _study_names(tiny)


def _study_names(cwd: Path) -> list[str]:
    url = f"sqlite:///{cwd / 'normnas.db'}"
    return [s.study_name for s in optuna.get_all_study_summaries(open_storage(url))]


def test_images_too_small_for_the_space_are_refused_at_load_time(tiny):
    rng = np.random.default_rng(0)
    path = tiny / "small.npz"
    np.savez(path, x=rng.integers(0, 255, (60, 2, 2, 1), dtype=np.uint8), y=np.arange(60) % 3)
    result = _invoke(["search", "-c", "tiny.yaml", "--data", f"npz:{path}"], tiny)
    assert result.exit_code == 2
    (line,) = _errors(result.output)
    assert "images are 2x2" in line and "needs at least 3x3" in line


def test_rerun_with_other_training_is_refused_then_forced(tiny):
    base = ["search", "-c", "tiny.yaml", "--trials", "1", "--study", "fp", "--no-final"]
    assert _invoke(base, tiny).exit_code == 0
    changed = _invoke([*base, "--trials", "2", "--epochs", "2"], tiny)
    assert changed.exit_code == 2
    (line,) = _errors(changed.output)
    assert "study 'fp' was run differently: train.epochs: 1 recorded, 2 now" in line
    assert "--study NEW" in line and "--force" in line
    forced = _invoke([*base, "--trials", "2", "--epochs", "2", "--force"], tiny)
    assert forced.exit_code == 0, forced.output
    meta = study_meta(_study(tiny, "fp"))
    assert any("train.epochs" in c for entry in meta["changes"] for c in entry["forced"])
    # a rerun that only extends the budget is a resume, not a change
    assert _invoke([*base, "--trials", "3", "--epochs", "2"], tiny).exit_code == 0


def test_trials_are_recorded_flat_for_the_dashboard(tiny):
    args = ["search", "-c", "tiny.yaml", "--trials", "2", "--study", "dash", "--no-final"]
    args += ["--epochs", "2", "--objective", "accuracy", "--objective", "params"]
    assert _invoke(args, tiny).exit_code == 0
    study = _study(tiny, "dash")
    assert study.metric_names == ["accuracy", "params"]
    for t in study.trials:
        if t.user_attrs.get("duplicate_of") is not None:
            continue
        attrs = t.user_attrs
        assert attrs["status"] == "ok" and isinstance(attrs["accuracy"], float)
        assert all(len(str(v)) <= 1024 for v in attrs.values())
        assert not any(isinstance(v, (dict, list)) for v in attrs.values())
        # the learning curve is the trial's intermediate values (the dashboard plots them)
        assert sorted(t.intermediate_values) == [1, 2]
        assert t.intermediate_values[2] == pytest.approx(attrs["accuracy"])
        assert rec.result_of(t)["curve"][-1] == pytest.approx(attrs["accuracy"])


def test_status_counts_each_trial_once(tiny):
    args = ["search", "-c", "tiny.yaml", "--trials", "3", "--study", "st", "--no-final"]
    # about a third of the space fits: infeasible proposals beside the evaluated trials
    assert _invoke([*args, "--max-params", "5000"], tiny).exit_code in (0, 1)
    study = _study(tiny, "st")
    status = _invoke(["status", "--study", "st"], tiny)
    counted = {}
    for part in status.output.splitlines()[1].split(", "):
        k, v = part.rsplit(": ", 1)
        counted[k] = int(v)
    assert sum(counted.values()) == len(study.trials)
    assert "fail" not in counted and "complete" not in counted  # a state is not a status


def test_time_budget_cuts_a_long_trial_and_covers_the_final_retrain(tiny):
    long = TINY.replace("epochs: 1,", "epochs: 500,")
    (tiny / "long.yaml").write_text(long)
    budget = 8.0
    start = time.monotonic()
    result = _invoke(["search", "-c", "long.yaml", "--time", f"{budget:g}s", "--study", "t"], tiny)
    elapsed = time.monotonic() - start
    # the one trial could not finish 500 epochs: it is cut at the budget and recorded so
    assert result.exit_code == 1, result.output
    (t,) = [r for r in rec.records(_study(tiny, "t")) if r.duplicate_of is None]
    assert t.status == "timeout" and 0 < t.result["extra"]["epochs"] < 500
    assert t.result["cost_s"] <= budget + 5  # cut at the time left, then validated once
    # behaviour, not speed: without the cut one trial alone runs for minutes
    assert elapsed < budget + 20
    assert "timeout" in result.output


def test_time_budget_leaves_room_for_the_final_retrain(tiny):
    budget = 12.0  # a few 1-second trials, then the retrain
    start = time.monotonic()
    result = _invoke(["search", "-c", "tiny.yaml", "--time", f"{budget:g}s", "--study", "f"], tiny)
    elapsed = time.monotonic() - start
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps lines at the terminal's width
    assert "final retrain" in text and "whole command" in text
    assert elapsed < budget + 10  # the retrain was budgeted, not appended
    assert _study(tiny, "f").user_attrs["final_s"] > 0


def test_progress_time_left_counts_down_between_trials():
    from rich.progress import Progress

    from normnas.report.progress import _TimeLeft

    column = _TimeLeft(100.0)
    progress = Progress(column, auto_refresh=False)
    task_id = progress.add_task("search", total=100.0)
    progress.start_task(task_id)
    task = progress.tasks[0]
    first = column.render(task).plain
    time.sleep(1.2)
    before = task.elapsed or 0.0
    second = column.render(task).plain
    after = task.elapsed or 0.0  # a busy machine may run this later than 1.2 s on
    assert first in ("left 100s", "left 99s") and after >= before >= 1.2
    assert second in {f"left {100 - before:.0f}s", f"left {100 - after:.0f}s"}
    assert first != second


def _cifar_archive(root: Path, per_batch: int = 20) -> None:
    """An official-format cifar-10-python.tar.gz (tiny batches) in `root`: not the official
    bytes, so its MD5 differs and it needs --no-verify."""
    import pickle
    import tarfile

    from normnas.data import cifar

    src = root / "src" / cifar.CIFAR10_FOLDER
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in cifar.CIFAR10_FILES:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        with open(src / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": [i % 10 for i in range(per_batch)]}, f)
    with tarfile.open(root / cifar.CIFAR10_ARCHIVE, "w:gz") as tar:
        tar.add(src, arcname=cifar.CIFAR10_FOLDER)


def test_data_root_flag_and_no_verify_reach_the_loader(tiny):
    data_root = tiny / "my data"
    data_root.mkdir()
    _cifar_archive(data_root)
    args = ["search", "-c", "tiny.yaml", "--data", "cifar10", "--data-root", str(data_root)]
    args += ["--trials", "1", "--no-final", "--study", "c10"]
    refused = _invoke(args, tiny)
    assert refused.exit_code == 2
    (line,) = _errors(refused.output)
    assert str(data_root) in line and "--no-verify" in line and "delete" not in line
    accepted = _invoke([*args, "--no-verify"], tiny)
    assert accepted.exit_code == 0, accepted.output
    assert (data_root / "cifar-10-batches-py" / "test_batch").is_file()  # extracted there
    meta = study_meta(_study(tiny, "c10"))["config"]
    assert meta["data_root"] == str(data_root) and meta["verify"] is False


def test_api_root_and_verify(tmp_path):
    import normnas
    from normnas.errors import DataError

    _cifar_archive(tmp_path)
    space = {"stages": [{"widths": [8], "min_blocks": 1, "max_blocks": 1, "stride": 2}]}
    common = dict(data="cifar10", root=str(tmp_path), trials=1, epochs=1, final=False)
    common |= dict(space_options=space, storage=f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(DataError, match="verify=False"):
        normnas.search(**common)
    out = normnas.search(**common, verify=False)
    assert out.best is not None and out.data.image_size == (32, 32)
    assert len(out.data.test) == 20  # the archive's test batch, read from root


def test_help_names_every_strategy_and_the_data_forms():
    from normnas.search.strategies import STRATEGIES

    result = CliRunner().invoke(app, ["search", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    for name in STRATEGIES:
        assert name in text, name
    assert "npz:PATH" in text and "a path to an .npz file or an image folder" in text
    assert "--data-root" in text and "--no-verify" in text


def test_leaderboard_shows_measured_latency_of_the_finalists(tiny):
    args = ["search", "-c", "tiny.yaml", "--trials", "3", "--study", "lat", "--no-final"]
    result = support.invoke(args, tiny, columns=200)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert len(rows) == 3
    for row in rows:
        cells = [c.strip() for c in row.strip("│").split("│")]
        # latency ms, measured although no objective asked for it (! when under load)
        assert float(cells[5].removesuffix("!")) > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--max-params", "abc"], "error: Invalid value for '--max-params': "),
        (["search", "--bogus"], "error: No such option: --bogus"),
        (["export"], "error: Missing option '--out'."),  # and --study or --checkpoint
        (["searchh"], "error: No such command 'searchh'. Did you mean 'search'?"),
        (["--bogus"], "error: No such option: --bogus"),
        (["bench", "nb201", "--runs", "many"], "error: Invalid value for '--runs' / '-r': "),
    ],
)
def test_command_line_mistakes_are_one_error_line_and_exit_2(tmp_path, args, message):
    result = _invoke(args, tmp_path)
    assert result.exit_code == 2
    # one line, no usage block or framed box; it says where the valid options are listed
    assert result.output.splitlines() == [_errors(result.output)[0]]
    assert result.output.startswith(message) and "--help'" in result.output


def test_a_repeated_key_in_the_config_is_one_error_line(tiny):
    (tiny / "twice.yaml").write_text(TINY + "trials: 2\ntrials: 5\n")
    result = _invoke(["search", "-c", "twice.yaml"], tiny)
    assert result.exit_code == 2
    first = len(TINY.splitlines()) + 1
    assert result.output.splitlines() == [
        f"error: config 'twice.yaml': line {first + 1}: duplicate key 'trials' "
        f"(first on line {first})"
    ]


def test_a_space_of_one_architecture_says_so_and_stops(tiny):
    one = TINY.replace(
        "      - {widths: [8, 16], min_blocks: 1, max_blocks: 1, stride: 1}\n"
        "      - {widths: [16, 24], min_blocks: 1, max_blocks: 1, stride: 2}\n",
        "      - {widths: [8], min_blocks: 1, max_blocks: 1, stride: 1}\n"
        "    kernels: [3]\n    norms: [batchnorm]\n    placements: [conv_norm_act]\n"
        "    activations: [relu]\n    residual: [false]\n",
    )
    (tiny / "one.yaml").write_text(one)
    args = ["search", "-c", "one.yaml", "--trials", "2", "--study", "one", "--no-final"]
    result = _invoke(args, tiny)
    assert result.exit_code == 0, result.output
    # it used to write 1,000 duplicate trials, never reach --trials 2, and exit 0 silently
    assert "note: the space holds 1 architecture; all evaluated" in result.output
    assert "stopped by exhausting the space" in result.output
    assert len(_study(tiny, "one").trials) == 1


def test_a_study_named_with_dots_and_slashes_writes_only_beside_its_storage(tiny):
    outside = tiny / "outside"
    work = outside / "in" / "work"
    work.mkdir(parents=True)
    (work / "tiny.yaml").write_text(TINY)
    before = {p for p in tiny.rglob("*")}
    name = "../x/../../evil"
    url = "sqlite:///db/s.db"
    args = ["search", "-c", "tiny.yaml", "--trials", "1", "--study", name, "--storage", url]
    result = _invoke(args, work)
    assert result.exit_code == 0, result.output
    assert _invoke(["report", "--study", name, "--storage", url], work).exit_code == 0
    made = {p for p in tiny.rglob("*")} - before
    db = work / "db"
    strays = [p for p in made if p != db and db not in p.parents]
    assert strays == []  # the best model and the report used to land in ../x, ../../
    names = sorted(p.name for p in db.iterdir())
    assert any(n.endswith("-best.pt") for n in names), names
    assert any(n.endswith("-report.html") for n in names), names


def _mount_tmpfs(folder: Path, size: str) -> None:
    """A small tmpfs at `folder`: a real disk that fills up; skip (saying why) without one."""
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        reason = f"cannot mount a {size} tmpfs (root needed): {done.stderr.strip()}"
        print(reason)
        pytest.skip(reason)


def _fill(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte; the file that did it."""
    filler = folder / "filler"
    try:
        with open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:  # ENOSPC: full (at the open when there was no room at all)
        pass
    return filler


def test_a_full_disk_is_one_line_exit_2_and_the_rerun_resumes(tiny):
    disk = tiny / "disk"
    _mount_tmpfs(disk, "4m")  # the study, its report and its trials' checkpoints fit
    try:
        url = f"sqlite:///{disk / 's.db'}"
        base = ["search", "-c", "tiny.yaml", "--study", "full", "--storage", url, "--no-final"]
        first = _invoke([*base, "--trials", "1"], tiny)
        assert first.exit_code == 0, first.output
        filler = _fill(disk)
        full = _invoke([*base, "--trials", "5"], tiny)
        assert full.exit_code == 2, full.output  # was 70, "internal error ... report it"
        (line,) = _errors(full.output)
        assert line.startswith(f"error: {disk / 's.db'}: disk full (database or disk is full)")
        assert "internal error" not in full.output and "Traceback" not in full.output
        filler.unlink(missing_ok=True)  # room again: the same command resumes the study
        again = _invoke([*base, "--trials", "3"], tiny)
        assert again.exit_code == 0, again.output
        statuses = [r.status for r in rec.records(_study(tiny, "full", url)) if r.evaluated]
        assert statuses == ["ok"] * 3
    finally:
        # lazily: this process still holds the storage's connections open
        subprocess.run(["umount", "-l", str(disk)], check=False)
