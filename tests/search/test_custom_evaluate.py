"""normnas.search(evaluate=my_fn): named metrics with directions, failures recorded, the
signature decides the call; evolution's generations x population_size budget; the example."""

from __future__ import annotations

import runpy
import sys
import tempfile
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.study import StudyDirection

import normnas
from normnas.errors import ConfigError, SearchFailedError
from normnas.search import records as rec
from normnas.search.custom import call_mode
from normnas.spaces import LayerArch, LayerSpace

ROOT = Path(__file__).parents[2]
# 2 x 2 x 3 = 12 architectures (an optional dense layer of two widths)
SPACE = LayerSpace(
    [
        {"type": "conv", "filters": [4, 8], "norm": ["bn", "none"]},
        {"type": "pool", "size": 2},
        {"type": "dense", "units": [8, 16], "optional": True},
    ],
    input_size=8,
)


@pytest.fixture(scope="module")
def digits() -> Any:
    return normnas.data.load("digits")


def _filters(arch: LayerArch) -> int:
    return arch.layers[0].get("filters")  # type: ignore[union-attr]


def _units(arch: LayerArch) -> int:
    dense = arch.layers[2]
    return 0 if dense is None else dense.get("units")


def _score(arch: LayerArch) -> dict[str, float]:
    """A hand-made score and cost of an architecture."""
    bn = arch.layers[0].get("norm") == "batchnorm"  # type: ignore[union-attr]
    return {"score": _filters(arch) / 8 + 0.5 * bn - _units(arch) / 32, "cost": _units(arch)}


def _search(tmp_path: Path, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "space": SPACE, "data": "digits", "storage": f"sqlite:///{tmp_path / 's.db'}",
        "study": "s", "final": False, "seed": 0,
    }  # fmt: skip
    return normnas.search(**{**options, **kwargs})


def test_a_dict_of_metrics_with_their_directions(tmp_path: Path) -> None:
    seen: list[LayerArch] = []

    def evaluate(arch: LayerArch) -> dict[str, float]:
        seen.append(arch)
        return _score(arch)

    out = _search(tmp_path, evaluate=evaluate, objectives=["score:max", "cost:minimize"],
                  strategy="random", trials=8)  # fmt: skip
    assert out.study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    done = [r for r in rec.records(out.study) if r.evaluated]
    assert len(done) == 8 == len(seen)
    for r in done:  # each trial's values are the function's, recorded as x.<name> too
        want = _score(SPACE.from_str(r.arch))
        assert r.values == (want["score"], want["cost"])
        assert r.result["extra"] == {"score": want["score"], "cost": want["cost"]}
    # the front: no evaluated point has a higher score at no higher cost
    points = {(r.values[0], r.values[1]) for r in done}  # type: ignore[index]
    front = {(r.values[0], r.values[1]) for r in out.front}  # type: ignore[index]
    assert front == {p for p in points if not any(
        q != p and q[0] >= p[0] and q[1] <= p[1] for q in points)}  # fmt: skip


def test_model_and_data_are_passed_and_the_value_is_the_objective(tmp_path, digits) -> None:
    def evaluate(model: torch.nn.Module, data: Any) -> float:
        assert data.num_classes == 10 and data.image_size == (8, 8)
        with torch.no_grad():  # the untrained network's validation accuracy
            return float((model.eval()(data.valid.x).argmax(1) == data.valid.y).float().mean())

    assert call_mode(evaluate) == "model_data"
    out = _search(tmp_path, evaluate=evaluate, strategy="random", trials=3, data=digits)
    best = out.best
    assert best is not None and best.result["accuracy"] == best.values[0]  # type: ignore[index]
    torch.manual_seed(0)  # the run's seed: the function saw this very network
    model = SPACE.build(SPACE.from_str(best.arch), 10, 1).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        want = float((model(digits.valid.x).argmax(1) == digits.valid.y).float().mean())
    assert best.values[0] == pytest.approx(want, abs=1e-12)  # type: ignore[index]
    assert best.result["params"] == sum(p.numel() for p in model.parameters())


def test_an_exception_is_a_failed_trial_and_the_search_goes_on(tmp_path: Path) -> None:
    def evaluate(arch: LayerArch) -> float:
        if _filters(arch) == 8:
            raise RuntimeError(f"no 8-filter convs please\nsecond line {_units(arch)}")
        return _score(arch)["score"]

    out = _search(tmp_path, evaluate=evaluate, objectives=["score:maximize"],
                  strategy="random", trials=7)  # fmt: skip
    done = [r for r in rec.records(out.study) if r.evaluated]
    assert len(done) == 7 and out.summary is not None and out.summary.n_total == 7
    failed = [r for r in done if r.status == "failed"]
    assert failed and all(_filters(SPACE.from_str(r.arch)) == 8 for r in failed)  # type: ignore[arg-type]
    assert all(r.state == optuna.trial.TrialState.FAIL for r in failed)
    assert {r.result["error"] for r in failed} == {"RuntimeError: no 8-filter convs please"}
    ok = [r for r in done if r.status == "ok"]
    assert ok and all(_filters(SPACE.from_str(r.arch)) == 4 for r in ok)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("returned", "error"),
    [
        ("high", "ValueError: evaluate returned 'high' as its result; expected a number"),
        (float("nan"), "ValueError: evaluate returned nan as its result; expected a finite"),
        ({"other": 1.0}, "ValueError: evaluate returned no 'score' (an objective); it returned"),
        ({"score": None}, "ValueError: evaluate returned None as metric 'score'; expected a"),
    ],
)
def test_what_is_not_a_metric_is_a_failed_trial_with_its_reason(
    tmp_path: Path, returned: Any, error: str
) -> None:
    with pytest.raises(SearchFailedError, match=r"^0 of 2 trials succeeded: 2 failed") as info:
        _search(tmp_path, evaluate=lambda arch: returned, objectives=["score:max"],
                strategy="random", trials=2)  # fmt: skip
    assert error in str(info.value)
    done = [r for r in rec.records(info.value.outcome.study) if r.evaluated]  # type: ignore[attr-defined]
    assert len(done) == 2 and all(r.status == "failed" for r in done)
    assert done[0].result["error"].startswith(error)


