"""NAS-Bench-201's cell space: 4 nodes, 6 edges, 5 ops, 15,625 cells, in the benchmark's order."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from torch import nn

from normnas.spaces._choices import categorical_distributions, check_params, suggest_all
from normnas.spaces._nb201_model import EDGES, NB201Network

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
PARAM_NAMES: tuple[str, ...] = tuple(f"edge_{dst}<-{src}" for dst, src in EDGES)
NB201Arch = tuple[str, str, str, str, str, str]

# NAS-Bench-201 made its index by shuffling the nested product of the edges (last edge
# fastest) with Python's `random.seed(88)`; a private Random(88) replays that shuffle.
_INDEX_SEED = 88
_STR_PATTERN = re.compile(r"^\|(\w+)~0\|\+\|(\w+)~0\|(\w+)~1\|\+\|(\w+)~0\|(\w+)~1\|(\w+)~2\|$")


@cache
def _all_archs() -> tuple[NB201Arch, ...]:
    archs: list[NB201Arch] = list(itertools.product(OPS, repeat=6))  # type: ignore[arg-type]
    random.Random(_INDEX_SEED).shuffle(archs)
    return tuple(archs)


@cache
def _index_of() -> dict[NB201Arch, int]:
    return {arch: i for i, arch in enumerate(_all_archs())}


def _expression(arch: Sequence[str]) -> str:
    """The output of the cell as a string expression of the input `x` (see `canonical`).

    Each node is a sorted multiset of terms (empty: zero). A skip_connect adds its source's
    terms (sums are associative), any other op adds one term `op(source)`, where a source of
    several terms is written `[a+b]`.
    """
    nodes: list[list[str]] = [["x"]]
    for node in (1, 2, 3):
        terms: list[str] = []
        for (dst, src), op in zip(EDGES, arch, strict=True):
            if dst != node or op == "none" or not nodes[src]:
                continue
            if op == "skip_connect":
                terms.extend(nodes[src])
            else:
                inner = nodes[src]
                terms.append(
                    f"{op}({inner[0] if len(inner) == 1 else '[' + '+'.join(inner) + ']'})"
                )
        nodes.append(sorted(terms))
    return "+".join(nodes[3])


@cache
def _canonical_table() -> dict[NB201Arch, NB201Arch]:
    # product() yields archs in increasing op-index order: the first of a class is its smallest
    best: dict[str, NB201Arch] = {}
    table: dict[NB201Arch, NB201Arch] = {}
    for arch in itertools.product(OPS, repeat=6):
        table[arch] = best.setdefault(_expression(arch), arch)  # type: ignore[arg-type]
    return table


@cache
def _class_count() -> int:
    return len(set(_canonical_table().values()))


def _op_params(op: str, channels: int) -> int:
    """Parameters of one normal-cell op: ReLUConvBN has k*k*C*C conv weights + 2C BN affine."""
    if op == "nor_conv_1x1":
        return channels * channels + 2 * channels
    if op == "nor_conv_3x3":
        return 9 * channels * channels + 2 * channels
    return 0  # none, skip_connect, avg_pool_3x3 (no 1x1 preprocess when C_in == C_out)


def _reduction_params(c_in: int, c_out: int) -> int:
    """ResNetBasicblock: conv_a 3x3 + BN, conv_b 3x3 + BN, 1x1 downsample conv (no bias)."""
    return (9 * c_in * c_out + 2 * c_out) + (9 * c_out * c_out + 2 * c_out) + c_in * c_out


def _cell_ops(arch: Sequence[str], c: int, hw: int) -> tuple[int, int]:
    """(multiply-adds, other ops) of one normal cell at c channels, hw x hw, counted as
    `normnas.train.cost.count_ops` counts them: a ReLUConvBN k x k is k*k*c MACs per output
    element plus a ReLU and a BN (1 each); a 3x3 avg pool 9 per element; skip and none
    nothing; a node summing t > 1 terms t - 1 adds per element."""
    e = c * hw * hw
    macs = other = 0
    for op in arch:
        if op in ("nor_conv_1x1", "nor_conv_3x3"):
            macs += (9 if op == "nor_conv_3x3" else 1) * c * e
            other += 2 * e
        elif op == "avg_pool_3x3":
            other += 9 * e
    for node in (1, 2, 3):
        terms = sum(op != "none" for (dst, _), op in zip(EDGES, arch, strict=True) if dst == node)
        other += max(terms - 1, 0) * e
    return macs, other


def _reduction_ops(c_in: int, c_out: int, hw: int) -> tuple[int, int]:
    """(multiply-adds, other ops) of a ResNetBasicblock from hw x hw to hw/2 x hw/2: ReLU,
    conv 3x3 s2, BN; ReLU, conv 3x3, BN; 2x2 avg pool and 1x1 conv; the residual add."""
    e_in, out = c_in * hw * hw, (hw // 2) ** 2
    e_out = c_out * out
    macs = 9 * c_in * e_out + 9 * c_out * e_out + c_in * e_out
    other = (e_in + e_out) + 2 * e_out + 4 * c_in * out + e_out  # ReLUs, BNs, pool, add
    return macs, other


class NB201Space:
    """The NAS-Bench-201 cell space.

    An architecture is a tuple of 6 op names in edge order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1,
    3<-2), the order of the benchmark's string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.
    Optuna parameters are `edge_1<-0` ... `edge_3<-2`, each categorical over `OPS`.
    """

    name = "nb201"
    ops = OPS
    param_names = PARAM_NAMES

    # -- encoding ---------------------------------------------------------------------------
    def validate(self, arch: Sequence[str]) -> NB201Arch:
        """The arch as a tuple; ValueError when it is not 6 known op names."""
        if isinstance(arch, str) or len(arch) != len(EDGES):
            raise ValueError(f"nb201: an arch is 6 op names in edge order, got {arch!r}")
        for name, op in zip(PARAM_NAMES, arch, strict=True):
            if op not in OPS:
                raise ValueError(f"nb201: {name}={op!r} is not one of {list(OPS)}")
        return tuple(arch)  # type: ignore[return-value]

    def distributions(self) -> dict[str, BaseDistribution]:
        return categorical_distributions(self._choices())

    def suggest(self, trial: optuna.Trial) -> NB201Arch:
        return self.from_params(suggest_all(trial, self._choices()))

    def from_params(self, params: Mapping[str, Any]) -> NB201Arch:
        check_params(self.name, params, self._choices())
        return tuple(params[name] for name in PARAM_NAMES)  # type: ignore[return-value]

    def to_params(self, arch: Sequence[str]) -> dict[str, Any]:
        return dict(zip(PARAM_NAMES, self.validate(arch), strict=True))

    def to_str(self, arch: Sequence[str]) -> str:
        a = self.validate(arch)
        return f"|{a[0]}~0|+|{a[1]}~0|{a[2]}~1|+|{a[3]}~0|{a[4]}~1|{a[5]}~2|"

    def from_str(self, text: str) -> NB201Arch:
        match = _STR_PATTERN.match(text.strip())
        if match is None:
            raise ValueError(
                f"nb201: {text!r} is not of the form |op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
            )
        return self.validate(match.groups())

    # -- the benchmark's index ----------------------------------------------------------------
    def all(self) -> list[NB201Arch]:
        """All 15,625 cells in NAS-Bench-201 index order."""
        return list(_all_archs())

    def index(self, arch: Sequence[str]) -> int:
        """NAS-Bench-201 index of the cell (its row in the benchmark's tables)."""
        return _index_of()[self.validate(arch)]

    @property
    def min_image_size(self) -> int:
        """Smallest input side keeping every feature map at least 2x2, as MacroSpace does: the
        two stride-2 reduction blocks take 8 to 2 (a 1x1 map fails BN on a batch of one, and
        below 4 the reductions' 2x2 pooling has nothing to pool)."""
        return 8

    def __len__(self) -> int:
        return len(OPS) ** len(EDGES)

    def size(self) -> int:
        """How many architectures the space holds: distinct ones under `canonical` (4,930 of
        the 15,625 cells, which `len` counts: the benchmark's rows)."""
        return _class_count()

    # -- sampling and moves ------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> NB201Arch:
        return tuple(OPS[i] for i in rng.integers(len(OPS), size=len(EDGES)))  # type: ignore[return-value]

    def mutate(self, arch: Sequence[str], rng: np.random.Generator) -> NB201Arch:
        """Change one edge to one of the 4 other ops, uniformly."""
        a = list(self.validate(arch))
        edge = int(rng.integers(len(EDGES)))
        others = [op for op in OPS if op != a[edge]]
        a[edge] = others[int(rng.integers(len(others)))]
        return tuple(a)  # type: ignore[return-value]

    def neighbors(self, arch: Sequence[str]) -> list[NB201Arch]:
        """The 6 x 4 = 24 cells that differ from `arch` on exactly one edge."""
        a = self.validate(arch)
        return [
            (*a[:edge], op, *a[edge + 1 :])  # type: ignore[misc]
            for edge in range(len(EDGES))
            for op in OPS
            if op != a[edge]
        ]

    # -- equivalence -------------------------------------------------------------------------
    def canonical(self, arch: Sequence[str]) -> NB201Arch:
        """One representative per class of cells computing the same function.

        Two cells are equivalent when their output nodes compute the same expression of the
        input x, built node by node: a 'none' edge contributes nothing, 'skip_connect'
        passes its source's terms through, any other op wraps its source
        (`nor_conv_3x3(e)`), and a node is the multiset (an associative, commutative sum)
        of its incoming terms; a node with no terms is zero and an op applied to zero is
        zero. Consequences: edges that cannot reach the output, or whose input is
        disconnected from x, act as 'none'; nodes 1 and 2 are interchangeable when no edge
        joins them; an all-'none' or disconnected cell is the zero cell; paths that differ
        only by where a skip_connect sits merge (x + conv(conv(x)) is one class however it
        is wired). Ops are not assumed linear (avg_pool of a sum stays one term).

        The 15,625 cells fall into 4,930 classes. This merges everything NAS-Bench-201's
        own `to_unique_str(consider_zero=True)` merges (6,466 classes) and more: that
        string keeps a node whose inputs are all zero as non-zero downstream and does not
        flatten nested sums. The representative is the class member that is smallest by
        op indices in `OPS` (so dead edges are 'none' in it). Strictly, a conv on a zero
        input still emits its BN's learned shift; as the benchmark does, we count it zero.
        """
        return _canonical_table()[self.validate(arch)]

    # -- the network -------------------------------------------------------------------------
    def build(
        self,
        arch: Sequence[str],
        num_classes: int = 10,
        in_channels: int = 3,
        C: int = 16,
        N: int = 5,
    ) -> nn.Module:
        """The network the benchmark trained for this cell (its TinyNetwork)."""
        return NB201Network(
            self.validate(arch), C=C, N=N, num_classes=num_classes, in_channels=in_channels
        )

    def param_count(
        self,
        arch: Sequence[str],
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> int:
        """Parameters of `build(arch, ...)`, computed by formula without building anything.

        Stem (3x3 conv + BN) + N cells per stage at C, 2C, 4C + two reduction blocks +
        final BN + linear. Divide by 1e6 for the benchmark's 'params (MB)' figure.
        """
        a = self.validate(arch)
        stem = 9 * in_channels * C + 2 * C
        cells = N * sum(_op_params(op, w) for w in (C, 2 * C, 4 * C) for op in a)
        reductions = _reduction_params(C, 2 * C) + _reduction_params(2 * C, 4 * C)
        head = 2 * (4 * C) + 4 * C * num_classes + num_classes
        return stem + cells + reductions + head

    def op_count(
        self,
        arch: Sequence[str],
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
    ) -> tuple[int, int]:
        """(FLOPs, MACs) of one forward pass of `build(arch, ...)` on one image_size x
        image_size sample, by formula: what `normnas.train.cost.count_ops` counts on the
        built network (its `flops` and `macs`), without building it. The defaults are the
        benchmark's: CIFAR-10 at 32 x 32 (the packaged table's data).
        """
        a = self.validate(arch)
        hw = image_size
        macs, other = 9 * in_channels * C * hw * hw, C * hw * hw  # stem conv 3x3, BN
        for stage, c in enumerate((C, 2 * C, 4 * C)):
            if stage:
                m, o = _reduction_ops(c // 2, c, hw)
                macs, other, hw = macs + m, other + o, hw // 2
            m, o = _cell_ops(a, c, hw)
            macs, other = macs + N * m, other + N * o
        e_last = 4 * C * hw * hw
        macs += 4 * C * num_classes  # the linear classifier (its bias not counted)
        other += 3 * e_last  # BN, ReLU, global average pool
        return macs + other, macs

    def _choices(self) -> dict[str, tuple[str, ...]]:
        return dict.fromkeys(PARAM_NAMES, OPS)
