"""Settings for every test of the session.

One torch thread in the test process. These networks are tiny: on 2 idle cores one thread
runs them as fast as two (measured: tests/train/test_fit.py 10.5 s vs 10.6 s,
tests/proxies/test_measures.py 5.8 s vs 6.1 s), but beside busy processes torch's second
thread spins waiting for a core it does not get, and a forward pass runs 10-60x slower
(tests/spaces/test_macro.py's 30 sampled networks: 11 s at load 4, 0.2 s at load 1).
normnas's training takes at most this many threads (`train.fit.run_threads`); processes
that tests start set OMP_NUM_THREADS=1 themselves.

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
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@event.listens_for(Engine, "connect")
def _commit_without_fsync(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        # a damaged or foreign file: its own error comes at its first use, as without this
        with contextlib.suppress(sqlite3.Error):
            dbapi_connection.execute("PRAGMA synchronous=OFF")
