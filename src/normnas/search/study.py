"""Storages, studies and resume: open or create a study, recover a dead run's trials."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from normnas.errors import StorageError, StudyMismatchError, UserError, one_line
from normnas.search import records as rec

DEFAULT_SQLITE = "sqlite:///normnas.db"
DEFAULT_JOURNAL = "journal:normnas.journal"
META_ATTR = "normnas"  # study user attribute: the run's config, space spec, versions
# optuna-dashboard shows an attribute's json.dumps cut at this many characters
DASHBOARD_MAX_CHARS = 1024
_PARTS = "json_parts"  # META_ATTR's one key when the run config is stored in parts
ACCEPTED = "sqlite:///FILE, journal:FILE, postgresql://…, mysql://…"
_SERVERS = ("postgresql", "mysql", "mariadb")  # SQLAlchemy dialects, each with an optional +driver
_MOVE = "move it away or pass --storage to another file"
_DRIVERS = {
    "postgresql": "pip install 'normnas[postgres]' (psycopg2-binary)",
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
    beat = _server_heartbeat() if kind in _SERVERS else {}
    if kind == "postgresql":
        url = _postgres_driver(url)
    make = _SQLiteStorage if kind == "sqlite" and write else optuna.storages.RDBStorage
    with storage_errors(name), _no_experimental_warning():
        try:
            try:
                storage = make(url, engine_kwargs=kwargs, **beat)
            except sqlalchemy.exc.IntegrityError:  # another process created the tables just now
                storage = make(url, engine_kwargs=kwargs, **beat)
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


class _SQLiteStorage(optuna.storages.RDBStorage):
    """An RDBStorage on a SQLite file whose trial-state changes are atomic across processes.

    Python's sqlite3 begins a transaction only at the first write, so Optuna's pop of a
    queued trial (read WAITING, write RUNNING) was not atomic: two processes asking at once
    both read WAITING and both ran the trial (measured: 4-6 of 200 queued trials popped
    twice by two processes), and two tells of one trial could both pass the "not finished"
    check. A state change here begins with BEGIN IMMEDIATE (the write lock before the read),
    so the second process reads what the first wrote. Every other transaction is left as
    sqlite3 makes it (reads outside a transaction, BEGIN at the first write): begun at the
    first read instead, a read-then-write transaction beside another writer deadlocks and
    SQLite fails it at once ("database is locked"), as two concurrent searches showed. Only
    for files opened to write (a read-only `status` could not take the lock).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hook_transactions()

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)  # a new engine: hook it too
        self._hook_transactions()

    def _hook_transactions(self) -> None:
        from sqlalchemy import event

        @event.listens_for(self.engine, "begin")
        def _begin(connection: Any) -> None:
            if getattr(_IMMEDIATE, "on", False):  # sqlite3 sees it and adds no BEGIN of its own
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        file = _sqlite_file(self.url)
        name = str(file) if file is not None else storage_name(self.url)

        @event.listens_for(self.engine, "handle_error")
        def _full(context: Any) -> None:
            # a full disk fails whichever write comes first (the run's record of its config,
            # a trial, the summary), most outside any `storage_errors`: said here, once, as
            # the user's problem; Optuna would wrap it as "... e.g. exceeding max length".
            # SQLite has rolled the write back: nothing of the study is lost.
            detail = one_line(context.original_exception)
            if _DISK_FULL_TEXT[0] in detail.lower():
                raise StorageError(f"{name}: disk full ({detail}); {_RESUME}")

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        _IMMEDIATE.on = True
        try:
            return super().set_trial_state_values(trial_id, state, values)
        finally:
            _IMMEDIATE.on = False


_IMMEDIATE = threading.local()  # this thread's next transaction takes the write lock first


