"""The HTML report of real studies, read back element by element."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
from tests.report.conftest import MadeStudy
from tests.report.page import parse
from tests.support import invoke

from normnas.search import records as rec
from normnas.search.study import load_study, open_storage

SECTIONS = ("summary", "trajectory", "pareto", "choices", "trials", "best")


def _study(made: MadeStudy, url: str | None = None) -> optuna.Study:
    return load_study(made.name, open_storage(url or made.url, write=False))


def test_report_of_a_copied_storage_has_every_section_and_figure(
    digits_study: MadeStudy, tmp_path: Path
) -> None:
    # another machine: only the database travels (no checkpoint, no data beside it)
    copy = tmp_path / "elsewhere" / "copy.db"
    copy.parent.mkdir()
    shutil.copy(digits_study.folder / "study.db", copy)
    url = f"sqlite:///{copy}"
    out = tmp_path / "out" / "report.html"
    result = invoke(["report", "--study", "two", "--storage", url, "--out", str(out)], tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"report  {out}"
    html = out.read_text(encoding="utf-8")
    assert "<script src" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )  # self-contained: nothing is fetched
    page = parse(html)
    assert [m.attrs["id"] for m in page.find("section")] == list(SECTIONS)

    study = _study(digits_study, url)
    recs = rec.records(study)
    finished = [r for r in recs if r.state.is_finished()]
    # the trajectory: one point per finished trial in each of its two figures
    points = page.find("circle", "trial-pt", "trajectory")
    assert len(points) == 2 * len(finished)
    assert len(page.find("polyline", "best-line", "trajectory")) == 2
    # the Pareto front: its points, and the chosen one ringed with its architecture on hover
    front = rec.best_records(study)
    assert len(page.find("circle", "front-pt", "pareto")) == len(front)
    (ring,) = page.find("circle", "chosen", "pareto")
    assert front[0].arch in ring.title and f"#{front[0].number} ok" in ring.title
    # which choices matter: importances, top-10% shares and distributions of norm and placement
    assert page.find("svg", "importance", "choices")
    for kind in ("norm", "placement"):
        assert page.find("svg", f"freq-{kind}", "choices")
        assert page.find("svg", f"dist-{kind}", "choices")
    # per trial: a curve per evaluated trial (1 epoch: a point each) and a row per trial
    assert len(page.find("tr", section="trials")) == 1 + len(recs)
    assert len(page.find("polyline", "curve", "trials")) == len(
        [r for r in recs if r.duplicate_of is None and r.result.get("curve")]
    )
    # the best model: its blocks, and the final model's BN diagnostics from the storage alone
    assert page.find("svg", "arch-chain", "best")
    final = study.user_attrs["final_model"]
    n_bn = len(final["bn"])
    assert len(page.find("svg", "gamma-hist", "best")) == n_bn
    best_text = page.text("best")
    assert f"{final['params'] / 1e3:,.1f}k" in best_text
    assert f"{final['latency_ms']:.3f}" in best_text
    summary = page.text("summary")
    assert f"{100 * study.user_attrs['test_accuracy']:.2f}%" in summary
    assert "normnas 0" in summary or "normnas " in summary  # versions are listed


def test_final_model_diagnostics_match_the_checkpoint(digits_study: MadeStudy) -> None:
    import torch

    from normnas.nn import bn_report
    from normnas.search.final import load

    study = _study(digits_study)
    final = study.user_attrs["final_model"]
    model, ckpt = load(study.user_attrs["model_path"])
    assert final["params"] == sum(p.numel() for p in model.parameters())
    assert final["test_accuracy"] == pytest.approx(study.user_attrs["test_accuracy"])
    rows = bn_report(model)
    assert [r["name"] for r in final["bn"]] == [r["name"] for r in rows]
    for stored, row in zip(final["bn"], rows, strict=True):
        assert stored["mean_abs_gamma"] == pytest.approx(row["mean_abs_gamma"])
        module = dict(model.named_modules())[row["name"]]
        assert sum(stored["gamma_hist"]["counts"]) == module.num_features
        assert stored["gamma_hist"]["edges"][0] == pytest.approx(
            float(module.weight.detach().min()), abs=1e-6
        )
    assert isinstance(ckpt["state_dict"], dict) and all(
        isinstance(v, torch.Tensor) for v in ckpt["state_dict"].values()
    )


def test_nb201_report_draws_the_cell_and_the_op_choices(
    nb201_study: MadeStudy, tmp_path: Path
) -> None:
    out = tmp_path / "nb.html"
    result = invoke(
        ["report", "--study", "nb", "--storage", nb201_study.url, "--out", str(out)], tmp_path
    )
    assert result.exit_code == 0, result.output
    page = parse(out.read_text(encoding="utf-8"))
    ids = [m.attrs["id"] for m in page.find("section")]
    assert ids == ["summary", "trajectory", "choices", "trials", "best"]  # one objective
    study = _study(nb201_study)
    best = rec.best_records(study)[0]
    edges = page.find("g", "edge", "best")
    assert len(edges) == 6
    ops = best.arch.strip("|").replace("|+|", "|").split("|")
    assert [e.title.split(": ")[1] for e in edges] == [op.split("~")[0] for op in ops]
    assert page.find("svg", "dist-cell-op", "choices")
    text = page.text("choices")
    assert "Normalization is fixed in this space" in text
    assert "No final model was trained" in page.text("best")
    assert "No learning curves recorded" in page.text("trials")


def test_report_errors_name_the_study(digits_study: MadeStudy, tmp_path: Path) -> None:
    result = invoke(
        ["report", "--study", "nope", "--storage", digits_study.url, "--out", "r.html"], tmp_path
    )
    assert result.exit_code != 0
    assert "nope" in result.output and not (tmp_path / "r.html").exists()
