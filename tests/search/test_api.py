import torch

import normnas
from normnas.search import final
from normnas.spaces import MacroSpace


def test_python_api_searches_retrains_and_saves(tmp_path):
    space = MacroSpace(
        stages=[{"widths": [8, 16], "min_blocks": 1, "max_blocks": 1, "stride": 1}],
        norms=["batchnorm", "groupnorm"],
        dropout=[0.0],
    )
    out = normnas.search(
        space=space,
        data="digits",
        strategy="random",
        trials=3,
        epochs=1,
        storage=f"sqlite:///{tmp_path / 'api.db'}",
        study="api",
        seed=1,
    )
    assert out.summary is not None and out.summary.n_total == 3
    assert out.best is not None and out.best.values[0] == max(
        t.value for t in out.study.trials if t.value is not None
    )
    assert 0.0 <= out.test_accuracy <= 1.0 and out.model_path == tmp_path / "api-best.pt"
    model, ckpt = final.load(out.model_path)
    assert ckpt["arch"] == out.best.arch and ckpt["test_accuracy"] == out.test_accuracy
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_a_latency_search_records_how_each_latency_was_measured(tmp_path):
    import os

    space = MacroSpace(
        stages=[{"widths": [8, 16], "min_blocks": 1, "max_blocks": 1, "stride": 1}],
        norms=["batchnorm"],
        dropout=[0.0],
    )
    out = normnas.search(
        space=space,
        data="digits",
        strategy="random",
        objectives=("accuracy", "latency"),
        trials=2,
        epochs=1,
        storage=f"sqlite:///{tmp_path / 'lat.db'}",
        study="lat",
        seed=0,
    )
    trials = [t for t in out.study.trials if t.user_attrs.get("status") == "ok"]
    assert len(trials) == 2
    for t in trials:
        attrs = t.user_attrs
        assert attrs["latency_ms"] == t.values[1] > 0  # the objective is the recorded figure
        assert attrs["latency_cores"] == os.cpu_count() and attrs["latency_load"] >= 0
        assert isinstance(attrs["latency_reliable"], bool)
    final = out.study.user_attrs["final_model"]  # and the final model's, as measured
    assert final["latency_ms"] > 0 and final["latency_threads"] == 1
    assert final["latency_cores"] == os.cpu_count() and final["latency_load"] >= 0
    assert isinstance(final["latency_reliable"], bool)
