"""Judges: the registry mapping `--evaluator` names to evaluators, and the proxy warm-up.

Above `search/`, `oneshot/`, `proxies/` and `bench/` (it assembles their evaluators), below
the run (`normnas.assemble`, `normnas.session`) and the executors that ask for a judge.
"""

from normnas.judges.registry import (
    JUDGES,
    JudgeFactory,
    make_evaluator,
    register_judge,
    supernet_path,
)
from normnas.judges.warmup import warm_up

__all__ = ["JUDGES", "JudgeFactory", "make_evaluator", "register_judge", "supernet_path", "warm_up"]
