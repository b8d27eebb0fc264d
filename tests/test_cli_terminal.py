"""What `normnas search` prints when its output is not a terminal (a pipe, a log, CI)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from tests import support

from normnas.search import records as rec
from normnas.search.study import load_study, open_storage

NORMNAS = [sys.executable, "-c", "from normnas.cli import main; main()"]
LINE = re.compile(
    r"^trial +(\d+) (\S+) +accuracy (\d+\.\d\d)% +best (\d+\.\d\d)%  \[(\d+)/3 trials, "
    r"(\d+\.\d)s\]$"
)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "tiny.yaml").write_text(support.TINY)
    return tmp_path


def _search(cwd: Path, study: str, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [*NORMNAS, "search", "-c", "tiny.yaml", "--trials", "3", "--study", study,
           "--storage", f"sqlite:///{cwd / 's.db'}", "--no-final", *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "80"}
    # pipes for both streams: neither is a terminal
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_piped_search_prints_one_plain_line_per_trial_and_an_80_column_leaderboard(
    tiny: Path,
) -> None:
    done = _search(tiny, "p")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\r" not in done.stderr and "\x1b" not in done.stderr  # nothing redraws
    lines = [line for line in done.stderr.splitlines() if line.startswith("trial")]
    assert len(lines) == 3, done.stderr
    study = load_study("p", open_storage(f"sqlite:///{tiny / 's.db'}", write=False))
    by_number = {r.number: r for r in rec.records(study)}
    best = 0.0
    for k, line in enumerate(lines, start=1):
        m = LINE.match(line)
        assert m is not None, line
        number, status, acc, shown_best, count, _ = m.groups()
        r = by_number[int(number)]
        assert status == r.status == "ok"
        assert float(acc) == pytest.approx(100 * r.result["accuracy"], abs=0.005)
        best = max(best, r.result["accuracy"])
        assert float(shown_best) == pytest.approx(100 * best, abs=0.005)
        assert int(count) == k
    # the leaderboard: every line within 80 columns, one line per trial shown
    out = done.stdout.splitlines()
    table = out[: next(i for i, line in enumerate(out) if line.startswith("trials:"))]
    assert "leaderboard of p" in table[0] and max(len(line) for line in table) <= 80
    rows = [line for line in out if line.startswith("│")]
    assert len(rows) == 3 and all(line.endswith("│") for line in rows)
    assert f"report  {tiny / 'p-report.html'}" in out


def test_quiet_prints_the_best_and_where_things_are_only(tiny: Path) -> None:
    url = f"sqlite:///{tiny / 's.db'}"
    args = ["search", "-c", "tiny.yaml", "--trials", "2", "--study", "q", "--storage", url,
            "--no-final", "--quiet"]  # fmt: skip
    result = support.invoke(args, tiny)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study("q", open_storage(url, write=False))
    best = rec.best_records(study)[0]
    assert result.stdout.splitlines() == [
        f"best #{best.number}: valid accuracy {100 * best.result['accuracy']:.2f}%",
        f"study   q in {url}",
        f"report  {tiny / 'q-report.html'}",
    ]


def test_plain_lines_per_trial_status_and_verbose_architecture() -> None:
    from normnas.report.progress import PlainProgress
    from normnas.search.events import TrialEvent
    from normnas.search.runner import Budget

    out = io.StringIO()
    lines = PlainProgress(Budget(trials=4), ("accuracy", "params"), verbose=True, stream=out)
    events = [
        TrialEvent(0, "ok", None, (0.5, 12_345.0), 1, 1.0, 2.04, Budget(trials=4), arch="A"),
        TrialEvent(1, "failed", None, None, 2, 2.0, 3.0, Budget(trials=4), arch="B"),
        TrialEvent(2, "ok", 0, (0.5, 12_345.0), 2, 2.0, 3.1, Budget(trials=4), arch="A"),
        TrialEvent(3, "ok", None, (0.75, 2.5e6), 3, 3.0, 4.25, Budget(trials=4), arch="C"),
    ]
    for e in events:
        lines.update(e)
    assert out.getvalue().splitlines() == [
        "trial   0 ok         accuracy 50.00%  params 12.3k  best 50.00%  [1/4 trials, 2.0s]  A",
        "trial   1 failed     -                 best 50.00%  [2/4 trials, 3.0s]  B",
        "trial   2 dup of #0  accuracy 50.00%  params 12.3k  best 50.00%  [2/4 trials, 3.1s]  A",
        "trial   3 ok         accuracy 75.00%  params 2.50M  best 75.00%  [3/4 trials, 4.2s]  C",
    ]


def test_workers_show_one_line_per_finished_trial_too(tiny: Path) -> None:
    done = _search(tiny, "w", "--workers", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("trial")]
    study = load_study("w", open_storage(f"sqlite:///{tiny / 's.db'}", write=False))
    finished = [r for r in rec.records(study) if r.state.is_finished()]
    assert sorted(int(line.split()[1]) for line in lines) == [r.number for r in finished]
    assert sum(r.evaluated for r in finished) == 3
    counts = [int(line.split("[")[1].split("/")[0]) for line in lines]
    assert counts[-1] == 3 and counts == sorted(counts)  # trials done, as one process counts
