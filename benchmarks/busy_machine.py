"""The product on a busy machine: `normnas demo` and a `--time` search beside busy loops.

    .venv/bin/python benchmarks/busy_machine.py [--loops 2] [--demo-time 150s] [--time 60s]
    .venv/bin/python benchmarks/busy_machine.py --loops 0     # the same, idle: the baseline

Starts `--loops` processes that spin on a core each (what "two other jobs" do to 2 cores),
then runs, in a fresh folder each, `normnas demo --time DEMO_TIME` and
`normnas search --data digits --space macro --strategy evolution --epochs 5 --time TIME`,
timing each whole command from outside (Python's start and imports included) and reading
its study: the architectures evaluated, the final model's status, the load average.
Prints one line per command and the overrun against the budget.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPIN = "import time\nend = time.time() + 3600\nwhile time.time() < end: pass\n"


def seconds(text: str) -> float:
    from normnas.config import parse_duration

    return float(parse_duration(text))


def run(cmd: list[str], folder: Path) -> tuple[float, str]:
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
    return wall, done.stdout + done.stderr


def study_figures(folder: Path, name: str) -> dict[str, object]:
    import optuna

    from normnas.search import records as rec
    from normnas.search.study import open_storage

    study = optuna.load_study(
        study_name=name, storage=open_storage(f"sqlite:///{folder}/normnas.db", write=False)
    )
    done = [r for r in rec.records(study) if r.evaluated]
    return {
        "evaluated": len(done),
        "ok": sum(r.status == "ok" for r in done),
        "final_source": study.user_attrs.get("final_source"),
        "final_note": study.user_attrs.get("final_note"),
        "test": study.user_attrs.get("test_accuracy"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loops", type=int, default=2)
    parser.add_argument("--demo-time", default="150s")
    parser.add_argument("--time", default="60s")
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "normnas")
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.loops)]
    try:
        time.sleep(2 if spinners else 0)
        for label, cmd, budget, study in (
            ("demo", [exe, "demo", "--time", args.demo_time], args.demo_time, "demo"),
            (
                "search",
                [exe, "search", "--data", "digits", "--space", "macro", "--strategy",
                 "evolution", "--epochs", "5", "--time", args.time, "--no-progress"],
                args.time,
                "normnas-macro-digits",
            ),
        ):  # fmt: skip
            with tempfile.TemporaryDirectory() as tmp:
                load0 = os.getloadavg()[0]
                wall, _ = run(cmd, Path(tmp))
                figures = study_figures(Path(tmp), study)
                b = seconds(budget)
                print(
                    f"{label}: {args.loops} busy loops, budget {b:.0f}s, whole command "
                    f"{wall:.1f}s ({100 * (wall / b - 1):+.1f}%), architectures evaluated "
                    f"{figures['evaluated']} ({figures['ok']} ok), final model "
                    f"{figures['final_source']}, test {figures['test']}, load "
                    f"{load0:.1f} -> {os.getloadavg()[0]:.1f}"
                    + (f"\n  note: {figures['final_note']}" if figures["final_note"] else ""),
                    flush=True,
                )
    finally:
        for p in spinners:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
