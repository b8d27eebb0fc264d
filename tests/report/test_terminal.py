"""What the terminal and the report show of a study: the leaderboard (latency marks, its
legend, FLOPs), `status`'s figures, the report's latency notes and axes."""

from __future__ import annotations

import io
import re
from typing import Any

import optuna
import pytest
from optuna.distributions import BaseDistribution
from rich.console import Console
from tests.report.conftest import MadeStudy

from normnas.report import sections
from normnas.report.leaderboard import NB201_LEGEND, finalist_costs, leaderboard
from normnas.report.status import print_status
from normnas.report.study_data import load
from normnas.search import records as rec
from normnas.search.result import TrialResult
from normnas.search.study import load_study, open_storage
from normnas.spaces import MacroSpace, NB201Space
from normnas.train.cost import LatencyMs

optuna.logging.set_verbosity(optuna.logging.WARNING)
# set_metric_names is experimental in Optuna, and what the dashboard and `status` read
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

SPACE = MacroSpace(
    stages=[{"widths": [8, 16], "min_blocks": 1, "max_blocks": 1, "stride": 1}],
    norms=["batchnorm", "layernorm"],
    dropout=[0.0],
)
SMALL = "[w8-k3-batchnorm-conv_norm_act-relu-plain] dropout=0.0"
BIG = "[w16-k5-layernorm-norm_act_conv-gelu-res] dropout=0.0"


def _study(
    rows: list[tuple[str, TrialResult]], objectives: tuple[str, ...] = ("accuracy", "latency")
) -> optuna.Study:
    """An in-memory study of macro trials recorded as the runner records them."""
    study = optuna.create_study(directions=rec.directions(objectives))
    study.set_metric_names(list(objectives))
    dists: dict[str, BaseDistribution] = SPACE.distributions()
    for arch_str, result in rows:
        arch = SPACE.from_str(arch_str)
        params = SPACE.to_params(arch)
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions={k: dists[k] for k in params},
                values=[rec.objective_value(result, o) for o in objectives],  # type: ignore[misc]
                user_attrs=rec.result_attrs(SPACE.to_str(arch), arch_str, "ok", result),
            )
        )
    return study


def _render(renderable: Any, width: int = 200) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def _cells(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("│").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]


def test_a_latency_measured_under_load_is_marked_with_its_load() -> None:
    busy = LatencyMs(0.3456, load=5.2, cores=2, reliable=False)
    quiet = LatencyMs(1.2, load=0.4, cores=2, reliable=True)
    study = _study(
        [
            (SMALL, TrialResult("ok", accuracy=0.9, params=1000, flops=2000, latency_ms=busy)),
            (BIG, TrialResult("ok", accuracy=0.95, params=9000, flops=50_000, latency_ms=quiet)),
        ]
    )
    attrs = study.trials[0].user_attrs  # what the trial records beside the figure
    assert (attrs["latency_ms"], attrs["latency_load"], attrs["latency_cores"]) == (
        0.3456, 5.2, 2,
    )  # fmt: skip
    assert attrs["latency_reliable"] is False and study.trials[1].user_attrs["latency_reliable"]
    text = _render(leaderboard(study, SPACE, width=200))
    ms = {row[0].rstrip(" *"): row[5] for row in _cells(text)}
    assert ms == {"0": "0.35!", "1": "1.20"}
    caption = " ".join(text.split())
    assert "! latency measured under load 5.2 on 2 cores: unreliable" in caption
    assert "width/kernel norm·placement" in caption  # the macro legend for macro blocks
    assert "c3 conv 3×3" not in caption


def test_no_mark_and_no_note_when_every_latency_is_reliable() -> None:
    quiet = LatencyMs(1.2, load=0.4, cores=2, reliable=True)
    study = _study([(SMALL, TrialResult("ok", accuracy=0.9, params=1, latency_ms=quiet))])
    text = _render(leaderboard(study, SPACE, width=200))
    assert _cells(text)[0][5] == "1.20" and "unreliable" not in text


def test_report_marks_an_unreliable_latency_and_says_under_what_load() -> None:
    busy = LatencyMs(0.3456, load=5.2, cores=2, reliable=False)
    quiet = LatencyMs(1.2, load=0.4, cores=2, reliable=True)
    study = _study(
        [
            (SMALL, TrialResult("ok", accuracy=0.9, params=1000, latency_ms=busy)),
            (BIG, TrialResult("ok", accuracy=0.8, params=9000, latency_ms=quiet)),
        ]
    )
    data = load(study, "memory")
    html = sections.trial_table(data)
    cells = re.findall(r"<td data-v=\"[^\"]*\">([^<]*)</td>", html)
    assert "0.346 !" in cells and "1.2" in cells and "1.2 !" not in cells
    assert "! latency measured under load 5.2 on 2 cores: unreliable" in html
    data.attrs["final_model"] = {
        "latency_ms": 0.5, "latency_folded_ms": 0.4, "latency_load": 3.5,
        "latency_cores": 2, "latency_reliable": False,
    }  # fmt: skip
    best = sections.best_model(data)  # trial #0, the best accuracy: measured under load too
    assert "0.346 !" in best and "0.500 !" in best and "0.400 !" in best
    assert "! latency measured under load 5.2 on 2 cores: unreliable" in best


