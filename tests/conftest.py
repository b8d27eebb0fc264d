"""Settings for every test of the session.

SQLite files opened in the test process commit without waiting for the disk
(`PRAGMA synchronous=OFF`). A search writes a study row by row, a few dozen commits per
trial, and each commit waited for an fsync: on a disk other processes keep busy, that wait
was most of the time of the storage-heavy tests (measured: 25 NB201 table trials 6-7 s of
wall time for 2-3 s of CPU; 2.3-2.9 s without the wait). What the tests check is
unchanged: a commit still reaches the file before it returns (a killed process loses
nothing), only an operating-system crash could lose the last ones. Processes that tests
start (`normnas search` commands, workers) keep SQLite's default.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


@event.listens_for(Engine, "connect")
def _commit_without_fsync(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        # a damaged or foreign file: its own error comes at its first use, as without this
        with contextlib.suppress(sqlite3.Error):
            dbapi_connection.execute("PRAGMA synchronous=OFF")
