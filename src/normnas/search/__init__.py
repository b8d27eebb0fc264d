"""The search: one runner (ask → evaluate → tell under a budget), strategies by name.

Names load lazily so `normnas --help` does not import Optuna.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {
    "Evaluator": "normnas.search.result",
    "ReportFn": "normnas.search.result",
    "TrialResult": "normnas.search.result",
    "Budget": "normnas.search.budget",
    "Constraints": "normnas.search.runner",
    "SearchSummary": "normnas.search.runner",
    "TrialEvent": "normnas.search.events",
    "run_search": "normnas.search.runner",
    "PRUNERS": "normnas.search.strategies",
    "STRATEGIES": "normnas.search.strategies",
    "make_pruner": "normnas.search.strategies",
    "make_sampler": "normnas.search.strategies",
    "TrainEvaluator": "normnas.search.evaluators",
    "SearchOutcome": "normnas.session",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'normnas.search' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """`normnas.search(...)` is the Python API (normnas.api.search) and this package at once."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from normnas.api import search

        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
