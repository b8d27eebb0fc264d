"""Designed experiments on normalization: `normnas ablate` and its statistics.

Names load lazily so `normnas --help` does not import torch or Optuna.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AblateConfig": "normnas.ablate.config",
    "load_ablate_config": "normnas.ablate.config",
    "Design": "normnas.ablate.design",
    "choose_design": "normnas.ablate.design",
    "full_factorial": "normnas.ablate.design",
    "one_at_a_time": "normnas.ablate.design",
    "pairs_design": "normnas.ablate.design",
    "FACTOR_NAMES": "normnas.ablate.factors",
    "Factor": "normnas.ablate.factors",
    "make_factor": "normnas.ablate.factors",
    "parse_factors": "normnas.ablate.factors",
    "AblationOutcome": "normnas.ablate.run",
    "run_ablation": "normnas.ablate.run",
    "AblationStats": "normnas.ablate.stats",
    "Interval": "normnas.ablate.stats",
    "Obs": "normnas.ablate.stats",
    "analyse": "normnas.ablate.stats",
    "paired": "normnas.ablate.stats",
    "t_interval": "normnas.ablate.stats",
    "sentences": "normnas.ablate.summary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'normnas.ablate' has no attribute {name!r}")
