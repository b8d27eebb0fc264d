"""NAS-Bench-201 space: encoding, benchmark order, exact network, equivalence, moves."""

from __future__ import annotations

import csv
import gzip
from importlib import resources

import numpy as np
import optuna
import pytest
import torch

from normnas.spaces import OPS, NB201Space, SearchSpace

ALL_3X3 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|"
    + "|".join(f"nor_conv_3x3~{i}" for i in range(3))
    + "|"
)
RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
space = NB201Space()


def _packaged_rows() -> list[str]:
    path = resources.files("normnas") / "bench" / "data" / "nb201_cifar10.csv.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt", newline="") as f:
        return [row["arch"] for row in csv.DictReader(f)]


def test_is_a_search_space() -> None:
    assert isinstance(space, SearchSpace)
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def test_all_is_the_benchmark_index_order_and_strings_round_trip() -> None:
    rows = _packaged_rows()
    archs = space.all()
    assert len(rows) == len(archs) == len(space) == 15_625
    assert len(set(archs)) == 15_625
    for i, (arch, row) in enumerate(zip(archs, rows, strict=True)):
        assert space.to_str(arch) == row, i
        assert space.from_str(row) == arch
        assert space.index(arch) == i


def test_string_edge_order() -> None:
    arch = space.from_str(RESNET)
    assert arch == ("nor_conv_3x3", "none", "nor_conv_3x3", "skip_connect", "none", "skip_connect")
    assert space.to_params(arch)["edge_2<-1"] == "nor_conv_3x3"
    assert space.to_params(arch)["edge_3<-2"] == "skip_connect"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "|none~0|+|none~0|none~1|",
        "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
    ],
)
def test_from_str_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="nb201"):
        space.from_str(text)


# Hand formula, C=16, N=5, 10 classes, RGB input (parameters; the benchmark reports /1e6):
#   ReLUConvBN(c, c, k) = k*k*c*c + 2c   (conv without bias + BN gamma/beta)
#   nor_conv_3x3 per cell: 9c^2+2c -> 2,336 (c=16), 9,280 (c=32), 36,992 (c=64)
#     x 5 cells per stage: 5 * (2,336 + 9,280 + 36,992) = 243,040 per 3x3 edge
#   nor_conv_1x1 per cell: c^2+2c -> 288, 1,088, 4,224; x 5 = 28,000 per 1x1 edge
#   none / skip_connect / avg_pool_3x3: 0
#   stem: 3*16*9 + 2*16 = 464
#   reduction 16->32: 9*16*32+64 + 9*32*32+64 + 16*32 = 4,672 + 9,280 + 512 = 14,464
#   reduction 32->64: 9*32*64+128 + 9*64*64+128 + 32*64 = 18,560 + 36,992 + 2,048 = 57,600
#   lastact BN(64): 128; classifier 64*10 + 10 = 650
#   fixed part: 464 + 14,464 + 57,600 + 128 + 650 = 73,306
FIXED = 464 + (4_672 + 9_280 + 512) + (18_560 + 36_992 + 2_048) + 128 + 650
CONV3 = 5 * ((9 * 16**2 + 32) + (9 * 32**2 + 64) + (9 * 64**2 + 128))
CONV1 = 5 * ((16**2 + 32) + (32**2 + 64) + (64**2 + 128))
HAND_COUNTS = {
    # all-none: the benchmark's smallest, 0.073306 MB
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|": FIXED,
    # ResNet-like: two 3x3 convs, 0.559386 MB in the benchmark
    RESNET: FIXED + 2 * CONV3,
    # all 3x3: the benchmark's largest, 1.531546 MB
    ALL_3X3: FIXED + 6 * CONV3,
    # mixed: 1x1 x2, 3x3 x1, skip, pool, none
    "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|": (
        FIXED + CONV3 + 2 * CONV1
    ),
}


def test_hand_formula_constants_match_the_benchmark_figures() -> None:
    assert (FIXED, CONV3, CONV1) == (73_306, 243_040, 28_000)
    assert round(FIXED / 1e6, 6) == 0.073306
    assert round((FIXED + 2 * CONV3) / 1e6, 6) == 0.559386
    assert round((FIXED + 6 * CONV3) / 1e6, 6) == 1.531546


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("text", list(HAND_COUNTS))
def test_built_network_has_the_hand_counted_parameters(text: str) -> None:
    arch = space.from_str(text)
    assert _count(space.build(arch)) == HAND_COUNTS[text]
    assert space.param_count(arch) == HAND_COUNTS[text]


