"""`normnas search --evaluator supernet|bn-indicator` end to end on digits (NB201, tiny).

The supernets are trained once per session (`trained_supernet` in conftest.py, which also
checks that a search leaves its checkpoint beside the study); the searches here find them
beside their study and judge with them.
"""

import shutil

import optuna
import pytest

from normnas.search import records as rec
from normnas.search.study import open_storage

from .helpers import ONESHOT_CONFIG, invoke


def _study(folder):
    return optuna.load_study(study_name="s", storage=open_storage(f"sqlite:///{folder}/normnas.db"))


def _checkpoints(folder):
    """Each checkpoint file in `folder` but the final model's -> its modification time."""
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.pt*") if p.name != "s-best.pt"}


@pytest.mark.parametrize(
    ("evaluator", "extra"),
    [("supernet", ["--bn-mode", "recalibrate"]), ("bn-indicator", [])],
)
def test_search_on_a_weight_sharing_judge_end_to_end(
    tmp_path, digits_npz, trained_supernet, evaluator, extra
):
    (tmp_path / "c.yaml").write_text(ONESHOT_CONFIG.format(data=digits_npz))
    # the finished supernet of this study and config, where a first search left it
    for path in trained_supernet(evaluator):
        shutil.copy2(path, tmp_path / path.name)
    stamps = _checkpoints(tmp_path)
    checkpoint = tmp_path / f"s.{evaluator}.pt{'.bn' if evaluator == 'bn-indicator' else ''}"
    assert checkpoint.name in stamps
    args = ["search", "-c", "c.yaml", "--evaluator", evaluator, *extra, "--trials", "3"]
    args += ["--study", "s", "--no-progress"]
    result = invoke(args, tmp_path)
    assert result.exit_code == 0, result.output
    done = [r for r in rec.records(_study(tmp_path)) if r.evaluated]
    assert len(done) == 3 and all(r.status == "ok" for r in done)
    judges = {r.result["extra"]["judge"] for r in done}
    assert judges == {evaluator}
    assert all(r.result["cost_s"] > 0 for r in done)  # a query's cost is its measured time
    assert (tmp_path / "s-best.pt").is_file()  # the best is retrained from scratch and tested
    assert _checkpoints(tmp_path) == stamps  # the finished supernet was reused, none trained
    again = invoke([*args[:-3], "--trials", "4", "--study", "s", "--no-final", "--no-progress"],
                   tmp_path)  # fmt: skip
    assert again.exit_code == 0, again.output
    assert sum(r.evaluated for r in rec.records(_study(tmp_path))) == 4
    assert _checkpoints(tmp_path) == stamps  # and reused by the rerun


def test_a_bad_bn_mode_is_one_line(tmp_path, digits_npz):
    (tmp_path / "c.yaml").write_text(ONESHOT_CONFIG.format(data=digits_npz))
    result = invoke(
        ["search", "-c", "c.yaml", "--evaluator", "supernet", "--bn-mode", "avg"], tmp_path
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: --bn-mode: must be one of 'running', 'batch'")


def test_python_api_takes_the_same_judge(tmp_path, digits_npz):
    import normnas

    out = normnas.search(
        space="nb201",
        data=f"npz:{digits_npz}",
        strategy="random",
        evaluator="supernet",
        bn_mode="running",
        oneshot={"C": 4, "N": 1},
        trials=3,
        epochs=1,
        final=False,
        storage=f"sqlite:///{tmp_path / 'api.db'}",
        study="api",
    )
    done = [r for r in rec.records(out.study) if r.evaluated]
    assert len(done) == 3
    assert {r.result["extra"]["bn_mode"] for r in done} == {"running"}
    assert (tmp_path / "api.supernet.pt").is_file()