def heartbeat_settings() -> tuple[int, int]:
    """(interval, grace) in seconds of Optuna's heartbeat on server storages.

    NORMNAS_HEARTBEAT_S and NORMNAS_GRACE_S override the defaults (whole seconds, as Optuna
    takes them); a grace shorter than twice the interval would fail live trials.
    """
    out = []
    for name, default in (
        ("NORMNAS_HEARTBEAT_S", HEARTBEAT_S),
        ("NORMNAS_GRACE_S", SERVER_GRACE_S),
    ):
        raw = os.environ.get(name, "").strip()
        try:
            value = int(raw) if raw else int(default)
        except ValueError:
            raise StorageError(f"{name}={raw!r}: expected whole seconds (e.g. 30)") from None
        if value < 1:
            raise StorageError(f"{name}={raw!r}: expected at least 1 second")
        out.append(value)
    interval, grace = out
    if grace < 2 * interval:
        raise StorageError(
            f"NORMNAS_GRACE_S={grace} is under twice NORMNAS_HEARTBEAT_S={interval}: "
            "live trials would be taken for dead; raise the grace period"
        )
    return interval, grace


def _postgres_driver(url: str) -> str:
    """`postgresql://` with the driver that is installed: SQLAlchemy 2.1 takes psycopg (3)
    for a URL without one, 2.0 psycopg2; `normnas[postgres]` installs psycopg2-binary."""
    import importlib.util

    if not url.startswith("postgresql://"):
        return url  # a driver named by the user, or none installed: their choice stands
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


@contextlib.contextmanager
def _no_experimental_warning() -> Iterator[None]:
    """Optuna calls its heartbeat experimental (since 2.8): said once here, not per process."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _server_heartbeat() -> dict[str, Any]:
    """RDBStorage arguments of Optuna's heartbeat, with the retry callback."""
    import warnings

    interval, grace = heartbeat_settings()
    # Optuna warns that its heartbeat is meant for Study.optimize: the runner's ask/tell loop
    # records the beats itself (see `_Heartbeat`) and fails stale trials before each ask
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    with _no_experimental_warning():
        retry = RequeueStaleTrial()
    return {
        "heartbeat_interval": interval,
        "grace_period": grace,
        "heartbeat_stale_trial_callback": retry,
    }


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


def make_folder(path: Path, error: type[UserError] = StorageError) -> Path:
    """The folder of `path`, created when missing (as a search's outputs are); `error`
    naming the part of the path that is a file, or why else it cannot be created."""
    folder = path.absolute().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        # name the culprit: mkdir's "File exists" hides which part of the path is a file
        file = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        why = f"{file} is a file" if file is not None else _reason(e)
        raise error(f"{path}: cannot create its folder {folder} ({why})") from None
    return folder


def _check_sqlite_file(path: Path, write: bool) -> None:
    """StorageError for a SQLite file that cannot be used as asked (before SQLite says less)."""
    if path.is_dir():
        raise StorageError(f"{path}: a folder, not a SQLite database file; {_MOVE}")
    if not write:
        if not path.exists():
            raise StorageError(f"{path}: no such storage file; pass --storage sqlite:///FILE")
        return
    folder = make_folder(path)
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
        folder = make_folder(path)
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
# SQLite's SQLITE_FULL ("database or disk is full"; also a max_page_count reached) and the
# file system's ENOSPC / EDQUOT (a journal storage's append)
_DISK_FULL_TEXT = ("database or disk is full", "no space left on device", "disk quota exceeded")
_DISK_FULL_ERRNO = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_RESUME = "free space there, then rerun the same command: the study resumes where it stopped"


@contextlib.contextmanager
def storage_errors(name: str, files: bool = True) -> Iterator[None]:
    """Turn what the storage layer raises for a bad file or server into one StorageError.

    Database errors (SQLAlchemy's, Optuna's StorageInternalError around them), undecodable
    journal text and file-system errors become a StorageError naming `name`; SQL
    programming errors and anything else (bugs) pass through untouched. With `files=False`
    (around code that also touches other files, e.g. a whole search loop) only a full disk
    among the OS errors is taken for the storage's: any other names its own file already.
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
        if e.errno in _DISK_FULL_ERRNO:
            raise StorageError(f"{name}: disk full ({_reason(e)}); {_RESUME}") from None
        if not files:
            raise
        raise StorageError(f"{name}: {_reason(e)}") from None


def _database_problem(name: str, error: BaseException) -> str:
    """The one-line message of a database error, from the driver's own words."""
    cause = error.__cause__ if isinstance(error, optuna.exceptions.StorageInternalError) else None
    inner = getattr(cause or error, "orig", None) or cause or error
    detail = one_line(inner)
    text = detail.lower()
    if any(s in text for s in _DISK_FULL_TEXT):
        # Optuna wraps it as "... e.g. exceeding max length": the driver's words are the truth
        return f"{name}: disk full ({detail}); {_RESUME}"
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