def test_param_count_formula_matches_built_networks() -> None:
    rng = np.random.default_rng(0)
    for _ in range(12):
        arch = space.sample(rng)
        assert space.param_count(arch) == _count(space.build(arch))
    arch = space.from_str(RESNET)
    kwargs = {"C": 8, "N": 2, "num_classes": 7, "in_channels": 1}
    assert space.param_count(arch, **kwargs) == _count(space.build(arch, **kwargs))


def test_op_count_formula_matches_counting_the_built_networks() -> None:
    from normnas.train.cost import count_ops

    # small networks (C=4, N=2 on 8 x 8): counting the full-size one takes seconds
    small = {"C": 4, "N": 2, "num_classes": 7, "in_channels": 1}
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(10)]
    archs += [("none",) * 6, space.from_str(RESNET), space.from_str(ALL_3X3)]
    for arch in archs:  # none edges, zero nodes, every op
        ops = count_ops(space.build(arch, **small), (1, 8, 8))
        assert space.op_count(arch, **small, image_size=8) == (ops.flops, ops.macs), arch
    # the benchmark's size: the MACs of a cell without convs (7,783,040, see test_cost) ...
    flops, macs = space.op_count(("skip_connect",) * 6)
    assert macs == 7_783_040
    # ... and its other work: stem BN; per skip cell 3 node adds; two reduction blocks
    # (ReLU in and out, 2 BN, a 2x2 pool, the add); head BN, ReLU and global pool
    stem = 16 * 32 * 32
    cells = 5 * 3 * (16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8)
    reductions = sum(
        c_in * hw * hw + 4 * c_out * (hw // 2) ** 2 + 4 * c_in * (hw // 2) ** 2
        for c_in, c_out, hw in ((16, 32, 32), (32, 64, 16))
    )
    assert flops - macs == stem + cells + reductions + 3 * 64 * 8 * 8


def test_network_structure_and_forward() -> None:
    model = space.build(space.from_str(RESNET), num_classes=7, in_channels=1, C=8, N=1)
    model.train()
    out = model(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 7)
    out.sum().backward()
    empty = space.build(("none",) * 6, C=8, N=1)
    assert empty(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    # benchmark layout: stem conv has no bias, ops are ReLU -> Conv -> BN
    assert model.stem[0].bias is None
    first_cell = model.cells[0]
    assert [type(m).__name__ for m in first_cell.ops[0]] == ["ReLU", "Conv2d", "BatchNorm2d"]
    assert type(model.cells[1]).__name__ == "ResNetBasicblock"


def test_cell_computes_the_sum_of_its_edges() -> None:
    arch = ("skip_connect", "skip_connect", "skip_connect", "none", "none", "skip_connect")
    cell = space.build(arch, C=4, N=1).cells[0]
    x = torch.randn(2, 4, 5, 5)
    # node1 = x, node2 = x + node1 = 2x, node3 = node2
    torch.testing.assert_close(cell(x), 2 * x)
    pool = ("avg_pool_3x3", "none", "none", "none", "skip_connect", "none")
    cell = space.build(pool, C=4, N=1).cells[0]
    expected = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    torch.testing.assert_close(cell(x), expected)


def _s(text: str) -> tuple[str, ...]:
    return space.from_str(text)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # node 1 and 2 swapped (no 2<-1 edge)
        (
            "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|",
            "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|",
        ),
        # edge into node 1 whose output reaches nothing is dead
        (
            "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|",
            "|none~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|",
        ),
        # edge out of node 2 whose input is zero is dead
        (
            "|none~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
            "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
        ),
        # output disconnected: everything is none
        (
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|",
            "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        ),
        # a skip_connect path merges: x + conv(x) both ways
        (
            "|nor_conv_3x3~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
            "|skip_connect~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
        ),
        # dead + swap together
        (
            "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|",
            "|none~0|+|avg_pool_3x3~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        ),
    ],
)
def test_equivalent_cells_share_a_canonical_form(a: str, b: str) -> None:
    assert _s(a) != _s(b)
    assert space.canonical(_s(a)) == space.canonical(_s(b))
    assert space.canonical(space.canonical(_s(a))) == space.canonical(_s(a))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # with a 2<-1 edge, nodes 1 and 2 are not interchangeable
        (
            "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|",
            "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|",
        ),
        # x + x is not x
        (
            "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
            "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
        ),
        # an op on a sum is not the sum of the op
        (
            "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|none~0|none~1|nor_conv_3x3~2|",
            "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_3x3~0|none~1|nor_conv_3x3~2|",
        ),
        # swapping only the inputs (not the outputs) of nodes 1 and 2 changes the function
        (
            "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|",
            "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|",
        ),
        # different ops on the same live edge
        (RESNET, RESNET.replace("nor_conv_3x3~1", "nor_conv_1x1~1")),
    ],
)
def test_different_cells_keep_different_canonical_forms(a: str, b: str) -> None:
    assert space.canonical(_s(a)) != space.canonical(_s(b))


