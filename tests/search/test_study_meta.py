"""The run config kept in the study: whole through a round trip, every stored attribute within
what optuna-dashboard shows uncut, and studies of earlier versions still read."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import optuna
import pytest

from normnas.config import parse_config
from normnas.search.study import (
    DASHBOARD_MAX_CHARS,
    META_ATTR,
    meta_part,
    open_storage,
    set_study_meta,
    split_for_dashboard,
    study_meta,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _meta() -> dict:
    """A run's meta as a search writes it, made long by a config that needs escaping: quotes,
    backslashes and non-ASCII grow when the dashboard writes a string as JSON."""
    cfg = parse_config({"space": {"name": "macro"}, "data": "digits", "objectives": ["accuracy"]})
    return {
        "config": cfg.model_dump(mode="json"),
        "versions": {"normnas": "0", "torch": "2"},
        "command": 'normnas search --study "ä \\ ö" ' + "--data digits " * 120,
        "changes": [{"forced": ["space: 'a' recorded, 'b' now"] * 20}],
    }


def _stored(study: optuna.Study) -> dict[str, str]:
    """Each `normnas*` attribute as optuna-dashboard shows it (its JSON, before any cut)."""
    return {k: json.dumps(v) for k, v in study.user_attrs.items() if k.split(":")[0] == META_ATTR}


def test_meta_round_trips_in_parts_the_dashboard_shows_whole(tmp_path: Path) -> None:
    meta = _meta()
    assert len(json.dumps(json.dumps(meta))) > 3 * DASHBOARD_MAX_CHARS  # needs 4+ parts
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    set_study_meta(study, meta)
    reopened = optuna.load_study(
        study_name=study.study_name, storage=f"sqlite:///{tmp_path / 's.db'}"
    )
    assert study_meta(reopened) == meta
    shown = _stored(reopened)
    assert len(shown) >= 5  # `normnas` (the count) and its parts
    assert max(len(v) for v in shown.values()) <= DASHBOARD_MAX_CHARS
    parts = [reopened.user_attrs[meta_part(i)] for i in range(len(shown) - 1)]
    assert json.loads("".join(parts)) == meta  # the parts in order are the JSON text


def test_a_shorter_meta_written_later_is_read_without_the_old_parts() -> None:
    study = optuna.create_study()
    set_study_meta(study, _meta())
    set_study_meta(study, {"config": {"objectives": ["accuracy"]}})
    assert study_meta(study) == {"config": {"objectives": ["accuracy"]}}


def test_a_study_of_an_earlier_version_is_read() -> None:
    study = optuna.create_study()
    assert study_meta(study) == {}
    old = {"config": {"space": {"name": "nb201"}}, "command": "normnas search"}
    study.set_user_attr(META_ATTR, old)  # one attribute, as before
    assert study_meta(study) == old


@pytest.mark.parametrize("limit", [8, 10, 64])
def test_split_pieces_fit_the_limit_once_escaped(limit: int) -> None:
    text = 'a"b\\cä' * 40 + '"'
    pieces = split_for_dashboard(text, limit)
    assert "".join(pieces) == text
    assert all(len(json.dumps(p)) <= limit for p in pieces)
    # greedy: a piece ends only where the next character would not fit
    assert all(len(json.dumps(p + n[0])) > limit for p, n in itertools.pairwise(pieces))