_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_STEM = 100  # + hash + the longest suffix (".supernet.pt") stays far under 255 bytes


def safe_file_stem(name: str) -> str:
    """A study name as the start of a file name: one plain name in the storage's folder.

    Letters, digits, `_`, `.` and `-` are kept, anything else (a `/`, `\\`, a space,
    non-ASCII) becomes `_`, and a leading dot too (`..`, a hidden file); a name so changed,
    or longer than 100 characters, ends in 8 hex digits of its hash, so two names never
    share files. A plain name stays as it was: the files of existing studies keep theirs.
    """
    stem = _UNSAFE_FILE_CHARS.sub("_", name)
    stem = "_" * (len(stem) - len(stem.lstrip("."))) + stem.lstrip(".")
    if stem == name and 0 < len(stem) <= _MAX_STEM:
        return stem
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{stem[:_MAX_STEM] or 'study'}-{digest}"  # never a file name starting with -


def study_file(url: str, study_name: str, suffix: str) -> Path:
    """The file of a study beside its storage: `NAME-best.pt`, `NAME-report.html`,
    `NAME.supernet.pt`; NAME made safe by `safe_file_stem`, so it never leaves the folder."""
    return storage_dir(url) / f"{safe_file_stem(study_name)}{suffix}"


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


def read_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Every trial of `study`, in number order: `study.get_trials(deepcopy=False)`, faster.

    On an RDB storage (SQLite, PostgreSQL, MySQL) Optuna builds an ORM object per row of
    each trial's parameters, attributes and curve: 3 of the 8 CPU seconds of the report of
    a 1,500-trial study. Here the trials' own rows still go through Optuna's model (its
    state and time-zone handling), the ~75,000 child rows are read as plain rows, and each
    distinct distribution is parsed once. The same FrozenTrials either way; any other
    storage, or an Optuna whose tables differ, takes Optuna's own path.
    """
    backend = getattr(study._storage, "_backend", study._storage)
    if isinstance(backend, optuna.storages.RDBStorage):
        try:
            return _read_rdb_trials(backend, study._study_id)
        except Exception:  # another schema: Optuna reads it (and reports a real fault)
            pass
    return study.get_trials(deepcopy=False)


def _read_rdb_trials(storage: optuna.storages.RDBStorage, study_id: int) -> list[FrozenTrial]:
    import sqlalchemy as sa
    from optuna.distributions import json_to_distribution
    from optuna.storages._rdb import models as m
    from optuna.storages._rdb.storage import _create_scoped_session

    def rows(model: Any, *columns: str) -> Iterator[Any]:
        cols = [getattr(model, c) for c in columns]
        query = (
            sa.select(*cols)
            .join(m.TrialModel, m.TrialModel.trial_id == model.trial_id)
            .where(m.TrialModel.study_id == study_id)
            .order_by(cols[0])  # the primary key: Optuna's order within a trial
        )
        yield from session.execute(query)

    dists: dict[str, Any] = {}
    with _create_scoped_session(storage.scoped_session) as session:
        trials = (
            session.query(m.TrialModel)
            .filter(m.TrialModel.study_id == study_id)
            .order_by(m.TrialModel.trial_id)
            .all()
        )
        params: dict[int, dict[str, Any]] = {t.trial_id: {} for t in trials}
        distributions: dict[int, dict[str, Any]] = {t.trial_id: {} for t in trials}
        names = ("param_id", "trial_id", "param_name", "param_value", "distribution_json")
        for _, tid, name, value, text in rows(m.TrialParamModel, *names):
            dist = dists.get(text)
            if dist is None:
                dist = dists[text] = json_to_distribution(text)
            params[tid][name] = dist.to_external_repr(value)
            distributions[tid][name] = dist
        values: dict[int, dict[int, float]] = {}
        names = ("trial_value_id", "trial_id", "objective", "value", "value_type")
        for _, tid, objective, value, kind in rows(m.TrialValueModel, *names):
            values.setdefault(tid, {})[objective] = m.TrialValueModel.stored_repr_to_value(
                value, kind
            )
        attrs: list[dict[int, dict[str, Any]]] = []
        for model, key in (
            (m.TrialUserAttributeModel, "trial_user_attribute_id"),
            (m.TrialSystemAttributeModel, "trial_system_attribute_id"),
        ):
            found: dict[int, dict[str, Any]] = {t.trial_id: {} for t in trials}
            for _, tid, name, text in rows(model, key, "trial_id", "key", "value_json"):
                found[tid][name] = json.loads(text)
            attrs.append(found)
        curves: dict[int, dict[int, float]] = {t.trial_id: {} for t in trials}
        names = (
            "trial_intermediate_value_id", "trial_id", "step", "intermediate_value",
            "intermediate_value_type",
        )  # fmt: skip
        to_value = m.TrialIntermediateValueModel.stored_repr_to_intermediate_value
        for _, tid, step, value, kind in rows(m.TrialIntermediateValueModel, *names):
            curves[tid][step] = to_value(value, kind)
        out = [
            FrozenTrial(
                number=t.number,
                state=t.state,
                value=None,
                values=[v for _, v in sorted(values[t.trial_id].items())]
                if t.trial_id in values
                else None,
                datetime_start=t.datetime_start,
                datetime_complete=t.datetime_complete,
                params=params[t.trial_id],
                distributions=distributions[t.trial_id],
                user_attrs=attrs[0][t.trial_id],
                system_attrs=attrs[1][t.trial_id],
                intermediate_values=curves[t.trial_id],
                trial_id=t.trial_id,
            )
            for t in trials
        ]
    return sorted(out, key=lambda t: t.number)


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


# -- who runs a trial: worker ids, heartbeats, recovery of dead runs' trials --------------
#
# Every trial gets, as soon as it is asked for, a `worker` attribute "host:pid:start" (start:
# when that process began, so a reused pid is not taken for the owner); while it runs, a
# thread of the owner writes its `heartbeat` (unix time) FIRST_BEAT_S after the claim, then
# every HEARTBEAT_S. A RUNNING trial's owner is gone when, on this host, its pid is dead or
# now belongs to another process; on another host (a shared server database), when its
# heartbeat (before the first: the trial's start time) is older than GRACE_S (generous: it
# also absorbs clock differences between machines).
#
# On a server storage (PostgreSQL, MySQL: workers on several machines) Optuna's own
# heartbeat runs as well: the owner records it at the claim and then every
# NORMNAS_HEARTBEAT_S (30 s), and before each `ask` the runner fails the RUNNING trials
# whose last beat is older than NORMNAS_GRACE_S (120 s, by the database server's clock)
# and re-queues them through `RequeueStaleTrial` (Optuna's RetryHeartbeatStaleTrialCallback,
# formerly RetryFailedTrialCallback). So a worker killed on one machine has its trial run
# again by the others within about the grace period, with no restart of anything.

ATTR_HEARTBEAT = "heartbeat"  # trial user attribute: the owner's last sign of life (unix time)
HEARTBEAT_S = 30.0
FIRST_BEAT_S = 1.0
GRACE_S = 300.0
SERVER_GRACE_S = 120  # Optuna's heartbeat grace period on server storages (NORMNAS_GRACE_S)
# a RUNNING trial with no owner (killed between its creation and its claim, a few
# milliseconds, or written by an older version) is taken for dead once this old; a run
# checks again when its search ends, so such a leftover does not outlive the rerun
UNOWNED_GRACE_S = 3.0  # a claim follows its creation by milliseconds


def _proc_stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state first), None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()


def process_start(pid: int) -> str:
    """When process `pid` started (clock ticks after boot), '' where /proc cannot tell."""
    fields = _proc_stat(pid)
    return fields[19].decode() if fields is not None and len(fields) > 19 else ""


_IDS: dict[int, str] = {}


def worker_id() -> str:
    """This process as a trial's owner: 'host:pid:start'."""
    pid = os.getpid()  # per pid: a forked child is another owner
    if pid not in _IDS:
        _IDS[pid] = f"{socket.gethostname()}:{pid}:{process_start(pid)}"
    return _IDS[pid]


