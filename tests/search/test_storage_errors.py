"""Every storage fault ends in one StorageError line naming the URL or file, at open time.

Real SQLite files, real journal files and real permissions. Read-only cases use chmod; as
root (which chmod does not stop) the same file or folder is also made immutable with
`chattr +i`, which binds root too; where that is unavailable the test is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import sqlalchemy.exc
from tests.support import read_only

from normnas.errors import StorageError, StudyMismatchError
from normnas.search.study import (
    ACCEPTED,
    default_storage,
    load_study,
    open_storage,
    open_study,
    storage_errors,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study_file(path: Path, trials: int = 30) -> str:
    """A real SQLite study ('s') with `trials` finished trials; its URL."""
    url = f"sqlite:///{path}"
    study = open_study("s", open_storage(url), ["minimize"])
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=trials)
    return url


def _journal_file(path: Path) -> str:
    url = f"journal:{path}"
    study = open_study("s", open_storage(url), ["minimize"])
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    return url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("foo://bar", f"storage URL 'foo://bar': unknown scheme 'foo'; accepted forms: {ACCEPTED}"),
        ("normnas.db", "storage URL 'normnas.db': not a URL; did you mean 'sqlite:///normnas.db'"),
        ("runs.journal", "not a URL; did you mean 'journal:runs.journal'"),
        ("sqlite://normnas.db", "three slashes; did you mean 'sqlite:///normnas.db'"),
        ("postgres://bob:s3cret@db/x", "'postgres://bob:***@db/x': unknown scheme 'postgres'"),
        ("journal:", "storage URL 'journal:': no file after 'journal:'"),
    ],
)
def test_a_bad_storage_url_names_it_and_the_accepted_forms(tmp_path, monkeypatch, url, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError) as info:
        open_storage(url)
    assert message in str(info.value) and len(str(info.value).splitlines()) == 1
    assert "s3cret" not in str(info.value)  # a password never reaches the terminal
    assert list(tmp_path.iterdir()) == []  # nothing created for a URL that was refused


def test_a_sqlite_file_in_a_missing_folder_gets_the_folder(tmp_path):
    db = tmp_path / "runs" / "today" / "s.db"
    url = _study_file(db, trials=2)  # the folder is created, as journal: always did
    assert db.is_file() and len(load_study("s", url).trials) == 2


def test_a_storage_folder_under_a_file_is_named(tmp_path):
    notes = tmp_path / "notes"
    notes.write_text("a file, not a folder")
    for url in (f"sqlite:///{notes}/s.db", f"journal:{notes}/sub/s.journal"):
        with pytest.raises(StorageError) as info:
            open_storage(url)
        message = str(info.value)
        assert "cannot create its folder" in message and message.endswith(f"({notes} is a file)")


def test_garbage_bytes_in_the_db_fail_at_open_naming_the_file(tmp_path):
    db = tmp_path / "normnas.db"
    db.write_bytes(os.urandom(4096))
    want = (
        f"{db}: not a readable SQLite database (file is not a database); "
        "move it away or pass --storage to another file"
    )
    for write in (True, False):
        with pytest.raises(StorageError) as info:
            open_storage(f"sqlite:///{db}", write=write)
        assert str(info.value) == want
    with pytest.raises(StorageError, match="not a readable SQLite database"):
        load_study("s", f"sqlite:///{db}")


def test_a_half_truncated_study_db_fails_at_open_not_mid_search(tmp_path):
    db = tmp_path / "s.db"
    url = _study_file(db)
    os.truncate(db, db.stat().st_size // 2)
    with pytest.raises(StorageError) as info:
        open_storage(url)  # before any trial is asked for
    assert str(info.value).startswith(f"{db}: not a readable SQLite database (database disk")
    assert len(str(info.value).splitlines()) == 1


def test_a_read_only_db_is_refused_for_a_search_but_readable_for_status(tmp_path):
    db = tmp_path / "s.db"
    url = _study_file(db, trials=5)
    with read_only(db):
        with pytest.raises(StorageError) as info:
            open_storage(url)
        assert str(info.value).startswith(f"{db}: the database is read-only; make it writable")
        assert len(load_study("s", url).trials) == 5  # status/best only read
        reader = open_storage(url, write=False)
        with pytest.raises(StorageError) as info:  # Optuna: "... e.g. exceeding max length"
            open_study("s", reader, ["minimize"])
        assert str(info.value).startswith(f"{db}: the database is read-only")
        assert "max length" not in str(info.value)


def test_a_read_only_working_folder_is_named_for_the_default_sqlite_file(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with read_only(work), pytest.raises(StorageError) as info:
        open_storage(default_storage())
    assert str(info.value).startswith(
        f"normnas.db: cannot create the database: its folder {work} is read-only"
    )
    assert not (work / "normnas.db").exists()


def test_an_existing_db_in_a_read_only_folder_is_refused_for_writing(tmp_path):
    folder = tmp_path / "shared"
    url = _study_file(folder / "s.db", trials=2)
    with read_only(folder):  # SQLite could not create its journal beside the file
        with pytest.raises(StorageError, match=f"cannot write the database: its folder {folder}"):
            open_storage(url)
        assert len(load_study("s", url).trials) == 2


def test_a_journal_in_a_read_only_folder_is_refused_naming_the_folder(tmp_path):
    folder = tmp_path / "j"
    url = _journal_file(folder / "s.journal")
    with read_only(folder):
        with pytest.raises(StorageError, match=f"its folder {folder} is read-only"):
            open_storage(url)
        assert len(load_study("s", url).trials) == 3


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"hello world\n", "line 1: JSONDecodeError"),  # Optuna alone accepts this as empty
        (b"not json\nnor this\n", "line 1: JSONDecodeError"),
        (b'{"a": 1}\n', "line 1: JSON but not a log entry"),
        (b"\x80\x81 binary\n", "line 1: UnicodeDecodeError"),
    ],
)
def test_a_garbage_journal_names_the_file_and_line(tmp_path, content, why):
    path = tmp_path / "g.journal"
    path.write_bytes(content)
    with pytest.raises(StorageError) as info:
        open_storage(f"journal:{path}")
    assert str(info.value).startswith(f"{path}: not an Optuna journal file ({why}")


def test_a_journal_damaged_in_the_middle_names_the_line(tmp_path):
    path = tmp_path / "s.journal"
    url = _journal_file(path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:3], b"{cut off\n", *lines[3:]]))
    with pytest.raises(StorageError) as info:
        open_storage(url)
    assert str(info.value).startswith(f"{path}: a damaged Optuna journal file (line 4: JSONDecode")


def test_a_sqlite_file_given_as_a_journal_is_refused(tmp_path):
    db = tmp_path / "s.db"
    _study_file(db, trials=1)
    with pytest.raises(StorageError, match=f"^{db}: not an Optuna journal file"):
        open_storage(f"journal:{db}")


def test_reading_a_missing_storage_file_says_so(tmp_path):
    for url in (f"sqlite:///{tmp_path}/none.db", f"journal:{tmp_path}/none.journal"):
        with pytest.raises(StorageError, match="no such storage file"):
            load_study("s", url)
    assert list(tmp_path.iterdir()) == []  # reading created nothing


def test_a_missing_study_lists_the_studies_of_the_storage(tmp_path):
    db = tmp_path / "s.db"
    url = _study_file(db, trials=1)
    open_study("b", open_storage(url), ["maximize"])
    with pytest.raises(StorageError) as info:
        load_study("nope", url)
    assert str(info.value) == f"no study 'nope' in {db}; studies: b, s"


def test_a_study_with_other_directions_is_a_mismatch(tmp_path):
    url = _study_file(tmp_path / "s.db", trials=1)
    with pytest.raises(StudyMismatchError, match="exists with directions \\['minimize'\\]"):
        open_study("s", url, ["maximize"])


def test_sql_programming_errors_are_not_disguised_as_storage_faults(tmp_path):
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with (
        engine.connect() as conn,
        pytest.raises(sqlalchemy.exc.ProgrammingError),
        storage_errors("x.db"),
    ):
        conn.exec_driver_sql("select ?", (1, 2))  # a bug: two bindings for one slot
    with (
        engine.connect() as conn,
        pytest.raises(StorageError, match=r"^x\.db: the storage failed \(no such table"),
        storage_errors("x.db"),
    ):
        conn.exec_driver_sql("select * from missing_table")


def test_the_storage_folder_is_unchanged_by_a_failed_open(tmp_path):
    db = tmp_path / "s.db"
    db.write_bytes(b"x" * 1000)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(StorageError):
        open_storage(f"sqlite:///{db}")
    assert sorted(p.name for p in tmp_path.iterdir()) == before and db.read_bytes() == b"x" * 1000


def _limit_to_current_size(storage: object) -> None:
    """Every connection of `storage`'s engine may not grow the file past its size now:
    SQLite's own 'database or disk is full' (SQLITE_FULL) at the next page it needs."""

    engine = storage.engine  # type: ignore[attr-defined]

    @sqlalchemy.event.listens_for(engine, "connect")
    def _full(connection, _record):  # type: ignore[no-untyped-def]
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages}")

    engine.dispose()  # the pooled connections reconnect, with the limit


