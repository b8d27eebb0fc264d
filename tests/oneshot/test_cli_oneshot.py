"""`normnas search --evaluator supernet|bn-indicator` end to end on digits (NB201, tiny)."""

import optuna
import pytest

from normnas.search import records as rec
from normnas.search.study import open_storage

from .helpers import invoke

CONFIG = """\
space: nb201
data: digits
strategy: evolution
strategy_options: {population_size: 4, sample_size: 2}
train: {epochs: 1, batch_size: 64, lr: 0.05}
oneshot: {C: 4, N: 1, warmup_epochs: 1, bn_epochs: 1, calib_batches: 2}
"""


@pytest.mark.parametrize(
    ("evaluator", "extra"),
    [("supernet", ["--bn-mode", "recalibrate"]), ("bn-indicator", [])],
)
def test_search_on_a_weight_sharing_judge_end_to_end(tmp_path, evaluator, extra):
    (tmp_path / "c.yaml").write_text(CONFIG)
    args = ["search", "-c", "c.yaml", "--evaluator", evaluator, *extra, "--trials", "6"]
    args += ["--study", "s", "--no-progress"]
    result = invoke(args, tmp_path)
    assert result.exit_code == 0, result.output
    # beside the study's storage, reused by a rerun (the indicator's last phase is `.bn`)
    checkpoint = tmp_path / f"s.{evaluator}.pt{'.bn' if evaluator == 'bn-indicator' else ''}"
    assert checkpoint.is_file()
    study = optuna.load_study(
        study_name="s", storage=open_storage(f"sqlite:///{tmp_path}/normnas.db")
    )
    done = [r for r in rec.records(study) if r.evaluated]
    assert len(done) == 6 and all(r.status == "ok" for r in done)
    judges = {r.result["extra"]["judge"] for r in done}
    assert judges == {evaluator}
    assert all(r.result["cost_s"] > 0 for r in done)  # a query's cost is its measured time
    assert (tmp_path / "s-best.pt").is_file()  # the best is retrained from scratch and tested
    stamp = checkpoint.stat().st_mtime_ns
    again = invoke([*args[:-3], "--trials", "8", "--study", "s", "--no-progress"], tmp_path)
    assert again.exit_code == 0, again.output
    assert checkpoint.stat().st_mtime_ns == stamp  # the finished supernet was reused


def test_a_bad_bn_mode_is_one_line(tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG)
    result = invoke(
        ["search", "-c", "c.yaml", "--evaluator", "supernet", "--bn-mode", "avg"], tmp_path
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: --bn-mode: must be one of 'running', 'batch'")


def test_python_api_takes_the_same_judge(tmp_path):
    import normnas

    out = normnas.search(
        space="nb201",
        data="digits",
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
