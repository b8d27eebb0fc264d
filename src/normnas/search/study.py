"""Storages, studies and resume: open or create a study, recover a dead run's trials."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from normnas.errors import StorageError, StudyMismatchError, one_line
from normnas.search import records as rec

DEFAULT_SQLITE = "sqlite:///normnas.db"
DEFAULT_JOURNAL = "journal:normnas.journal"
META_ATTR = "normnas"  # study user attribute: the run's config, space spec, versions
ACCEPTED = "sqlite:///FILE, journal:FILE, postgresql://…, mysql://…"
_SERVERS = ("postgresql", "mysql", "mariadb")  # SQLAlchemy dialects, each with an optional +driver
_MOVE = "move it away or pass --storage to another file"
_DRIVERS = {
    "postgresql": "pip install psycopg2-binary",
    "mysql": "pip install pymysql and write mysql+pymysql://…",
    "mariadb": "pip install pymysql and write mariadb+pymysql://…",
}


def default_storage(workers: int = 1) -> str:
    """SQLite file in the working directory; a journal file beside it for several workers."""
    return DEFAULT_SQLITE if workers <= 1 else DEFAULT_JOURNAL


def open_storage(url: str, write: bool = True) -> BaseStorage:
    """The storage of `url`, checked now so that its faults surface here, not mid-search.

    `journal:PATH` → a JournalStorage on a lock-protected file; `sqlite:///FILE` and server
    URLs → an RDBStorage (SQLite with a generous lock timeout so parallel readers do not
    fail). With `write` (a search) a missing folder is created and the file and its folder
    must be writable; without (status, best) the storage must exist, and a read-only one is
    fine. Every fault is a one-line StorageError naming the file or URL.
    """
    kind = _url_kind(url)
    if kind == "journal":
        return _open_journal(Path(url.removeprefix("journal:")).expanduser(), write)
    path = _sqlite_file(url) if kind == "sqlite" else None
    if path is not None:
        _check_sqlite_file(path, write)
    name = str(path) if path is not None else _redacted(url)
    import sqlalchemy.exc

    kwargs = {"connect_args": {"timeout": 60}} if kind == "sqlite" else {}
    with storage_errors(name):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except ImportError:  # the dialect's driver package is missing
            raise StorageError(
                f"{name}: the {kind} driver is not installed; {_DRIVERS.get(kind, 'install it')}"
            ) from None
        except sqlalchemy.exc.ArgumentError as e:
            raise StorageError(f"storage URL {name!r}: {e}; accepted forms: {ACCEPTED}") from None
        except RuntimeError as e:
            if "table schema" not in str(e):  # a study written by another Optuna version
                raise
            raise StorageError(f"{name}: {one_line(e)}") from None
        storage.get_all_studies()  # a cheap read: a damaged file fails here, not mid-search
    return storage


def _url_kind(url: str) -> str:
    """'journal', 'sqlite' or a server dialect; StorageError for anything else."""
    if url.startswith("journal:"):
        if not url.removeprefix("journal:").strip():
            raise StorageError(f"storage URL {url!r}: no file after 'journal:' (journal:FILE)")
        return "journal"
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    scheme = match.group(1).split("+")[0].lower() if match else ""
    if scheme == "sqlite":
        if url.startswith("sqlite:///") or url == "sqlite://":
            return "sqlite"
        hint = f"; did you mean 'sqlite:///{url.removeprefix('sqlite://')}'"
        raise StorageError(f"storage URL {url!r}: a SQLite URL has three slashes{hint}")
    if scheme in _SERVERS:
        return scheme
    if match:
        hint = "; did you mean 'postgresql://'" if scheme == "postgres" else ""
        raise StorageError(
            f"storage URL {_redacted(url)!r}: unknown scheme {scheme!r}{hint}; "
            f"accepted forms: {ACCEPTED}"
        )
    raise StorageError(
        f"storage URL {url!r}: not a URL{_path_hint(url)}; accepted forms: {ACCEPTED}"
    )


def _path_hint(url: str) -> str:
    """A suggestion for a plain path (or 'sqlite:FILE') given where a URL was expected."""
    path = url.removeprefix("sqlite:").removeprefix("journal:").strip()
    if not path:
        return ""
    if url.startswith("sqlite:") or path.endswith((".db", ".sqlite", ".sqlite3")):
        return f"; did you mean 'sqlite:///{path}'"
    if path.endswith((".journal", ".log")):
        return f"; did you mean 'journal:{path}'"
    return f"; for a file use 'sqlite:///{path}' or 'journal:{path}'"


def _redacted(url: str) -> str:
    """`url` with its password hidden (it ends up in messages and logs)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: nothing recognisable as a password to hide
        return url


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory database."""
    path = url.removeprefix("sqlite://").removeprefix("/").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path).expanduser()


def _reason(e: BaseException) -> str:
    """An OS error's own words ('Permission denied'), else the type and first line."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return f"{type(e).__name__}: {one_line(e)}"


