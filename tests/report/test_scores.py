"""A judge's score is not an accuracy: a proxy search's values are shown as `proxy score`,
never with a percent sign, in the terminal (progress lines, leaderboard, `best`, `status`)
and in the HTML report, while the study keeps them as its `accuracy` objective."""

from __future__ import annotations

import io
from pathlib import Path

import optuna
import pytest
from tests.report.page import parse
from tests.support import TINY, invoke

from normnas.report.formats import Label, objective_label, score_name
from normnas.search import records as rec
from normnas.search.study import load_study, open_storage, study_meta


def test_which_judges_record_a_score_and_how_it_is_written() -> None:
    assert objective_label("proxy") == Label("proxy score", False)
    assert objective_label("bn-indicator") == Label("bn_score", False)
    assert objective_label("supernet") == Label("accuracy", True)  # its sub-network's accuracy
    assert objective_label(None) == Label("accuracy", True)
    assert objective_label({"config": {"evaluator": "bn-indicator"}}) == Label("bn_score", False)
    assert objective_label({"config": {"evaluator": "train"}}) == Label("accuracy", True)
    # only `accuracy` holds a score; the other objectives keep their names and units
    assert objective_label("proxy", "params") == Label("params", False)
    assert objective_label("proxy", "f1:maximize") == Label("f1", False)
    assert objective_label("proxy").fmt(-3.38123) == "-3.381"
    assert objective_label("bn-indicator").fmt(0.41) == "0.41"
    assert objective_label("train").fmt(0.95834) == "95.83%"
    assert objective_label("proxy", "params").fmt(142_100) == "142.1k"
    assert objective_label("proxy").fmt(None) == "-"
    # a result's own word (extra["accuracy_is"]) wins over the judge's name
    assert score_name("train", "proxy_z_sum:synflow,jacov") == "proxy score"
    assert score_name(None, "bn_score") == "bn_score"
    assert score_name("train") is None


def test_a_study_without_a_run_config_is_read_by_its_results(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")  # made around run_search: no meta
    assert objective_label(study) == Label("accuracy", True)
    study.add_trial(optuna.trial.create_trial(value=0.4, user_attrs={"x.accuracy_is": "bn_score"}))
    assert objective_label(study) == Label("bn_score", False)


@pytest.fixture(scope="module")
def proxy_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A four-trial `--evaluator proxy` search on digits from the command line."""
    folder = tmp_path_factory.mktemp("proxy-study")
    (folder / "c.yaml").write_text(TINY)
    args = ["search", "-c", "c.yaml", "--evaluator", "proxy", "--trials", "4"]
    got = invoke([*args, "--study", "p", "--no-final", "--no-progress"], folder, columns=100)
    assert got.exit_code == 0, got.output
    return folder, got.output


def _study(folder: Path) -> optuna.Study:
    return load_study("p", open_storage(f"sqlite:///{folder / 'normnas.db'}", write=False))


def test_a_proxy_search_shows_scores_in_the_terminal(proxy_study: tuple[Path, str]) -> None:
    folder, output = proxy_study
    study = _study(folder)
    done = [r for r in rec.records(study) if r.status == "ok"]
    assert len(done) == 4
    # the leaderboard's title and rows (its caption may quote a latency spread in %)
    table = [line for line in output.splitlines() if line.lstrip()[:1] in ("│", "┃", "l")]
    assert len(table) == 1 + 1 + 4 and not any("%" in line for line in table)
    assert "leaderboard of p (proxy score, not an accuracy)" in table[0]
    assert "score" in table[1] and "accuracy" not in table[1]
    assert "valid accuracy" not in output
    for r in done:  # every trial's recorded value, as the plain number it is
        assert f" {r.values[0]:.4g} " in output  # type: ignore[index]
    best = rec.best_records(study)[0]
    shown = f"proxy score {best.values[0]:.4g}"  # type: ignore[index]
    got = invoke(["best", "--study", "p"], folder, columns=200)
    assert got.exit_code == 0 and shown + "," in got.output and "%" not in got.output
    got = invoke(["status", "--study", "p"], folder, columns=200)
    assert f"best #{best.number}: proxy score={best.values[0]:.4g}" in got.output  # type: ignore[index]


def test_progress_lines_name_the_score_the_study_says_it_holds(
    proxy_study: tuple[Path, str],
) -> None:
    from normnas.report.progress import PlainProgress
    from normnas.search.events import StudyFollower
    from normnas.search.runner import Budget

    study = _study(proxy_study[0])
    judge = study_meta(study)["config"]["evaluator"]
    assert judge == "proxy"
    out = io.StringIO()
    budget = Budget(trials=4)
    StudyFollower(PlainProgress(budget, ("accuracy",), stream=out, judge=judge), budget).poll(study)
    lines = out.getvalue().splitlines()
    values = [t.value for t in sorted(study.trials, key=lambda t: t.number)]
    best = max(values)  # type: ignore[type-var]
    assert len(lines) == 4 and "%" not in out.getvalue()
    for line, v in zip(lines, values, strict=True):
        assert f" ok         proxy score {v:.4g}" in line
    assert f"best {best:.4g}  [4/4 trials" in lines[-1]


def test_the_report_of_a_proxy_search_writes_scores(proxy_study: tuple[Path, str]) -> None:
    folder, _ = proxy_study
    study = _study(folder)
    page = parse((folder / "p-report.html").read_text(encoding="utf-8"))
    done = sorted((r for r in rec.records(study) if r.status == "ok"), key=lambda r: r.number)
    values = [f"{r.values[0]:.4g}" for r in done]  # type: ignore[index]
    # the trial table: its objective's column is headed by the score's name
    table = page.text("trials")
    assert "# status proxy score params flops latency cost s architecture" in table
    for v in values:
        assert f" {v} " in table
    # the trajectory's points and axis: the score, never a percentage
    titles = [m.title for m in page.find("circle", "trial-pt", "trajectory")]
    assert len(titles) == 2 * len(done)
    for r, v in zip(done, values, strict=True):  # both figures: by trial, by time
        assert sum(t.startswith(f"#{r.number} ok: proxy score {v}\n") for t in titles) == 2
    assert not any("%" in t for t in titles)
    ticks = " ".join(page.texts["trajectory"])
    assert "%" not in ticks and "proxy score" in ticks
    best = rec.best_records(study)[0]
    summary = page.text("summary")
    assert f"best #{best.number}: proxy score {best.values[0]:.4g}" in summary  # type: ignore[index]
    assert "%" not in page.text("best")
    for kind in ("norm", "placement"):  # the box plots of each choice: the score too
        (box,) = page.find("svg", f"dist-{kind}", "choices")
        assert box.attrs["aria-label"] == f"proxy score per {kind}"
