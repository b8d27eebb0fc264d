"""The search: one runner (ask → evaluate → tell under a budget), strategies by name."""

from normnas.search.result import Evaluator, ReportFn, TrialResult
from normnas.search.runner import Budget, Constraints, SearchSummary, TrialEvent, run_search
from normnas.search.strategies import PRUNERS, STRATEGIES, make_pruner, make_sampler

__all__ = [
    "PRUNERS",
    "STRATEGIES",
    "Budget",
    "Constraints",
    "Evaluator",
    "ReportFn",
    "SearchSummary",
    "TrialEvent",
    "TrialResult",
    "make_pruner",
    "make_sampler",
    "run_search",
]
