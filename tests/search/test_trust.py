"""Results to trust on a busy machine: the best trials' own weights are kept and handed back
when the final retrain fails them; `time` holds beside busy processes (custom functions
too); training takes only the cores other processes leave; the API logs and warns."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from tests.support import invoke

import normnas
from normnas.search import final
from normnas.search.checkpoints import TrialCheckpoints
from normnas.search.evaluators import TrainEvaluator
from normnas.spaces import MacroSpace
from normnas.train import TrainConfig, evaluate
from normnas.train.threads import cpu_count, free_threads

SPACE = MacroSpace(
    stages=[
        {"widths": [8, 16], "min_blocks": 1, "max_blocks": 1, "stride": 1},
        {"widths": [16, 24], "min_blocks": 1, "max_blocks": 1, "stride": 2},
    ],
    norms=["batchnorm", "groupnorm"],
    dropout=[0.0],
)


@pytest.fixture(scope="module")
def digits() -> Any:
    return normnas.data.load("digits")


def _busy_loops(n: int = 2) -> list[subprocess.Popen[bytes]]:
    """`n` processes spinning on a core each, as a loaded machine has."""
    code = "import time\nend = time.time() + 600\nwhile time.time() < end: pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


@pytest.fixture
def busy() -> Iterator[None]:
    procs = _busy_loops(2)
    time.sleep(0.3)  # let them take their cores
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_the_best_trials_weights_are_kept_and_score_what_the_trial_recorded(
    tmp_path: Path,
) -> None:
    out = normnas.search(
        space=SPACE, data="digits", strategy="random", trials=5, epochs=1, final=False,
        storage=f"sqlite:///{tmp_path / 's.db'}", study="keep", seed=3, verbose=False,
    )  # fmt: skip
    kept = TrialCheckpoints(tmp_path / "keep.trials")
    files = sorted((tmp_path / "keep.trials").glob("*.pt"))
    assert 1 <= len(files) <= 3  # the three best of five, never more
    ok = [t for t in out.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    top = sorted(ok, key=lambda t: -t.value)[: len(files)]
    data = out.data
    for t in top:
        path = kept.find(t.user_attrs["key"])
        assert path is not None, f"trial #{t.number} ({t.value}) was not kept"
        model, ckpt = final.load(path)
        # an independent check: the kept network, scored again, gives the trial's accuracy
        assert evaluate(model, data.valid).accuracy == pytest.approx(t.value, abs=1e-9)
        assert ckpt["valid_accuracy"] == pytest.approx(t.value)
        assert ckpt["arch"] == t.user_attrs["arch"]


def test_a_cut_retrain_below_the_trial_hands_back_the_trials_network(
    tmp_path: Path, digits: Any
) -> None:
    arch = SPACE.sample(np.random.default_rng(0))
    keep = TrialCheckpoints(tmp_path / "k.trials")
    tc = TrainConfig(epochs=4, batch_size=64, lr=0.05)
    result = TrainEvaluator(SPACE, digits, tc, checkpoints=keep).evaluate(arch)
    assert result.status == "ok" and result.accuracy > 0.5
    trial_ck = keep.find(SPACE.to_str(SPACE.canonical(arch)))
    assert trial_ck is not None
    # a retrain cut after its first steps, as --time does on a loaded machine
    cut = dataclasses.replace(tc, max_time_s=1e-4)
    retrained = final.retrain(SPACE, arch, digits, cut, "k", 7)
    assert retrained.checkpoint["final_status"] == "timeout"
    chosen, note = final.choose_final(retrained, digits, trial_ck, 7)
    assert note is not None and "cut by --time after 1 of 4 epochs" in note
    assert "trial #7's own network" in note
    assert chosen.checkpoint["source"] == "trial" and chosen.checkpoint["note"] == note
    model, _ = final.load(trial_ck)
    assert chosen.test_accuracy == pytest.approx(evaluate(model, digits.test).accuracy)
    assert chosen.test_accuracy > retrained.test_accuracy
    # the saved file is an ordinary checkpoint, and export says what it is
    path = final.save(chosen, tmp_path / "k-best.pt")
    assert final.load(path)[1]["trial"] == 7
    assert final.checkpoint_note(path) == note


def test_a_retrain_that_did_well_is_kept_without_a_word(tmp_path: Path, digits: Any) -> None:
    arch = SPACE.sample(np.random.default_rng(1))
    keep = TrialCheckpoints(tmp_path / "k.trials")
    tc = TrainConfig(epochs=3, batch_size=64)
    TrainEvaluator(SPACE, digits, tc, checkpoints=keep).evaluate(arch)
    retrained = final.retrain(SPACE, arch, digits, tc, "k", 0)
    # it trained on the valid split as well: its valid figure is at least the trial's here
    chosen, note = final.choose_final(retrained, digits, keep.find(SPACE.to_str(arch)), 0)
    assert chosen is retrained and note is None


def test_export_of_a_trials_network_prints_the_warning(tmp_path: Path, digits: Any) -> None:
    out = normnas.search(
        space="macro", space_options={"stages": [{"widths": [8], "min_blocks": 1,
        "max_blocks": 1, "stride": 1}], "norms": ["batchnorm"], "dropout": [0.0]},
        data="digits", strategy="random", trials=2, epochs=1, final=False,
        storage=f"sqlite:///{tmp_path / 's.db'}", study="e", verbose=False,
    )  # fmt: skip
    best = out.best
    assert best is not None
    kept = TrialCheckpoints(tmp_path / "e.trials").find(best.result["key"])
    assert kept is not None
    fm, note = final.from_trial(kept, out.data, best.number, "e", "no time was left")
    final.save(fm, tmp_path / "e-best.pt")
    got = invoke(["export", "--study", "e", "--storage", f"sqlite:///{tmp_path / 's.db'}",
                  "--out", str(tmp_path / "m.pt")], tmp_path)  # fmt: skip
    assert got.exit_code == 0, got.output
    assert f"warning: {note}" in got.output


def test_time_holds_beside_two_busy_loops(tmp_path: Path, busy: None) -> None:
    budget = 20.0
    t0 = time.monotonic()
    out = normnas.search(
        space=SPACE, data="digits", strategy="evolution", time=budget, epochs=5,
        storage=f"sqlite:///{tmp_path / 's.db'}", study="t", verbose=False,
    )  # fmt: skip
    wall = time.monotonic() - t0
    epochs = [
        e for t in out.study.trials for e in [t.user_attrs.get("x.epochs")] if e is not None
    ]
    assert out.summary is not None and out.summary.n_evaluated >= 2, out.summary
    assert epochs, "no trial recorded its epochs"
    # the promise: the budget plus 10%, or one epoch of the running trial when that is more
    # (on a machine loaded beyond these two loops an epoch may be)
    epoch_s = max(
        float(t.user_attrs.get("cost_s", 0)) / max(int(t.user_attrs.get("x.epochs", 1)), 1)
        for t in out.study.trials
    )
    assert wall <= budget + max(0.1 * budget, epoch_s), f"{wall:.1f}s on a {budget:g}s budget"
    assert out.model_path is not None and out.test_accuracy is not None


def test_a_custom_function_that_overruns_is_stopped_and_recorded_timeout(
    tmp_path: Path,
) -> None:
    def slow(arch: Any) -> float:
        time.sleep(30)
        return 1.0

    t0 = time.monotonic()
    with pytest.raises(normnas.errors.SearchFailedError) as info:
        normnas.search(
            space=SPACE, data="digits", evaluate=slow, time="4s", final=False,
            storage=f"sqlite:///{tmp_path / 's.db'}", study="slow", verbose=False,
        )  # fmt: skip
    wall = time.monotonic() - t0
    assert wall <= 4.4, f"{wall:.1f}s on a 4s budget"
    study = info.value.outcome.study  # type: ignore[attr-defined]
    statuses = [t.user_attrs.get("status") for t in study.trials]
    assert statuses and set(statuses) == {"timeout"}, statuses
    assert "ran past" in study.trials[0].user_attrs["error"]


def test_training_takes_only_the_cores_other_processes_leave(busy: None) -> None:
    # two spinning processes hold two cores: a 2-core machine has one thread left to use
    assert free_threads() <= max(1, cpu_count() - 1)


def test_fit_uses_the_free_cores_and_restores_the_setting(digits: Any, busy: None) -> None:
    from normnas.train import fit

    seen: list[int] = []
    before = torch.get_num_threads()
    net = SPACE.build(SPACE.sample(np.random.default_rng(0)), 10, 1)
    def record(_: Any) -> None:
        seen.append(torch.get_num_threads())

    fit(net, digits, TrainConfig(epochs=1), callback=record)
    assert seen and seen[0] <= max(1, cpu_count() - 1)
    assert torch.get_num_threads() == before
    seen.clear()
    fit(net, digits, TrainConfig(epochs=1, threads=1), callback=record)
    assert seen == [1]


def test_the_api_logs_each_trial_and_is_quiet_when_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options: dict[str, Any] = {
        "space": SPACE, "data": "digits", "strategy": "random", "trials": 2, "epochs": 1,
        "final": False,
    }  # fmt: skip
    with caplog.at_level(logging.INFO, logger="normnas"):
        normnas.search(**options, storage=f"sqlite:///{tmp_path / 'a.db'}", study="a")
    lines = [r.getMessage() for r in caplog.records if r.name == "normnas"]
    trial_lines = [line for line in lines if line.startswith("trial ")]
    assert len(trial_lines) == 2 and "accuracy" in trial_lines[0], lines
    assert any(line.startswith("best #") for line in lines)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="normnas"):
        normnas.search(
            **options, storage=f"sqlite:///{tmp_path / 'b.db'}", study="b", verbose=False
        )
    assert not [r for r in caplog.records if r.name == "normnas"]


def test_custom_objectives_are_named_without_their_direction(tmp_path: Path) -> None:
    out = normnas.search(
        space=SPACE, data="digits", evaluate=lambda arch: {"f1": 0.5, "ms": 2.0},
        objectives=["f1:maximize", "ms:minimize"], trials=2, final=False,
        storage=f"sqlite:///{tmp_path / 's.db'}", study="m", verbose=False,
    )  # fmt: skip
    assert out.study.metric_names == ["f1", "ms"]


def test_a_final_note_is_a_python_warning(tmp_path: Path) -> None:
    from normnas.api import FinalModelWarning, _speak

    outcome = normnas.session.SearchOutcome(
        study=None, summary=None, best=None, front=[], test_accuracy=None,  # type: ignore[arg-type]
        model_path=None, storage="", final_note="the final retrain was cut",
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _speak(outcome, verbose=False)
    assert [str(w.message) for w in caught if w.category is FinalModelWarning] == [
        "the final retrain was cut"
    ]


def test_latency_measured_for_a_constraint_is_recorded_on_every_trial(tmp_path: Path) -> None:
    # the proxy judge measures no latency itself: the constraint check's figure is kept
    out = normnas.search(
        space=SPACE, data="digits", evaluator="proxy", proxies="synflow", trials=3,
        max_latency_ms=1e6, final=False, storage=f"sqlite:///{tmp_path / 's.db'}",
        study="lat", verbose=False,
    )  # fmt: skip
    done = [t for t in out.study.trials if t.user_attrs.get("status") == "ok"]
    assert len(done) == 3
    assert all(t.user_attrs.get("latency_ms", 0) > 0 for t in done)
    assert all("latency_reliable" in t.user_attrs for t in done)