def parse_worker(value: Any) -> tuple[str, int, str] | None:
    """(host, pid, start) of a `worker` attribute ('host:pid' of older studies: start ''),
    None when it is not one."""
    if not isinstance(value, str):
        return None
    parts = value.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and (parts[2].isdigit() or not parts[2]):
        return parts[0], int(parts[1]), parts[2]
    host, _, pid = value.rpartition(":")
    return (host, int(pid), "") if host and pid.isdigit() else None


def _alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine; a zombie (dead, not yet reaped) does not."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    except (OverflowError, OSError):
        return False
    fields = _proc_stat(pid)
    if fields is None:  # no /proc (not Linux), or it ended just now
        return not os.path.isdir("/proc/self") or os.path.exists(f"/proc/{pid}")
    return fields[0] not in (b"Z", b"X")


class _Heartbeat:
    """A daemon thread that refreshes the heartbeat of the trials this process runs.

    One trial per thread that claimed one (a new claim replaces the thread's last). The
    first beat comes `first_s` after the claim, off the search's path (a trial shorter than
    that never costs a write), then one every `interval_s`; a trial is dropped once the
    storage says it is finished.
    """

    def __init__(self, interval_s: float = HEARTBEAT_S, first_s: float = FIRST_BEAT_S) -> None:
        self.interval_s, self.first_s = interval_s, first_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # thread ident -> (storage, trial id, when its next beat is due: time.monotonic())
        self._trials: dict[int, tuple[BaseStorage, int, float]] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0

    def track(self, storage: BaseStorage, trial_id: int) -> None:
        due = time.monotonic() + self.first_s
        with self._lock:
            self._trials[threading.get_ident()] = (storage, trial_id, due)
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="normnas-heartbeat", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def release(self, trial_id: int) -> None:
        with self._lock:
            for key, (_, tid, _) in list(self._trials.items()):
                if tid == trial_id:
                    del self._trials[key]

    def running(self) -> set[int]:
        """The ids of the trials this process is running (as far as it knows)."""
        with self._lock:
            return {tid for _, tid, _ in self._trials.values()}

    def beat(self) -> None:
        """Write the heartbeats that are due."""
        now = time.monotonic()
        with self._lock:
            due = [(k, v) for k, v in self._trials.items() if v[2] <= now]
        for key, (storage, trial_id, when) in due:
            try:
                storage.set_trial_user_attr(trial_id, ATTR_HEARTBEAT, round(time.time(), 1))
                interval = optuna_heartbeat(storage)
                if interval is not None:
                    storage.record_heartbeat(trial_id)
                after: float | None = min(self.interval_s, interval or self.interval_s)
            except optuna.exceptions.UpdateFinishedTrialError:
                after = None
            except Exception:  # a busy or unreachable storage: try again soon
                after = self.first_s
            with self._lock:
                if self._trials.get(key) == (storage, trial_id, when):  # not replaced meanwhile
                    if after is None:
                        del self._trials[key]
                    else:
                        self._trials[key] = (storage, trial_id, time.monotonic() + after)

    def _run(self) -> None:
        while True:
            with self._lock:
                due = min((v[2] for v in self._trials.values()), default=None)
            self._wake.wait(None if due is None else max(0.0, due - time.monotonic()))
            self._wake.clear()
            self.beat()