def test_the_leaderboard_fills_in_the_flops_and_latency_a_trial_lacks() -> None:
    import normnas.data
    from normnas.session import SearchOutcome
    from normnas.train.cost import count_flops

    digits = normnas.data.load("digits")
    study = _study([(SMALL, TrialResult("ok", accuracy=0.9, params=1000))], ("accuracy",))
    outcome = SearchOutcome(study, None, None, [], None, None, "memory", data=digits)
    measured = finalist_costs(outcome, SPACE)
    model = SPACE.build(SPACE.from_str(SMALL), 10, 1)
    assert measured[0]["flops"] == count_flops(model, (1, 8, 8))
    assert measured[0]["latency_ms"] > 0 and isinstance(measured[0]["latency_reliable"], bool)
    row = _cells(_render(leaderboard(study, SPACE, measured=measured, width=200)))[0]
    flops = measured[0]["flops"]
    assert row[4] == f"{flops / 1e3:,.1f}k" != "-"


def test_an_nb201_leaderboard_explains_cells_and_shows_their_flops(nb201_study: MadeStudy) -> None:
    study = load_study("nb", open_storage(nb201_study.url, write=False))
    space = NB201Space()
    text = _render(leaderboard(study, space, width=200))
    rows = _cells(text)
    assert len(rows) == 5
    by_number = {r.number: r for r in rec.records(study)}
    for row in rows:
        arch = space.from_str(by_number[int(row[0].rstrip(" *"))].arch)  # type: ignore[arg-type]
        flops, _ = space.op_count(arch)
        assert row[4] == (f"{flops / 1e3:,.1f}k" if flops < 1e6 else f"{flops / 1e6:,.2f}M")
    caption = " ".join(text.split())
    assert " ".join(NB201_LEGEND.split()) in caption
    assert "c3 conv 3×3, c1 conv 1×1, ap avg pool 3×3, id skip, - none" in caption
    assert "width/kernel" not in caption  # no macro notation under NB201 cells


def test_status_writes_the_best_as_the_leaderboard_does(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    study = _study(
        [(SMALL, TrialResult("ok", accuracy=0.958333, params=142_100))], ("accuracy", "params")
    )
    print_status(study, "memory")
    out = capsys.readouterr().out
    assert f"best #0: accuracy=95.83%, params=142.1k  {SMALL}" in out
    text = _render(leaderboard(study, SPACE, width=200))
    assert _cells(text)[0][2:4] == ["95.83%", "142.1k"]  # the same figures


def _ticks(svg: str) -> tuple[list[str], list[str]]:
    """(x, y) tick labels of an SVG axes: x ticks are centred under the axis, y ticks
    right-aligned beside it."""
    x = re.findall(r'<text class="tick" [^>]*text-anchor="middle">([^<]*)</text>', svg)
    y = re.findall(r'<text class="tick" [^>]*text-anchor="end">([^<]*)</text>', svg)
    return x, y


def test_trial_axis_has_whole_ticks_and_accuracy_stops_at_100_percent() -> None:
    # 12 trials, every one perfect: the old axes ticked trials 2.5, 7.5 and accuracy 102%
    result = TrialResult("ok", accuracy=1.0, params=10)
    study = _study([(SMALL, result)] * 12, ("accuracy",))
    data = load(study, "memory")
    figure = sections.trajectory(data).split("</svg>")[0]  # against the trial number
    assert "trial" in figure
    x, y = _ticks(figure)
    assert x == ["0", "5", "10"]
    assert y == ["96%", "98%", "100%"]


def test_learning_curves_axis_stops_at_100_percent_and_labels_each_tick_apart() -> None:
    study = _study([(SMALL, TrialResult("ok", accuracy=1.0, params=10))], ("accuracy",))
    data = load(study, "memory")
    data.rows[0].curve = [0.98, 1.0, 1.0]
    curves = sections.per_trial(data).split("</svg>")[0]
    x, y = _ticks(curves)
    assert x == ["1", "2", "3"]
    # half-percent steps: whole-percent labels read 98%, 98%, 99%, 100%, 100%
    assert y == ["98.0%", "98.5%", "99.0%", "99.5%", "100.0%"]


def test_nb201_finalists_get_the_flops_of_the_searched_images() -> None:
    import normnas.data
    from normnas.session import SearchOutcome
    from normnas.train.cost import count_flops

    space = NB201Space()
    digits = normnas.data.load("digits")  # 1 x 8 x 8: not the benchmark's 3 x 32 x 32
    arch = space.from_str(
        "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
    )
    study = optuna.create_study(direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            params=space.to_params(arch),
            distributions=space.distributions(),
            value=0.5,
            user_attrs=rec.result_attrs(
                space.to_str(arch), space.to_str(arch), "ok", TrialResult("ok", accuracy=0.5)
            ),  # a supernet's result: no FLOPs
        )
    )
    outcome = SearchOutcome(study, None, None, [], None, None, "memory", data=digits)
    measured = finalist_costs(outcome, space)
    assert measured[0]["flops"] == count_flops(space.build(arch, 10, 1), (1, 8, 8))
