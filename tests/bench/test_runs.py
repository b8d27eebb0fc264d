"""`normnas bench nb201` and the R-run driver: determinism, table paths, errors."""

import json

import pytest
from typer.testing import CliRunner

from normnas.bench.runs import run_bench
from normnas.cli import app

KEYS = {"strategy", "runs", "budget", "mean_test_acc", "std_test_acc", "mean_queries", "wall_s"}


def _json(args: list[str]) -> dict:
    result = CliRunner().invoke(app, ["bench", "nb201", *args, "--json"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_json_has_exactly_the_documented_keys_and_runs_on_a_generated_table(synthetic_table):
    out = _json(["--table", str(synthetic_table), "-s", "random", "--runs", "3", "-b", "2000"])
    assert set(out) == KEYS
    assert out["runs"] == 3 and out["budget"] == 2000 and out["strategy"] == "random"
    # 120 s per query, the crossing one counted: ceil(2000 / 120) = 17 queries per run
    assert out["mean_queries"] == 17
    # the synthetic test column is 100 - valid: a search reading valid loses on test
    assert out["mean_test_acc"] < 50


@pytest.mark.parametrize("strategy", ["evolution", "additive"])
def test_same_seed_same_result_in_one_or_two_processes(synthetic_table, strategy):
    one = run_bench(strategy, 4, 3000.0, seed=9, table=synthetic_table, processes=1)
    two = run_bench(strategy, 4, 3000.0, seed=9, table=synthetic_table, processes=2)
    again = _json(
        ["--table", str(synthetic_table), "-s", strategy, "-r", "4", "-b", "3000", "--seed", "9"]
    )
    assert one.outcomes == two.outcomes
    summary = {k: v for k, v in one.summary().items() if k != "wall_s"}
    assert summary == {k: v for k, v in again.items() if k != "wall_s"}
    other = run_bench(strategy, 4, 3000.0, seed=10, table=synthetic_table)
    assert [o.seed for o in other.outcomes] == [10, 11, 12, 13]
    assert other.outcomes[:3] == one.outcomes[1:]  # run r uses seed S + r


def test_malformed_table_exits_2_with_one_line_naming_file_and_column(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("arch,valid_acc_12ep,valid_acc_200ep,test_acc_200ep\n")
    result = CliRunner().invoke(app, ["bench", "nb201", "-s", "random", "--table", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "train_time_per_epoch_s" in lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-s", "nope"], "unknown strategy 'nope'"),
        (["-s", "random", "--runs", "0"], "--runs must be >= 1"),
        (["-s", "random", "--budget", "0"], "--budget must be > 0"),
    ],
)
def test_bad_arguments_exit_2(args, needle):
    result = CliRunner().invoke(app, ["bench", "nb201", *args])
    assert result.exit_code == 2 and needle in result.stderr


def test_a_partial_table_warns_on_stderr_and_in_the_result(tmp_path):
    from tests.bench.conftest import SPACE, write_table

    path = write_table(tmp_path / "part.csv", SPACE.all()[:203])  # 1.3% of the cells
    args = ["bench", "nb201", "-s", "random", "-r", "2", "-b", "1000", "--table", str(path)]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    expected = (
        f"{path}: partial table: 203 of the 15,625 NAS-Bench-201 cells, 153 of the 4,930 "
        "classes of equivalent cells (3.1%); searches cannot pick the missing ones"
    )
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"warning: {expected}")
    assert json.loads(result.stdout)["warning"].startswith(expected)
    text = CliRunner().invoke(app, args)
    assert text.exit_code == 0, text.output
    assert "(a partial table: see the warning)" in text.stdout


def test_a_table_with_one_cell_of_every_class_is_complete(tmp_path):
    from tests.bench.conftest import SPACE, write_table

    from normnas.bench.table import NB201Table

    one_each = sorted({SPACE.canonical(a) for a in SPACE.all()})
    table = NB201Table.load(write_table(tmp_path / "classes.csv", one_each))
    assert table.coverage() == (4930, 4930) and table.coverage_warning() is None
    # the evaluator answers every cell from its class's row: nothing is out of reach
    assert run_bench("random", 1, 1000.0, table=table).warning is None
