"""`normnas latency` and `search --target` from the command line: one-line errors, and the
warning of a profile taken beside a busy process."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.support import invoke

ARCH = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"


def test_target_without_a_latency_objective_or_limit_is_a_one_line_error(tmp_path):
    result = invoke(["search", "--data", "digits", "--space", "nb201", "--target",
                     "onnxruntime", "--trials", "1"], tmp_path)  # fmt: skip
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "--target onnxruntime" in lines[0] and "--objective latency" in lines[0]
    assert "--max-latency-ms" in lines[0]
    assert not list(tmp_path.iterdir())  # refused before any study or data


def test_a_table_profiled_for_another_thread_count_is_refused_in_one_line(tmp_path):
    out = tmp_path / "nb201.json"
    made = invoke(["latency", "profile", "--space", "nb201", "--quick", "--fit-archs", "2",
                   "--out", str(out)], tmp_path)  # fmt: skip
    assert made.exit_code == 0, made.output
    result = invoke(["latency", "predict", "--space", "nb201", "--arch", ARCH, "--threads", "2",
                     "--table", str(out)], tmp_path)  # fmt: skip
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [f"error: latency table {out} was profiled for other conditions: "
                     "threads 1 (wanted 2)"]  # fmt: skip
    ok = invoke(["latency", "predict", "--space", "nb201", "--arch", ARCH, "--table", str(out)],
                tmp_path)  # fmt: skip
    assert ok.exit_code == 0 and "ms predicted on torch, 1 thread(s), batch 1" in ok.output


def test_profiling_beside_a_busy_process_warns(tmp_path):
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # the loop is running before the timing starts
        result = invoke(["latency", "profile", "--space", "nb201", "--quick", "--fit-archs",
                         "2", "--out", str(tmp_path / "t.json")], tmp_path)  # fmt: skip
    finally:
        busy.kill()
        busy.wait()
    assert result.exit_code == 0, result.output
    assert "warning: other processes kept" in result.output
    assert "unreliable; profile again on an idle machine" in result.output
