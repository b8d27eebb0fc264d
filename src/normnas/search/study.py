"""Storages, studies and resume: open or create a study, recover a dead run's trials."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from normnas.search import records as rec

DEFAULT_SQLITE = "sqlite:///normnas.db"
DEFAULT_JOURNAL = "journal:normnas.journal"
META_ATTR = "normnas"  # study user attribute: the run's config, space spec, versions


def default_storage(workers: int = 1) -> str:
    """SQLite file in the working directory; a journal file beside it for several workers."""
    return DEFAULT_SQLITE if workers <= 1 else DEFAULT_JOURNAL


def open_storage(url: str) -> str | BaseStorage:
    """`journal:PATH` → a JournalStorage on a lock-protected file; other URLs go to Optuna.

    SQLite URLs get a generous lock timeout so parallel readers (status) do not fail.
    """
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = url.removeprefix("journal:")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    if url.startswith("sqlite:"):
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return url


def storage_dir(url: str) -> Path:
    """The folder of a file storage (where the best model goes), else the working dir."""
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:")).resolve().parent
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).resolve().parent
    return Path.cwd()


def open_study(
    name: str,
    storage: str | BaseStorage,
    directions: Sequence[str],
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create the study, or load it when it exists (its directions must match)."""
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=list(directions),
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    have = [d.name.lower() for d in study.directions]
    if have != list(directions):
        raise ValueError(
            f"study {name!r} exists with directions {have}, not {list(directions)}; "
            "use another --study name"
        )
    return study


def load_study(name: str, storage: str | BaseStorage) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise ValueError(
            f"no study {name!r} in the storage; studies: {', '.join(names) or 'none'}"
        ) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted(study: optuna.Study, force: bool = False) -> list[int]:
    """Mark trials left RUNNING by a dead run as FAIL (`interrupted`) and re-enqueue them.

    A RUNNING trial is taken as dead when it has no `worker` attribute (single-host
    storages: the caller is the only run, e.g. a restart after kill -9), or its worker ran
    on this host under a pid that is no longer alive (or is this process). Trials of other
    hosts are left alone unless `force`. Returns the numbers of the recovered trials.
    """
    host, me = socket.gethostname(), os.getpid()
    recovered = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get(rec.ATTR_WORKER)
        if worker is not None and not force:
            w_host, _, w_pid = str(worker).rpartition(":")
            if w_host != host or (int(w_pid) != me and _alive(int(w_pid))):
                continue
        study._storage.set_trial_user_attr(t._trial_id, rec.ATTR_RESULT, {"status": "interrupted"})
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if t.params and set(t.distributions) == set(t.params):
            study.enqueue_trial(dict(t.params), user_attrs={rec.ATTR_RETRY: t.number})
        recovered.append(t.number)
    return recovered


def versions() -> dict[str, str]:
    import numpy
    import torch

    from normnas import __version__

    return {
        "normnas": __version__,
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "numpy": numpy.__version__,
    }


def study_meta(study: optuna.Study) -> dict[str, Any]:
    return dict(study.user_attrs.get(META_ATTR) or {})
