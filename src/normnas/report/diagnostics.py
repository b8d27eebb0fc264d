"""The final model's diagnostics for a report: recorded in the study by the search
(`search.final_diagnostics`), or measured now from a saved model for older studies."""

from __future__ import annotations

import contextlib
from typing import Any

import optuna

from normnas.search.final_diagnostics import FINAL_MODEL_ATTR, measure_final_model


def final_model_of(study: optuna.Study, url: str) -> dict[str, Any] | None:
    """The recorded diagnostics; measured now (and stored when the storage allows) when the
    study has a saved best model but no record of it; None without a saved model."""
    recorded = study.user_attrs.get(FINAL_MODEL_ATTR)
    if isinstance(recorded, dict):
        return recorded
    from normnas.search.final import find_checkpoint
    from normnas.search.study import storage_dir

    path = find_checkpoint(study.study_name, study.user_attrs.get("model_path"), storage_dir(url))
    if path is None:
        return None
    diag = measure_final_model(path)
    with contextlib.suppress(Exception):  # read-only storage: the report shows it anyway
        study.set_user_attr(FINAL_MODEL_ATTR, diag)
    return diag
