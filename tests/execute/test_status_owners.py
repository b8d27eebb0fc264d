"""`normnas status` names the worker that owns each running trial (any storage)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import optuna
from tests import support

from normnas.search import records as rec
from normnas.search.study import claim, open_storage, release

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_status_lists_each_running_trial_with_its_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="st", storage=open_storage(url), direction="maximize")
    done = study.ask()
    study.tell(done, 0.5)
    mine = study.ask()
    claim(study, mine)  # run by this process: alive
    dead = study.ask()
    # a worker of this host whose process is gone (pids never reach 2**22 on Linux)
    dead.set_user_attr(rec.ATTR_WORKER, f"{socket.gethostname()}:4194304:1")
    try:
        out = support.invoke(["status", "--study", "st", "--storage", url], tmp_path, 200)
    finally:
        release(mine)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    host = socket.gethostname()
    assert any(
        line.startswith(f"running #{mine.number} on {host} pid {os.getpid()}, ")
        and "owner gone" not in line
        for line in lines
    ), out.output
    assert any(
        line.startswith(f"running #{dead.number} on {host} pid 4194304")
        and line.endswith("(owner gone)")
        for line in lines
    ), out.output
    assert not any(line.startswith(f"running #{done.number} ") for line in lines)
