"""`normnas search --method darts|gdas|drnas` end to end on digits (tiny NB201 and macro;
600 digits, `digits_npz`: the final retrain builds the benchmark's C=16, N=5 network)."""

from pathlib import Path

import optuna
import pytest

from normnas.oneshot.gradient_study import HISTORY_ATTR, RESULT_ATTR
from normnas.search import records as rec
from normnas.search.study import open_storage
from normnas.spaces import MacroSpace, NB201Space

from .helpers import invoke

CONFIG = """\
space: nb201
data: digits
train: {epochs: 1, batch_size: 64, lr: 0.05}
gradient: {C: 4, N: 1, batch_size: 64}
"""


def _on(config: str, data: Path) -> str:
    """`config` on the digits of file `data` instead of all of them."""
    return config.replace("data: digits\n", f"data: npz:{data}\n")


def _study(tmp_path: Path, name: str = "g") -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path}/normnas.db")
    return optuna.load_study(study_name=name, storage=storage)


def test_gdas_search_derives_one_trial_and_retrains_it(tmp_path, digits_npz):
    (tmp_path / "c.yaml").write_text(_on(CONFIG, digits_npz))
    args = ["search", "-c", "c.yaml", "--method", "gdas", "--search-epochs", "2"]
    args += ["--study", "g", "--no-progress"]
    result = invoke(args, tmp_path)
    assert result.exit_code == 0, result.output
    assert "epoch 2/2" in result.output  # one line per epoch of the relaxed supernet
    study = _study(tmp_path)
    history = study.user_attrs[HISTORY_ATTR]
    assert [h["epoch"] for h in history] == [0, 1]
    assert all(len(h["weights"]) == 6 and len(h["weights"][0]) == 5 for h in history)
    derived = study.user_attrs[RESULT_ATTR]["arch"]
    done = [r for r in rec.records(study) if r.evaluated]
    assert len(done) == 1 and done[0].status == "ok"  # the derived cell is the one trial
    space = NB201Space()
    assert space.to_str(space.from_params(done[0].params)) == derived
    assert done[0].result["extra"]["judge"] == "gradient"
    assert len(done[0].result["curve"]) == 2  # the supernet's valid accuracy per epoch
    assert (tmp_path / "g-best.pt").is_file()  # retrained from scratch and tested once
    assert study.user_attrs["test_accuracy"] is not None
    # a rerun of the finished study resumes at its end: no new epoch, no new trial
    ckpt = tmp_path / "g.gdas.pt"
    stamp = ckpt.stat().st_mtime_ns
    again = invoke([*args, "--no-final"], tmp_path)
    assert again.exit_code == 0, again.output
    assert ckpt.stat().st_mtime_ns == stamp
    assert len([r for r in rec.records(_study(tmp_path)) if r.evaluated]) == 1


MACRO = """\
space:
  name: macro
  options:
    stages:
      - {widths: [4, 8], min_blocks: 1, max_blocks: 2, stride: 1}
      - {widths: [8], min_blocks: 1, max_blocks: 1, stride: 2}
    norms: [bn, gn, none]
    placements: [conv_norm_act, norm_act_conv]
    kernels: [3]
    dropout: [0.0]
data: digits
train: {epochs: 1, batch_size: 64, lr: 0.05}
gradient: {batch_size: 64, affine: true, track_running_stats: true}
"""


def test_darts_on_the_macro_space_chooses_norm_and_placement_by_gradient(tmp_path, digits_npz):
    (tmp_path / "c.yaml").write_text(_on(MACRO, digits_npz))
    args = ["search", "-c", "c.yaml", "--method", "darts", "--search-epochs", "2"]
    args += ["--study", "m", "--no-progress"]
    result = invoke(args, tmp_path)
    assert result.exit_code == 0, result.output
    study = _study(tmp_path, "m")
    decisions = dict(study.user_attrs[RESULT_ATTR]["decisions"])
    norms = [n for n in decisions if n.endswith(".norm")]
    placements = [n for n in decisions if n.endswith(".placement")]
    assert norms and placements  # norm and placement are relaxed per block
    assert all(decisions[n] == ["batchnorm", "groupnorm", "none"] for n in norms)
    history = study.user_attrs[HISTORY_ATTR]
    last = history[-1]["weights"]
    names = list(decisions)
    assert len(last) == len(names)
    # the derived arch is each decision's argmax (a norm `none` is a real choice here)
    space = MacroSpace(
        stages=[
            {"widths": [4, 8], "min_blocks": 1, "max_blocks": 2, "stride": 1},
            {"widths": [8], "min_blocks": 1, "max_blocks": 1, "stride": 2},
        ],
        norms=["bn", "gn", "none"],
        placements=["conv_norm_act", "norm_act_conv"],
        kernels=[3],
        dropout=[0.0],
    )
    dists = space.distributions()
    params = {name: d.choices[0] for name, d in dists.items()}  # single-choice fields
    for name, w in zip(names, last, strict=True):
        params[name] = dists[name].choices[max(range(len(w)), key=lambda k: w[k])]
    derived = study.user_attrs[RESULT_ATTR]["arch"]
    assert space.to_str(space.from_params(params)) == derived
    done = [r for r in rec.records(study) if r.evaluated]
    assert len(done) == 1 and done[0].status == "ok"
    assert space.to_str(space.from_params(done[0].params)) == derived
    assert (tmp_path / "m-best.pt").is_file()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--evaluator", "proxy"], "--method gdas: derives the architecture"),
        (["--order", "2"], "--order 2"),
        (["--workers", "2"], "--workers"),
        (["--selection", "best"], "--selection"),
    ],
)
def test_bad_method_options_are_one_line_errors(tmp_path, extra, expected):
    args = ["search", "--space", "nb201", "--method", "gdas", *extra, "--no-progress"]
    result = invoke(args, tmp_path)
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and expected in lines[0], result.output
    assert not (tmp_path / "normnas.db").exists()  # refused before anything was written


def test_unknown_method_names_the_choices(tmp_path):
    result = invoke(["search", "--method", "enas", "--no-progress"], tmp_path)
    assert result.exit_code == 2
    assert "--method" in result.output and "darts" in result.output