def _writable(path: Path) -> bool:
    # effective ids: what the open() calls of SQLite and the journal will be allowed to do
    return os.access(path, os.W_OK, effective_ids=os.access in os.supports_effective_ids)


def _make_folder(path: Path) -> Path:
    """The folder of `path`, created when missing (as a search's outputs are)."""
    folder = path.absolute().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        # name the culprit: mkdir's "File exists" hides which part of the path is a file
        file = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        why = f"{file} is a file" if file is not None else _reason(e)
        raise StorageError(f"{path}: cannot create its folder {folder} ({why})") from None
    return folder


def _check_sqlite_file(path: Path, write: bool) -> None:
    """StorageError for a SQLite file that cannot be used as asked (before SQLite says less)."""
    if path.is_dir():
        raise StorageError(f"{path}: a folder, not a SQLite database file; {_MOVE}")
    if not write:
        if not path.exists():
            raise StorageError(f"{path}: no such storage file; pass --storage sqlite:///FILE")
        return
    folder = _make_folder(path)
    if path.exists() and not _writable(path):
        raise StorageError(
            f"{path}: the database is read-only; make it writable (chmod u+w {path}) "
            "or pass --storage to another file"
        )
    if not _writable(folder):
        # SQLite creates the file, and a journal beside it at every write, in that folder
        what = "cannot write the database" if path.exists() else "cannot create the database"
        raise StorageError(
            f"{path}: {what}: its folder {folder} is read-only (SQLite writes a journal file "
            "beside the database); work in a writable folder or pass --storage "
            "sqlite:///WRITABLE/normnas.db"
        )


def _open_journal(path: Path, write: bool) -> BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if path.is_dir():
        raise StorageError(f"{path}: a folder, not a journal file; {_MOVE}")
    if write:
        folder = _make_folder(path)
        if not _writable(folder):  # the lock file and a new journal are made in the folder
            raise StorageError(
                f"{path}: its folder {folder} is read-only (the journal keeps a lock file "
                "beside it); work in a writable folder or pass --storage to another file"
            )
        if path.exists() and not _writable(path):
            raise StorageError(f"{path}: the journal file is read-only; pass --storage elsewhere")
    elif not path.exists():
        raise StorageError(f"{path}: no such storage file; pass --storage journal:FILE")
    # checked here because Optuna takes a bad last line for a cut-off write and ignores it
    bad = _bad_journal_line(path, first_only=True) if path.exists() else ""
    if bad:
        raise StorageError(f"{path}: not an Optuna journal file ({bad}); {_MOVE}")
    with storage_errors(str(path)):
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except (ValueError, KeyError, TypeError):  # replaying a log that is not one
            bad = _bad_journal_line(path)
            if not bad:
                raise  # every line is a log entry: the error is ours, not the file's
            raise StorageError(f"{path}: a damaged Optuna journal file ({bad}); {_MOVE}") from None