def test_a_full_disk_mid_search_names_the_file_and_the_study_resumes(tmp_path):
    from optuna.trial import TrialState
    from tests.search.helpers import TableEvaluator

    from normnas.search.runner import Budget, run_search
    from normnas.search.study import recover_interrupted
    from normnas.spaces import NB201Space

    db = tmp_path / "s.db"
    space = NB201Space()
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = open_study("s", open_storage(f"sqlite:///{db}"), ["maximize"], sampler)
    run_search(study, space, TableEvaluator(space), Budget(trials=5))
    _limit_to_current_size(study._storage._backend)
    with pytest.raises(StorageError) as info:  # was Optuna's "... exceeding max length", exit 70
        run_search(study, space, TableEvaluator(space), Budget(trials=500))
    message = str(info.value)
    assert message.startswith(f"{db}: disk full (database or disk is full)")
    assert "rerun the same command" in message and len(message.splitlines()) == 1
    # the disk has room again: the rerun finds every finished trial and completes the budget
    study = open_study("s", open_storage(f"sqlite:///{db}"), ["maximize"], sampler)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) >= 5
    recover_interrupted(study)  # what a rerun of the command does first
    summary = run_search(study, space, TableEvaluator(space), Budget(trials=len(done) + 3))
    assert summary.stopped_by == "trials" and summary.n_evaluated == 3
    assert not study.get_trials(states=(TrialState.RUNNING,))


@pytest.mark.parametrize(
    "name",
    ["../x/../../evil", "/etc/passwd", "a/b", "..", ".", "..\\..\\win", "x" * 300, "", "é t"],
)
def test_a_study_name_becomes_one_file_beside_the_storage(tmp_path, name):
    from normnas.search.study import study_file

    url = f"sqlite:///{tmp_path / 'db' / 's.db'}"
    for suffix in ("-best.pt", "-report.html", ".supernet.pt"):
        path = study_file(url, name, suffix)
        assert path.parent == (tmp_path / "db").resolve()  # never a sub-folder or outside
        assert path.name.endswith(suffix) and not path.name.startswith((".", "-"))
        assert len(path.name.encode()) <= 255


def test_safe_study_file_names_keep_plain_names_and_never_collide():
    from normnas.search.study import safe_file_stem

    assert safe_file_stem("normnas-macro-digits") == "normnas-macro-digits"  # files kept
    assert safe_file_stem("demo-20240101-120000") == "demo-20240101-120000"
    names = ["a b", "a_b", "a/b", "a\\b", "a:b", "../a_b", "x" * 300, "x" * 301]
    stems = [safe_file_stem(n) for n in names]
    assert len(set(stems)) == len(stems)  # two studies never share a best model or report
