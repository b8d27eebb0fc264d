"""The latency predictor: its sum over a space's blocks, the units covering the network, the
fitted correction, and tables refused when profiled for something else."""

from __future__ import annotations

import numpy as np
import pytest

from normnas.latency import LatencyPredictor, LatencyTable, LatencyTableError, Target
from normnas.latency.blocks import all_units, unit_module, units
from normnas.latency.predict import fit_correction
from normnas.latency.profile import table_key
from normnas.nn import fold_bn
from normnas.spaces import MacroSpace, NB201Space
from normnas.train import count_flops

SHAPE, CLASSES = (1, 8, 8), 10


def two_block_space() -> MacroSpace:
    """One stage of exactly two blocks, one choice each: the network is stem-free."""
    return MacroSpace(
        stages=[{"widths": [8], "min_blocks": 2, "max_blocks": 2, "stride": 1}],
        kernels=[3], norms=["batchnorm"], placements=["conv_norm_act"], activations=["relu"],
        residual=[False], dropout=[0.0], stem_width=0,
    )  # fmt: skip


def test_the_prediction_of_a_two_block_space_is_the_sum_of_its_entries_corrected():
    space = two_block_space()
    arch = space.sample(np.random.default_rng(0))
    first, second = "macro.conv 1>8 k3 s1 h8 relu", "macro.conv 8>8 k3 s1 h8 relu"
    head = "macro.head c8 h8 k10"
    # the blocks it can meet, and the ones its network runs: the two convs (BN folded) + head
    assert all_units(space, SHAPE, CLASSES) == sorted([first, second, head])
    assert units(space, arch, SHAPE, CLASSES) == [first, second, head]
    key = table_key(space, Target("torch"), SHAPE, CLASSES)
    entries = {first: 0.125, second: 0.25, head: 0.0625}
    table = LatencyTable(key, entries, fit={"scale": 1.0, "constant": 0.5})
    assert LatencyPredictor(table, space).predict(arch) == 0.125 + 0.25 + 0.0625 + 0.5
    table.fit = {"scale": 1.5, "constant": -0.25}
    assert LatencyPredictor(table, space).predict(arch) == 1.5 * (0.125 + 0.25 + 0.0625) - 0.25


@pytest.mark.parametrize("space", [NB201Space(), MacroSpace()], ids=["nb201", "macro"])
def test_the_units_of_a_network_do_its_whole_work(space):
    """Reference: the network's operations (BN folded, as every target runs it) equal the
    sum of its units' operations, so each piece of work has exactly one entry."""
    rng = np.random.default_rng(1)
    every = set(all_units(space, SHAPE, CLASSES))
    for _ in range(1):  # one arch: counting NB201's 17 cells takes seconds
        arch = space.sample(rng)
        keys = units(space, arch, SHAPE, CLASSES)
        assert set(keys) <= every
        net = fold_bn(space.build(arch, CLASSES, SHAPE[0]).eval())
        parts = sum(count_flops(fold_bn(unit_module(k)[0].eval()), unit_module(k)[1]) for k in keys)
        assert parts == count_flops(net, SHAPE)


def test_the_correction_is_a_constant_unless_the_sum_misses():
    sums = [1.0, 2.0, 3.0, 5.0]
    fit = fit_correction(sums, [s + 0.3 for s in sums])
    assert fit["kind"] == "constant" and fit["scale"] == 1.0
    assert fit["constant"] == pytest.approx(0.3)
    fit = fit_correction(sums, [2 * s + 1 for s in sums])  # the sum misses by half
    assert fit["kind"] == "scale+constant"
    assert (fit["scale"], fit["constant"]) == (pytest.approx(2.0), pytest.approx(1.0))


def test_a_table_of_another_target_or_thread_count_is_refused(tmp_path):
    space = two_block_space()
    path = LatencyTable(table_key(space, Target("torch"), SHAPE, CLASSES), {}).save(
        tmp_path / "t.json"
    )
    table = LatencyTable.read(path)
    table.check(table_key(space, Target("torch"), SHAPE, CLASSES))  # the same: accepted
    with pytest.raises(LatencyTableError, match=r"target torch \(wanted onnxruntime\)"):
        table.check(table_key(space, Target("onnxruntime"), SHAPE, CLASSES))
    with pytest.raises(LatencyTableError, match=r"threads 1 \(wanted 2\)$") as err:
        table.check(table_key(space, Target("torch", threads=2), SHAPE, CLASSES))
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_onnxruntime_units_are_the_nodes_onnxruntime_keeps(tmp_path):
    """Reference: ONNX Runtime's own optimized graph. A node without edges is a constant
    zero, the conv on it is folded and the cell's node that nothing reads is dropped: the
    convs, adds and pools it keeps are the units the predictor sums for it."""
    pytest.importorskip("onnxruntime")
    import io
    import warnings

    import onnx
    import onnxruntime as ort
    import torch

    space = NB201Space()
    # node 1: none (zero); node 2: avg pool of x (read by nobody); node 3: conv3x3(x) +
    # conv1x1(node 1, a constant) + node 2 through none -> one conv and one add per cell
    arch = ("none", "avg_pool_3x3", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_1x1", "none")
    keys = units(space, arch, SHAPE, CLASSES, fold=True)
    net = fold_bn(space.build(arch, CLASSES, SHAPE[0]).eval()).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, *SHAPE),), buffer, dynamo=False, opset_version=17)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    nodes = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    convs = sum(k.startswith(("nb201.op nor_conv", "nb201.stem")) for k in keys) + 3 * sum(
        k.startswith("nb201.reduce") for k in keys
    )  # a reduction block runs three convs
    assert nodes.count("Conv") == convs == 1 + 15 + 6
    assert nodes.count("Add") == sum(k.startswith("nb201.add") for k in keys) == 15
    assert nodes.count("AveragePool") == 2  # the reductions' only: the cells' pool is dead
    assert len(units(space, arch, SHAPE, CLASSES)) > len(keys)  # eager runs all of them