def _bad_journal_line(path: Path, first_only: bool = False) -> str:
    """'line N: why' for the first line that is not an Optuna log entry, or ''."""
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                try:
                    entry = json.loads(line)
                except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
                    return f"line {number}: {_reason(e)}"
                if not isinstance(entry, dict) or "op_code" not in entry:
                    return f"line {number}: JSON but not a log entry"
                if first_only:
                    break
    except OSError as e:
        return f"cannot read it: {_reason(e)}"
    return ""


_UNUSABLE = ("file is not a database", "malformed", "not a database")


@contextlib.contextmanager
def storage_errors(name: str) -> Iterator[None]:
    """Turn what the storage layer raises for a bad file or server into one StorageError.

    Database errors (SQLAlchemy's, Optuna's StorageInternalError around them), undecodable
    journal text and file-system errors become a StorageError naming `name`; SQL
    programming errors and anything else (bugs) pass through untouched.
    """
    import sqlalchemy.exc

    try:
        yield
    except (sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.IntegrityError):
        raise
    except (sqlalchemy.exc.DBAPIError, optuna.exceptions.StorageInternalError) as e:
        raise StorageError(_database_problem(name, e)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StorageError(f"{name}: not a readable journal ({_reason(e)}); {_MOVE}") from None
    except OSError as e:
        raise StorageError(f"{name}: {_reason(e)}") from None


def _database_problem(name: str, error: BaseException) -> str:
    """The one-line message of a database error, from the driver's own words."""
    cause = error.__cause__ if isinstance(error, optuna.exceptions.StorageInternalError) else None
    inner = getattr(cause or error, "orig", None) or cause or error
    detail = one_line(inner)
    text = detail.lower()
    if any(s in text for s in _UNUSABLE):
        return f"{name}: not a readable SQLite database ({detail}); {_MOVE}"
    if "readonly database" in text or "read-only" in text:
        return (
            f"{name}: the database is read-only ({detail}); make it writable "
            "or pass --storage to another file"
        )
    if "unable to open database file" in text:
        return (
            f"{name}: SQLite cannot open the file or write its journal beside it ({detail}); "
            "check that its folder exists and is writable, or pass --storage to another file"
        )
    if "locked" in text:
        return f"{name}: the database stayed locked by another process ({detail}); retry later"
    return f"{name}: the storage failed ({detail}); check the URL, the server and the file"


def storage_dir(url: str) -> Path:
    """The folder of a file storage (where the best model goes), else the working dir."""
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:")).expanduser().resolve().parent
    if url.startswith("sqlite:///"):
        path = _sqlite_file(url)
        if path is not None:
            return path.resolve().parent
    return Path.cwd()


def open_study(
    name: str,
    storage: str | BaseStorage,
    directions: Sequence[str],
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create the study, or load it when it exists (its directions must match).

    A URL is opened with `open_storage` (for writing); storage faults are StorageErrors.
    """
    if isinstance(storage, str):
        storage = open_storage(storage)
    with storage_errors(storage_name(storage)):
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
        raise StudyMismatchError(
            f"study {name!r} exists with directions {have}, not {list(directions)}; "
            "use another --study name"
        )
    return study


def load_study(name: str, storage: str | BaseStorage) -> optuna.Study:
    """An existing study; StorageError listing the storage's studies when there is none.

    A URL is opened with `open_storage(url, write=False)` (reading needs no write access).
    """
    if isinstance(storage, str):
        storage = open_storage(storage, write=False)
    where = storage_name(storage)
    with storage_errors(where):
        try:
            return optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    raise StorageError(f"no study {name!r} in {where}; studies: {shown or 'none'}")


def storage_name(storage: str | BaseStorage) -> str:
    """The file (or password-free URL) of a storage, for messages."""
    if isinstance(storage, str):
        return _redacted(storage)
    # a JournalStorage's backend holds the file; Optuna's cache wraps an RDBStorage
    inner = getattr(storage, "_backend", storage)
    path = getattr(inner, "_file_path", None)
    if path is not None:
        return str(path)
    url = getattr(inner, "url", None)
    if isinstance(url, str):
        file = _sqlite_file(url) if url.startswith("sqlite:///") else None
        return str(file) if file is not None else _redacted(url)
    return type(storage).__name__


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
