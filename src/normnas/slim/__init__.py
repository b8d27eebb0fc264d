"""Network slimming of a found network: BN-scale (or L1, or random) channel pruning.

`normnas.slim(study=...)` (this package is callable) runs `normnas.slim.run.slim`; the
pruning itself is `prune_channels`, the sparsity training `bn_sparsity`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from normnas.slim.prune import CRITERIA, PrunePlan, SlimError, check_criterion, prune_channels

__all__ = ["CRITERIA", "PrunePlan", "SlimError", "check_criterion", "prune_channels", "slim"]


def slim(*args: Any, **kwargs: Any) -> Any:
    """`normnas.slim.run.slim`: see there."""
    from normnas.slim.run import slim as run

    return run(*args, **kwargs)


class _CallableModule(types.ModuleType):
    """`normnas.slim(...)` is the Python API (normnas.slim.run.slim) and this package at once."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return slim(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
