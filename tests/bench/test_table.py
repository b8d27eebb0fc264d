import math

import pytest
from tests.bench.conftest import SPACE, write_table

from normnas.bench.table import NB201Table, TableError, TableEvaluator

FIRST_ROW = (
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|"
    "skip_connect~2|"
)


@pytest.fixture(scope="module")
def packaged() -> NB201Table:
    return NB201Table.load()


def test_packaged_table_covers_every_cell_in_benchmark_order(packaged):
    assert len(packaged) == 15_625
    assert list(packaged.archs) == SPACE.all()
    assert packaged.row(FIRST_ROW) == 0
    assert packaged.valid_acc_12ep[0] == pytest.approx(63.364)
    assert packaged.test_acc_200ep.max() == pytest.approx(94.3733)


def test_query_returns_12_epoch_validation_as_a_fraction_at_12_epochs_cost(packaged):
    result = TableEvaluator(packaged).evaluate(SPACE.from_str(FIRST_ROW))
    assert result.status == "ok"
    assert result.accuracy == pytest.approx(0.63364)
    assert result.cost_s == pytest.approx(12 * 7.22109)
    assert result.params == SPACE.param_count(SPACE.from_str(FIRST_ROW))


def test_generated_gzip_and_plain_tables_load_identically(tmp_path, synthetic_table):
    archs = SPACE.all()[:50]
    plain = NB201Table.load(write_table(tmp_path / "t.csv", archs))
    zipped = NB201Table.load(write_table(tmp_path / "t.csv.gz", archs))
    assert plain.archs == zipped.archs == tuple(archs)
    assert (plain.valid_acc_12ep == zipped.valid_acc_12ep).all()


def test_a_missing_cell_is_answered_by_an_equivalent_one_else_fails_free(tmp_path):
    # (skip, none, none, none, conv3, none) computes conv3(x); so does (conv3, none, ...).
    present = ("nor_conv_3x3", "none", "none", "none", "skip_connect", "none")
    twin = ("skip_connect", "none", "none", "none", "nor_conv_3x3", "none")
    assert SPACE.canonical(present) == SPACE.canonical(twin)
    table = NB201Table.load(write_table(tmp_path / "t.csv", [present]))
    ev = TableEvaluator(table)
    assert ev.evaluate(twin).accuracy == ev.evaluate(present).accuracy
    lonely = ev.evaluate(("nor_conv_1x1",) * 6)
    assert lonely.status == "failed" and lonely.cost_s == 0.0
    assert "not in" in lonely.error


BAD_CASES = [
    ("arch,valid_acc_12ep\n", "missing column 'valid_acc_200ep'"),
    ("", "empty file"),
    ("{h}\n|nope~0|,1,2,3,4\n", "column 'arch'"),
    ("{h}\n{a},abc,2,3,4\n", "column 'valid_acc_12ep': 'abc' is not a number"),
    ("{h}\n{a},50,200,3,4\n", "column 'valid_acc_200ep': 200 is not a percentage"),
    ("{h}\n{a},50,60,nan,4\n", "column 'test_acc_200ep'"),
    ("{h}\n{a},50,60,70,0\n", "column 'train_time_per_epoch_s'"),
    ("{h}\n{a},50,60,70,1\n{a},50,60,70,1\n", "repeats line 2"),
    ("{h}\n", "no rows"),
]


@pytest.mark.parametrize(("body", "message"), BAD_CASES)
def test_malformed_tables_give_one_line_naming_file_and_column(tmp_path, body, message):
    from tests.bench.conftest import HEADER

    path = tmp_path / "bad.csv"
    path.write_text(body.format(h=HEADER, a=FIRST_ROW))
    with pytest.raises(TableError) as info:
        NB201Table.load(path)
    text = str(info.value)
    assert "\n" not in text and str(path) in text and message in text


def test_unreadable_path_is_a_table_error(tmp_path):
    with pytest.raises(TableError, match="cannot read"):
        NB201Table.load(tmp_path / "absent.csv")


def test_costs_of_the_packaged_table_are_positive_and_finite(packaged):
    costs = [packaged.query_cost_s(r) for r in range(len(packaged))]
    assert all(c > 0 and math.isfinite(c) for c in costs)
