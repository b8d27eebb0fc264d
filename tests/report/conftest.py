"""Two real studies for the report tests: a two-objective digits search with its final
model, and an NB201 search answered by the packaged NAS-Bench-201 table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

# two stages of up to two blocks: depth 1 leaves a slot inactive; trained 1 epoch on digits
SPACE = {
    "stages": [
        {"widths": [8, 16], "min_blocks": 1, "max_blocks": 2, "stride": 1},
        {"widths": [16, 24], "min_blocks": 1, "max_blocks": 2, "stride": 2},
    ],
    "dropout": [0.0],
}


@dataclass
class MadeStudy:
    name: str
    url: str
    folder: Path


@pytest.fixture(scope="session")
def digits_study(tmp_path_factory: pytest.TempPathFactory) -> MadeStudy:
    """Eight random macro trials on digits, objectives accuracy and params, final model."""
    import normnas

    folder = tmp_path_factory.mktemp("digits-study")
    url = f"sqlite:///{folder / 'study.db'}"
    normnas.search(
        space="macro",
        space_options=SPACE,
        data="digits",
        strategy="random",
        objectives=("accuracy", "params"),
        trials=8,
        epochs=1,
        train={"batch_size": 64},
        storage=url,
        study="two",
        seed=3,
    )
    return MadeStudy("two", url, folder)


@pytest.fixture(scope="session")
def nb201_study(tmp_path_factory: pytest.TempPathFactory) -> MadeStudy:
    """Twenty-five evolution trials over NB201 cells, looked up in the packaged table."""
    import optuna

    from normnas.bench.table import NB201Table, TableEvaluator
    from normnas.search.runner import Budget, run_search
    from normnas.search.strategies import make_sampler
    from normnas.search.study import open_storage
    from normnas.spaces import NB201Space

    folder = tmp_path_factory.mktemp("nb201-study")
    url = f"sqlite:///{folder / 'nb.db'}"
    space = NB201Space()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="nb", storage=open_storage(url), direction="maximize",
        sampler=make_sampler("evolution", space, seed=0),
    )  # fmt: skip
    study.set_metric_names(["accuracy"])
    run_search(study, space, TableEvaluator(NB201Table.load(), space), Budget(trials=25))
    return MadeStudy("nb", url, folder)