def test_canonical_over_the_whole_space() -> None:
    archs = space.all()
    classes = {space.canonical(a) for a in archs}
    # every representative is its own canonical form and is a member of the space
    assert all(space.canonical(c) == c for c in classes)
    assert space.canonical(("none",) * 6) in classes
    # x + conv(conv(x)): the representative moves the chain to nodes 0 -> 2 -> 3
    assert space.canonical(_s(RESNET)) == _s(
        "|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    )
    assert len(classes) == 4_930


def _benchmark_unique_str(arch: tuple[str, ...]) -> str:
    """NAS-Bench-201's CellStructure.to_unique_str(consider_zero=True), restated."""
    nodes = {0: "0"}
    edges = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    for node in (1, 2, 3):
        terms = []
        for (dst, src), op in zip(edges, arch, strict=True):
            if dst != node:
                continue
            if op == "none" or nodes[src] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(nodes[src])
            else:
                terms.append(f"({nodes[src]})@{op}")
        nodes[node] = "+".join(sorted(terms))
    return nodes[3]


def test_canonical_merges_everything_the_benchmark_merges() -> None:
    ours: dict[str, set[tuple[str, ...]]] = {}
    for arch in space.all():
        ours.setdefault(_benchmark_unique_str(arch), set()).add(space.canonical(arch))
    assert len(ours) == 6_466  # the benchmark's published count of unique cells
    assert all(len(reps) == 1 for reps in ours.values())


def test_mutate_changes_exactly_one_edge() -> None:
    rng = np.random.default_rng(1)
    seen_edges = set()
    for _ in range(300):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        diff = [k for k in range(6) if arch[k] != child[k]]
        assert len(diff) == 1
        assert child[diff[0]] in OPS
        seen_edges.add(diff[0])
    assert seen_edges == set(range(6))


def test_neighbors_are_the_24_one_edge_changes() -> None:
    arch = _s(RESNET)
    neighbors = space.neighbors(arch)
    assert len(neighbors) == len(set(neighbors)) == 24
    assert arch not in neighbors
    assert all(sum(x != y for x, y in zip(arch, n, strict=True)) == 1 for n in neighbors)


def test_sample_covers_the_ops_and_is_seeded() -> None:
    a = [space.sample(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(3)
    assert {op for _ in range(50) for op in space.sample(rng)} == set(OPS)


def test_suggest_through_optuna_and_params_round_trip() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    arch = space.suggest(trial)
    assert set(trial.params) == set(space.distributions())
    assert list(space.distributions()) == [
        "edge_1<-0",
        "edge_2<-0",
        "edge_2<-1",
        "edge_3<-0",
        "edge_3<-1",
        "edge_3<-2",
    ]
    assert space.from_params(trial.params) == arch
    fixed = study.ask(fixed_distributions=space.distributions())
    assert fixed is not None
    for a in space.all()[:200]:
        assert space.from_params(space.to_params(a)) == a
    # a whole architecture can be enqueued through to_params
    study.enqueue_trial(space.to_params(_s(RESNET)))
    assert space.suggest(study.ask()) == _s(RESNET)


def test_bad_params_name_the_field() -> None:
    params = space.to_params(_s(RESNET))
    with pytest.raises(ValueError, match=r"edge_3<-2.*not one of"):
        space.from_params({**params, "edge_3<-2": "conv"})
    with pytest.raises(ValueError, match="missing parameter 'edge_1<-0'"):
        space.from_params({k: v for k, v in params.items() if k != "edge_1<-0"})
    with pytest.raises(ValueError, match="unknown parameter 'edge_4<-0'"):
        space.from_params({**params, "edge_4<-0": "none"})
    with pytest.raises(ValueError, match="6 op names"):
        space.to_str(("none",) * 5)


def test_size_counts_the_equivalence_classes_not_the_cells():
    space = NB201Space()
    classes = {space.canonical(a) for a in space.all()}
    assert space.size() == len(classes) == 4930 and len(space) == 15_625
