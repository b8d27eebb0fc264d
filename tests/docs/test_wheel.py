"""The wheel: built by `python -m build`, installed in a fresh venv, `normnas --help` and
`normnas bench nb201 --runs 2` run from it (the shipped tables are package data).

Offline: the build uses this venv's setuptools (no isolation) and the fresh venv reaches
this venv's torch, numpy, optuna … through a .pth file instead of downloading them; the
wheel is installed with --no-deps --no-index. Skips where `build` is not installed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.docs,  # a minute of building: run by `make docs` (CI), not the default suite
    pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="needs `build`"),
    pytest.mark.timeout(600),
]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def test_the_wheel_ships_its_tables_and_runs_from_a_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)], ROOT)
    (wheel,) = dist.glob("normnas-*.whl")

    venv = tmp_path / "fresh"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     tmp_path).strip())  # fmt: skip
    # this venv's dependencies, as a path entry: its .pth files (the editable normnas) are
    # not processed from there, so `normnas` can only come from the wheel
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
          "--no-index", "--quiet", str(wheel)], tmp_path)  # fmt: skip

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", COLUMNS="80")
    where = _run([str(python), "-c", "import normnas; print(normnas.__file__)"], tmp_path, env)
    assert Path(where.strip()).is_relative_to(site)
    assert (site / "normnas" / "py.typed").is_file()
    assert "bench" in _run([str(venv / "bin" / "normnas"), "--help"], tmp_path, env)
    out = _run([str(venv / "bin" / "normnas"), "bench", "nb201", "--strategy", "random",
                "--runs", "2", "--json"], tmp_path, env)  # fmt: skip
    result = json.loads(out)
    # the packaged table answered: NAS-Bench-201's CIFAR-10 test accuracies lie in 10..94.37
    assert result["runs"] == 2 and 85.0 < result["mean_test_acc"] <= 94.37