def test_signatures_and_objectives_are_checked_before_any_trial(tmp_path: Path) -> None:
    assert call_mode(lambda arch: 0.0) == "arch"
    assert call_mode(lambda model: 0.0) == "model"
    assert call_mode(lambda model, data, scale=1: 0.0) == "model_data"
    with pytest.raises(ConfigError, match=r"^evaluate: .* must take \(model, data\) or \(arch\)"):
        _search(tmp_path, evaluate=lambda a, b, c: 0.0, trials=1)
    with pytest.raises(ConfigError, match=r"^evaluate: expected a function, got int"):
        _search(tmp_path, evaluate=3, trials=1)
    with pytest.raises(ConfigError, match=r"^--objective f1:maximize: a metric of your own needs"):
        _search(tmp_path, objectives=["f1:max"], trials=1)
    with pytest.raises(ConfigError, match=r"objectives.0: must be one of 'accuracy', 'params'"):
        _search(tmp_path, evaluate=lambda arch: 0.0, objectives=["f1"], trials=1)
    with pytest.raises(ConfigError, match=r"'params' is always minimized"):
        _search(tmp_path, evaluate=lambda arch: 0.0, objectives=["params:max"], trials=1)
    assert not (tmp_path / "s.db").exists()


def test_generations_times_population_size_is_the_budget(tmp_path: Path) -> None:
    big = LayerSpace(
        [{"type": "conv", "filters": [4, 6, 8, 10, 12], "kernel_size": [3, 5],
          "norm": ["bn", "gn", "none"]},
         {"type": "dense", "units": [8, 12, 16, 20], "optional": True}],
        input_size=8,
    )  # fmt: skip

    def evaluate(arch: LayerArch) -> float:
        conv, dense = arch.layers
        return conv.get("filters") + conv.get("kernel_size") / 10 - (0 if dense is None else 1)  # type: ignore[union-attr]

    out = _search(tmp_path, space=big, evaluate=evaluate, objectives=["score:max"],
                  generations=3, population_size=4)  # fmt: skip
    assert out.summary is not None and out.summary.n_total == 12
    assert sum(r.evaluated for r in rec.records(out.study)) == 12
    trials = sorted(out.study.trials, key=lambda t: t.number)
    archs = [big.from_params(t.params) for t in trials]
    for k in range(4, len(archs)):  # after the random first generation: mutations only
        assert any(archs[k] in big.neighbors(p) for p in archs[:k]), k
    # resumed with one more generation: the study grows to 4 x 4 evaluated trials
    again = _search(tmp_path, space=big, evaluate=evaluate, objectives=["score:max"],
                    generations=4, population_size=4)  # fmt: skip
    assert again.summary is not None and again.summary.n_total == 16
    assert again.summary.n_evaluated == 4


def test_generations_errors_and_cli_flags() -> None:
    from normnas.config import load_config

    cfg = load_config(None, {"generations": 3, "strategy_options.population_size": 7})
    assert cfg.trials == 21 and cfg.strategy_options == {"population_size": 7}
    assert load_config(None, {"generations": 2}).trials == 20  # evolution's default 10
    with pytest.raises(ConfigError, match=r"only the evolution strategy has generations"):
        load_config(None, {"generations": 3, "strategy": "random"})
    with pytest.raises(ConfigError, match=r"3 x population_size 10 = 30 trials, but trials is 5"):
        load_config(None, {"generations": 3, "trials": 5})


def test_the_classic_nas_example_runs_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the example as `OMP_NUM_THREADS=1 python examples/classic_nas.py --storage ...` runs
    # it, in this process (which has imported torch already); its temporary folder in tmp_path
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    storage = f"sqlite:///{tmp_path / 'classic.db'}"
    monkeypatch.setattr(sys, "argv", ["classic_nas.py", "--storage", storage])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # its evaluate trains on torch's threads: one, as the docstring's
    try:
        runpy.run_path(str(ROOT / "examples" / "classic_nas.py"), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "15 architectures evaluated"
    accuracy = float(lines[-2].rsplit(" ", 1)[1])
    assert accuracy > 0.85  # a real CNN on real digits, trained and tested
    assert (tmp_path / "classic-nas-best.pt").is_file()
