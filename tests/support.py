"""What several test modules share: the tiny search config, the in-process CLI, read-only paths."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

# a two-stage macro space trained 1 epoch on digits: a trial takes about a second
TINY = """\
space:
  name: macro
  options:
    stages:
      - {widths: [8, 16], min_blocks: 1, max_blocks: 1, stride: 1}
      - {widths: [16, 24], min_blocks: 1, max_blocks: 1, stride: 2}
    dropout: [0.0]
train: {epochs: 1, batch_size: 64}
strategy: evolution
strategy_options: {population_size: 3}
"""


def invoke(args: list[str], cwd: Path, columns: int | None = None) -> Result:
    """`normnas ARGS` in-process, from folder `cwd` (rich output `columns` wide)."""
    from normnas.cli import app

    old = Path.cwd()
    os.chdir(cwd)
    try:
        env = {"COLUMNS": str(columns)} if columns else None
        return CliRunner().invoke(app, args, env=env)
    finally:
        os.chdir(old)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` (file or folder) read-only for this process, restored afterwards."""
    mode = path.stat().st_mode
    path.chmod(0o555 if path.is_dir() else 0o444)
    immutable = False
    try:
        if os.geteuid() == 0:  # root writes through chmod; an immutable inode stops root too
            done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
            if done.returncode != 0:
                pytest.skip("as root, chmod does not make files read-only, and chattr +i failed")
            immutable = True
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(mode)


def wait_for(what: Callable[[], Any], proc: subprocess.Popen[str], timeout: float = 120) -> Any:
    """Poll `what()` until it is truthy; fail with the command's stderr if it ends first
    (on a timeout, kill it: its whole group where it leads one, so its workers too)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        if proc.poll() is not None:
            raise AssertionError(f"the command ended first: {proc.communicate()[1][-3000:]}")
        time.sleep(0.1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # not a group leader
        proc.kill()
    raise AssertionError(f"timed out: {proc.communicate()[1][-3000:]}")
