"""The judges' registry: one factory per `--evaluator` name, and `make_evaluator` using it."""

from __future__ import annotations

import pytest

from normnas.config import parse_config
from normnas.errors import ConfigError
from normnas.judges import JUDGES, make_evaluator, register_judge, supernet_path
from normnas.search.evaluators import TrainEvaluator
from normnas.search.runner import Constraints
from normnas.search.setup import Parts, trial_checkpoints
from normnas.search.study import storage_dir
from normnas.spaces import MacroSpace


def _parts(cfg) -> Parts:
    from normnas.assemble import train_config

    return Parts(MacroSpace(), None, None, Constraints(), train_config(cfg))


def test_every_evaluator_name_of_the_config_has_a_judge():
    assert set(JUDGES) == {"train", "supernet", "bn-indicator", "proxy"}


def test_the_train_judge_keeps_its_trial_checkpoints_beside_the_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    cfg = parse_config({"study": "s1"})
    judge = make_evaluator(cfg, _parts(cfg), url)
    assert isinstance(judge, TrainEvaluator)
    assert judge.checkpoints.folder == trial_checkpoints(cfg.study_name, url).folder
    assert judge.checkpoints.folder.parent == storage_dir(url)
    assert supernet_path(cfg, url).parent == storage_dir(url)


def test_a_registered_judge_is_made_by_name_and_an_unknown_one_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    cfg = parse_config({})
    made = []

    @register_judge("test-constant")
    def constant(cfg, parts, url):
        made.append(url)
        return "judge"

    try:
        with pytest.raises(ValueError, match="registered already"):
            register_judge("test-constant")(constant)
        mine = cfg.model_copy(update={"evaluator": "test-constant"})
        assert make_evaluator(mine, _parts(cfg), url) == "judge" and made == [url]
    finally:
        del JUDGES["test-constant"]
    unknown = cfg.model_copy(update={"evaluator": "test-constant"})
    with pytest.raises(ConfigError, match="--evaluator: expected one of train"):
        make_evaluator(unknown, _parts(cfg), url)