_BEAT = _Heartbeat()


def claim(study: optuna.Study, trial: optuna.Trial) -> None:
    """Record this process as the owner of `trial` and keep its heartbeat while it runs.

    Done right after `ask`, so a run starting beside this one never takes the trial for a
    dead run's. One attribute write, as the `worker` attribute always cost (and on a server
    storage Optuna's first heartbeat: a trial with none is never found stale).
    """
    trial.set_user_attr(rec.ATTR_WORKER, worker_id())
    if optuna_heartbeat(study._storage) is not None:
        study._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
    _BEAT.track(study._storage, trial._trial_id)


def optuna_heartbeat(storage: BaseStorage) -> int | None:
    """The interval of Optuna's heartbeat on `storage` (server storages), else None."""
    from optuna.storages._heartbeat import BaseHeartbeat

    return storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None


class RequeueStaleTrial(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a heartbeat-stale trial, recorded as normnas re-queues a trial.

    The retry carries `retry_of` (and Optuna's `failed_trial`/`retry_history` system
    attributes) but not the dead trial's other user attributes: a copied `worker` and
    `heartbeat` would make the waiting retry look like a running trial of a dead owner.
    The stale trial itself is FAIL with no status, which `records` reads as `interrupted`.
    """

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if self._max_retry is not None and self._max_retry < len(history):
            return
        if not trial.params or set(trial.distributions) != set(trial.params):
            return  # killed before its architecture was chosen: nothing to repeat
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={rec.ATTR_RETRY: trial.number},
                system_attrs={
                    "failed_trial": trial.system_attrs.get("failed_trial", trial.number),
                    "retry_history": history,
                },
            )
        )


def fail_stale(study: optuna.Study) -> None:
    """Fail and re-queue the trials whose Optuna heartbeat stopped (server storages only)."""
    if optuna_heartbeat(study._storage) is not None:
        with _no_experimental_warning():
            optuna.storages.fail_stale_trials(study)


def release(trial: optuna.Trial) -> None:
    """Stop the heartbeat of `trial` (cut short here: it is no longer running in this process)."""
    _BEAT.release(trial._trial_id)


def owner_alive(
    trial: FrozenTrial, now: float | None = None, grace_s: float = GRACE_S
) -> bool | None:
    """Whether the process running `trial` is alive; None when the trial is not RUNNING or
    it cannot be told yet (no owner recorded, and the trial is younger than UNOWNED_GRACE_S).

    On this host: its pid is alive and still the same process (start time); in this very
    process: the trial is being run here. On another host: its heartbeat is at most
    `grace_s` old (the trial's start time where there is no heartbeat).
    """
    if trial.state != TrialState.RUNNING:
        return None
    now = time.time() if now is None else now
    owner = parse_worker(trial.user_attrs.get(rec.ATTR_WORKER))
    started = trial.datetime_start.timestamp() if trial.datetime_start is not None else None
    if owner is None:
        if started is None or now - started < UNOWNED_GRACE_S:
            return None
        return False
    host, pid, start = owner
    if host == socket.gethostname():
        if pid == os.getpid():
            return trial._trial_id in _BEAT.running() and start in ("", process_start(pid))
        if not _alive(pid):
            return False
        now_start = process_start(pid)
        return not (start and now_start and start != now_start)  # else: the pid was reused
    beat = trial.user_attrs.get(ATTR_HEARTBEAT)
    last = float(beat) if isinstance(beat, (int, float)) else started
    return None if last is None else now - last <= grace_s


def owner_check(study: optuna.Study) -> Callable[[int], bool | None]:
    """`owner_alive` by trial number, for a status report (one read of the running trials)."""
    running = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    now = time.time()
    return lambda number: owner_alive(running[number], now) if number in running else None


def recover_interrupted(
    study: optuna.Study,
    force: bool = False,
    *,
    pid: int | None = None,
    grace_s: float = GRACE_S,
    owner: str | None = None,
) -> list[int]:
    """Mark trials left RUNNING by dead runs as FAIL (`interrupted`) and re-enqueue them.

    A trial is recovered when `owner_alive` says its owner is gone, or with `force` (every
    RUNNING trial: only when no other run can be using the study); `pid` limits it to the
    trials of that process of this host (a worker that died); `owner` (a `worker_id`, of any
    host) to the trials of that worker, which the caller knows is dead (a lost Ray actor).
    A trial that a live run finishes meanwhile, or that another process recovers first, is
    left to them. Returns the numbers of the recovered trials.
    """
    now = time.time()
    host = socket.gethostname()
    recovered = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = parse_worker(t.user_attrs.get(rec.ATTR_WORKER))
        if pid is not None and (who is None or who[:2] != (host, pid)):
            continue
        if owner is not None:
            if t.user_attrs.get(rec.ATTR_WORKER) == owner and _requeue(study, t):
                recovered.append(t.number)
            continue
        if (force or owner_alive(t, now, grace_s) is False) and _requeue(study, t):
            recovered.append(t.number)
    return recovered


def _requeue(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Fail a dead run's trial as `interrupted` and queue its retry; False if it finished."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, rec.ATTR_RESULT, {"status": "interrupted"})
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # told by its owner, or recovered by another process, meanwhile
    if trial.params and set(trial.distributions) == set(trial.params):
        retried = any(
            t.user_attrs.get(rec.ATTR_RETRY) == trial.number
            for t in study.get_trials(deepcopy=False)
        )
        if not retried:  # two runs recovering the same trial at once queue it once
            study.enqueue_trial(dict(trial.params), user_attrs={rec.ATTR_RETRY: trial.number})
    return True


def versions() -> dict[str, str]:
    import numpy
    import torch

    from normnas.version import __version__

    return {
        "normnas": __version__,
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "numpy": numpy.__version__,
    }


def meta_part(index: int) -> str:
    """The study attribute holding part `index` of the run config's JSON: `normnas:0`, ..."""
    return f"{META_ATTR}:{index}"


def set_study_meta(study: optuna.Study, meta: dict[str, Any]) -> None:
    """Store the run's config, space spec, versions, ... (`study_meta` reads it back).

    optuna-dashboard cuts every attribute it shows at DASHBOARD_MAX_CHARS characters (of its
    JSON), and the config of a run is longer: so its JSON text is stored in parts
    `normnas:0`, `normnas:1`, ..., each within that limit, and `normnas` holds only their
    number. The parts are written first: a reader that sees the new number sees them all.
    """
    parts = split_for_dashboard(json.dumps(meta))
    for index, part in enumerate(parts):
        study.set_user_attr(meta_part(index), part)
    study.set_user_attr(META_ATTR, {_PARTS: len(parts)})


def split_for_dashboard(text: str, limit: int = DASHBOARD_MAX_CHARS) -> list[str]:
    """`text` in consecutive pieces, each at most `limit` characters once written as the
    dashboard writes a string value (its JSON: quoted, with quotes, backslashes and
    control or non-ASCII characters escaped)."""
    pieces: list[str] = []
    start, size = 0, 2  # the quotes
    for i, ch in enumerate(text):
        width = len(json.dumps(ch)) - 2
        if size + width > limit:
            pieces.append(text[start:i])
            start, size = i, 2
        size += width
    pieces.append(text[start:])
    return pieces


def study_meta(study: optuna.Study) -> dict[str, Any]:
    """The run's config, space spec, versions, ... as `set_study_meta` stored them; from a
    study of an earlier version, its one `normnas` attribute; {} for a study without."""
    attrs = study.user_attrs
    head = attrs.get(META_ATTR)
    if isinstance(head, dict) and set(head) == {_PARTS}:
        try:
            meta = json.loads("".join(attrs[meta_part(i)] for i in range(int(head[_PARTS]))))
        except (KeyError, TypeError, ValueError):  # a part missing, or rewritten meanwhile
            return {}
        return dict(meta) if isinstance(meta, dict) else {}
    return dict(head or {})
