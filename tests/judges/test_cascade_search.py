"""A cascade search on digits from the CLI and the API: every stage's scores in the study,
the last stage judging only what the screens passed, a rerun judging nothing twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from tests.support import invoke

import normnas
from normnas.judges.cascade import STAGE_ATTR, parse_cascade
from normnas.judges.screening import ScreenJudge, run_screens, screened
from normnas.search import records as rec
from normnas.search.study import open_storage
from normnas.spaces import MacroSpace

CONFIG = """\
space:
  name: macro
  options:
    stages:
      - {widths: [8, 16], min_blocks: 1, max_blocks: 2, stride: 1}
      - {widths: [16, 24], min_blocks: 1, max_blocks: 1, stride: 2}
    dropout: [0.0]
train: {epochs: 1, batch_size: 64}
"""


def _study(tmp_path: Path, name: str) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path}/normnas.db")
    return optuna.load_study(study_name=name, storage=storage)


def test_a_cascade_search_from_the_command_line_records_every_stage(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(CONFIG)
    args = ["search", "-c", "c.yaml", "--cascade", "proxy:20,proxy:6,train:3"]
    args += ["--study", "c", "--no-progress", "--no-final"]
    got = invoke(args, tmp_path)
    assert got.exit_code == 0, got.output
    assert "cascade proxy:20,proxy:6,train:3: proxy 20" in got.output
    study = _study(tmp_path, "c")
    first = [t for t in study.trials if t.user_attrs.get(STAGE_ATTR) == 0]
    second = [t for t in study.trials if t.user_attrs.get(STAGE_ATTR) == 1]
    assert len(first) == 20 and len(second) == 6
    assert {t.user_attrs["key"] for t in second} <= {t.user_attrs["key"] for t in first}
    done = [r for r in rec.records(study) if r.evaluated]
    assert len(done) == 3 and all(r.status == "ok" for r in done)
    passed = {t.user_attrs["key"] for t in second}
    trained = [t for t in study.trials if t.user_attrs.get(STAGE_ATTR) == 2]
    assert {t.user_attrs["key"] for t in trained} <= passed
    assert all("x.synflow" in t.user_attrs for t in trained)  # the cheap scores it had
    assert study.user_attrs["cascade"]["spec"] == "proxy:20,proxy:6,train:3"
    assert "3 ok, 26 screened" in got.output
    # the same command again: nothing is judged twice and no trial is added
    again = invoke(args, tmp_path)
    assert again.exit_code == 0, again.output
    assert len(_study(tmp_path, "c").trials) == len(study.trials)


def test_the_api_takes_a_cascade(tmp_path: Path) -> None:
    out = normnas.search(
        space="macro", space_options={"stages": [{"widths": [8, 16], "min_blocks": 1,
        "max_blocks": 1, "stride": 1}], "dropout": [0.0]},
        data="digits", cascade="proxy:12,train:2", epochs=1, final=False,
        storage=f"sqlite:///{tmp_path / 's.db'}", study="a", verbose=False,
    )  # fmt: skip
    assert out.summary is not None and out.summary.n_evaluated == 2
    assert any(n.startswith("cascade proxy:12,train:2") for n in out.notes)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--workers", "2"], "takes no --method, --workers or --executor ray"),
        (["--evaluator", "supernet"], "its last stage judges with train"),
        (["--cascade", "train:3,proxy"], "train can only be the last"),
        (["--cascade", "proxy:5,magic"], "unknown judge 'magic'"),
    ],
)
def test_what_a_cascade_cannot_run_with_is_one_line(
    tmp_path: Path, extra: list[str], says: str
) -> None:
    (tmp_path / "c.yaml").write_text(CONFIG)
    args = ["search", "-c", "c.yaml", "--cascade", "proxy:5,train", *extra, "--no-progress"]
    got = invoke(args, tmp_path)
    assert got.exit_code == 2, got.output
    assert says in got.output and got.output.count("\n") == 1
    assert not (tmp_path / "normnas.db").exists() or not _study_names(tmp_path)


def _study_names(tmp_path: Path) -> list[str]:
    storage = open_storage(f"sqlite:///{tmp_path}/normnas.db")
    return [s.study_name for s in optuna.get_all_study_summaries(storage)]


def test_screens_cut_by_time_resume_where_they_stopped(tmp_path: Path) -> None:
    space = MacroSpace(
        stages=[{"widths": [8, 16], "min_blocks": 1, "max_blocks": 2, "stride": 1}],
        dropout=[0.0],
    )
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    calls: list[str] = []

    def judge(name: str) -> ScreenJudge:
        def score(arch: object) -> dict[str, float]:
            key = space.to_str(arch)  # type: ignore[arg-type]
            calls.append(key)
            return {"width": float(len(key))}  # any deterministic score

        return ScreenJudge(name, score)

    stages = parse_cascade("proxy:10,train")
    budget = iter([1.0] * 4 + [0.0] * 100)  # time for 4 candidates, then none
    first = run_screens(study, space, stages, judge, seed=3, time_left=lambda: next(budget))
    assert first.cut and len(first.pool) == 4 and len(calls) == 4
    assert len(screened(study, space)) == 4  # in the study: a kill now loses nothing
    calls.clear()
    second = run_screens(study, space, stages, judge, seed=3)
    assert not second.cut and len(second.pool) == 10
    assert len(calls) == 6  # only the six it had not judged
    assert [c.key for c in second.pool[:4]] == [c.key for c in first.pool]
    assert np.all([c.scores["width"] > 0 for c in second.pool])


def test_time_alone_gets_a_cascade_sized_here_and_a_rerun_keeps_it(tmp_path: Path) -> None:
    space = ["--space", str(tmp_path / "s.yaml")]
    (tmp_path / "s.yaml").write_text(
        "input_size: 8\nlayers:\n  - {type: conv, filters: [4, 8], norm: [bn, gn, none]}\n"
        "  - {type: pool, size: 2}\n  - {type: conv, filters: [8, 16], kernel_size: [3, 5]}\n"
    )
    args = ["search", "--data", "digits", "--time", "15s", "--epochs", "1", *space]
    args += ["--study", "auto", "--no-progress", "--no-final"]
    got = invoke(args, tmp_path)
    assert got.exit_code == 0, got.output
    assert "auto cascade for" in got.output
    study = _study(tmp_path, "auto")
    from normnas.search.study import study_meta

    spec = study_meta(study)["config"]["cascade"]
    stages = parse_cascade(spec)  # a concrete spec was recorded, not "auto"
    assert stages[0].judge == "proxy" and stages[-1] == parse_cascade("proxy:1,train")[-1]
    screens = [t for t in study.trials if t.user_attrs.get("cascade_screen")]
    assert 0 < len(screens) <= (stages[0].n or 0)
    again = invoke(args, tmp_path)
    assert again.exit_code == 0, again.output
    assert f"cascade {spec} (chosen when this study began)" in again.output
    # naming a judge (or a strategy, a trial count) is a plain search: no cascade
    plain = invoke([*args[:-4], "--study", "plain", "--trials", "2", "--no-progress",
                    "--no-final"], tmp_path)  # fmt: skip
    assert plain.exit_code == 0, plain.output
    assert "auto cascade" not in plain.output and "screened" not in plain.output
