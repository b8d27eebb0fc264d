"""The building blocks of a space's networks, in context: what a latency table holds.

A network is cut into units, each keyed by what it is AND the input it meets there (channels,
resolution, stride), so one entry times exactly that work. `units(space, arch, shape)` lists
the units an architecture's network runs (the predictor sums their entries);
`all_units(space, shape)` every unit any architecture of the space can run (the profiler
times each once); `unit_module(key)` the module and input shape that time a key.

NB201 (C=16, N=5 as the benchmark): the stem; per stage s (channels C*2^s, side H/2^s) each
cell op (`nor_conv_1x1`, `nor_conv_3x3`, `avg_pool_3x3`; `skip_connect` and `none` run no
op), the sum of two node terms, the zero of a node without edges; the two reduction blocks;
the head (BN, ReLU, pooling, classifier). The edge position does not change an op's input
(every node has the cell's shape), so an op's entry is per stage, not per edge.

Macro: each block cut into the layers its placement runs at the block's input
(channels, side, stride): a conv together with the activation right after it (with the
BN folded in before the activation where `conv_norm_act` has batchnorm or no norm: the form
that runtimes fuse), else conv, norm and activation apart; the residual add and its 1x1
projection; the stem conv and the head (pooling and classifier at the last width).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from normnas.nn import make_norm
from normnas.spaces._macro_model import ACTIVATIONS, Block
from normnas.spaces._nb201_model import EDGES, ReLUConvBN, ResNetBasicblock, make_op
from normnas.spaces.base import Arch, SearchSpace

SPACES: tuple[str, ...] = ("nb201", "macro")
NB201_C, NB201_N = 16, 5
_NB201_OPS = ("nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def space_name(space: SearchSpace) -> str:
    name = getattr(space, "name", "")
    if name not in SPACES:
        raise ValueError(
            f"latency tables exist for the spaces {', '.join(SPACES)}, not {name or space!r}"
        )
    return name


# ---- NB201 --------------------------------------------------------------------------------
def _stages(shape: Sequence[int]) -> list[tuple[int, int]]:
    """(channels, side) of each NB201 stage."""
    side = shape[1]
    return [(NB201_C * 2**s, math.ceil(side / 2**s)) for s in range(3)]


def _nb201_fixed(shape: Sequence[int], classes: int) -> list[str]:
    (c0, h0), (c1, h1), (c2, h2) = _stages(shape)
    return [
        f"nb201.stem {shape[0]}>{c0} h{h0}",
        f"nb201.reduce {c0}>{c1} h{h0}",
        f"nb201.reduce {c1}>{c2} h{h1}",
        f"nb201.head c{c2} h{h2} k{classes}",
    ]


def _nb201_cell(
    arch: Sequence[str], c: int, h: int, in_const: bool = False, fold: bool = False
) -> tuple[list[str], bool]:
    """The units of one cell, and whether its output is a constant. With `fold` (ONNX
    Runtime folds constants and drops dead nodes when it loads a graph) a node without
    edges is a constant zero, an op of a constant and a sum of constants are folded away,
    and an op whose result never reaches the cell's output is dropped; without, every op
    runs, as in eager PyTorch."""
    terms = {node: [(op, src) for (dst, src), op in zip(EDGES, arch, strict=True)
                    if dst == node and op != "none"] for node in (1, 2, 3)}  # fmt: skip
    const = {0: in_const}
    for node in (1, 2, 3):
        const[node] = all(const[src] for _, src in terms[node]) if fold else False
    live = {0, 1, 2, 3}
    if fold:  # the nodes the output reads, through ops that are not folded
        live = {3}
        for node in (3, 2, 1):
            if node in live and not const[node]:
                live |= {src for _, src in terms[node] if not const[src]}
    out: list[str] = []
    for node in (1, 2, 3):
        if node not in live or (fold and const[node]):
            continue
        if not terms[node]:
            out.append(f"nb201.zeros c{c} h{h}")
            continue
        out += [f"nb201.op {op} c{c} h{h}" for op, src in terms[node]
                if op != "skip_connect" and not const[src]]  # fmt: skip
        acc = const[terms[node][0][1]]
        for _, src in terms[node][1:]:
            if not (acc and const[src]):  # a sum of two constants is folded
                out.append(f"nb201.add c{c} h{h}")
                acc = False
    return out, const[3]


# ---- macro --------------------------------------------------------------------------------
def _side(h: int, stride: int) -> int:
    return math.ceil(h / stride)  # a k x k conv with padding k // 2 (k odd), or a 1x1 one


def _conv(ci: int, co: int, k: int, s: int, h: int, act: str = "none") -> str:
    return f"macro.conv {ci}>{co} k{k} s{s} h{h} {act}"


def _macro_block(ci: int, h: int, stride: int, b: Block) -> list[str]:
    ho, co = _side(h, stride), b.width
    out: list[str] = []
    if b.placement == "conv_norm_act":
        if b.norm in ("batchnorm", "none"):  # BN folded into the conv: conv + act
            out.append(_conv(ci, co, b.kernel, stride, h, b.activation))
        else:
            out += [_conv(ci, co, b.kernel, stride, h), f"macro.norm {b.norm} c{co} h{ho}",
                    f"macro.act {b.activation} c{co} h{ho}"]  # fmt: skip
    elif b.placement == "conv_act_norm":
        out.append(_conv(ci, co, b.kernel, stride, h, b.activation))
        if b.norm != "none":
            out.append(f"macro.norm {b.norm} c{co} h{ho}")
    else:  # norm_act_conv: the norm and activation see the block's input
        if b.norm != "none":
            out.append(f"macro.norm {b.norm} c{ci} h{h}")
        out += [f"macro.act {b.activation} c{ci} h{h}", _conv(ci, co, b.kernel, stride, h)]
    if b.residual:
        if ci != co or stride != 1:
            out.append(f"macro.proj {ci}>{co} s{stride} h{h}")
        out.append(f"macro.add c{co} h{ho}")
    return out


def _macro_units(space: Any, arch: Any, shape: Sequence[int], classes: int) -> list[str]:
    c, h = shape[0], shape[1]
    out: list[str] = []
    if space.stem_width > 0:
        out.append(_conv(c, space.stem_width, 3, 1, h))
        c = space.stem_width
    for stage, spec in zip(arch.stages, space.stages, strict=True):
        for j, block in enumerate(stage):
            stride = spec.stride if j == 0 else 1
            out += _macro_block(c, h, stride, block)
            c, h = block.width, _side(h, stride)
    out.append(f"macro.head c{c} h{h} k{classes}")
    return out


def _macro_all(space: Any, shape: Sequence[int], classes: int) -> set[str]:
    c0, h = shape[0], shape[1]
    found: set[str] = set()
    if space.stem_width > 0:
        found.add(_conv(c0, space.stem_width, 3, 1, h))
        c0 = space.stem_width
    inputs = {c0}  # widths the next stage's first block can meet
    for i, spec in enumerate(space.stages):
        choices = space._field_choices(i)
        blocks = [
            Block(w, k, n, p, a, r)
            for w in choices["width"] for k in choices["kernel"] for n in choices["norm"]
            for p in choices["placement"] for a in choices["activation"]
            for r in choices["residual"]
        ]  # fmt: skip
        for j in range(spec.max_blocks):
            stride = spec.stride if j == 0 else 1
            ins = inputs if j == 0 else set(spec.widths)
            side = h if j == 0 else _side(h, spec.stride)
            for ci in ins:
                for b in blocks:
                    found.update(_macro_block(ci, side, stride, b))
        h = _side(h, spec.stride)
        inputs = set(spec.widths)
    for c in inputs:
        found.add(f"macro.head c{c} h{h} k{classes}")
    return found


# ---- both ---------------------------------------------------------------------------------
def units(
    space: SearchSpace, arch: Arch, shape: Sequence[int], classes: int, fold: bool = False
) -> list[str]:
    """The unit keys the network of `arch` runs, with repeats, in order; `fold`: as a
    runtime that folds constants runs it (see `_nb201_cell`)."""
    if space_name(space) != "nb201":
        return _macro_units(space, arch, shape, classes)
    stem, *reduce, head = _nb201_fixed(shape, classes)
    out = [stem]
    for s, (c, h) in enumerate(_stages(shape)):
        if s > 0:
            out.append(reduce[s - 1])
        cell, const = _nb201_cell(arch, c, h, False, fold)
        if const:  # the network's output is a constant: a runtime that folds runs nothing
            return []
        out += cell * NB201_N
    return [*out, head]


def all_units(space: SearchSpace, shape: Sequence[int], classes: int) -> list[str]:
    """Every unit key a network of the space can run, sorted."""
    if space_name(space) == "nb201":
        found = set(_nb201_fixed(shape, classes))
        for c, h in _stages(shape):
            found |= {f"nb201.op {op} c{c} h{h}" for op in _NB201_OPS}
            found |= {f"nb201.add c{c} h{h}", f"nb201.zeros c{c} h{h}"}
        return sorted(found)
    return sorted(_macro_all(space, shape, classes))


class _Add(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x


class _Zeros(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class _Head(nn.Sequential):
    """Pooling and classifier (after NB201's last BN and ReLU when `lastact`)."""

    def __init__(self, c: int, classes: int, lastact: bool) -> None:
        pre = [nn.BatchNorm2d(c), nn.ReLU()] if lastact else []
        super().__init__(*pre, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c, classes))


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.replace(">", " ").replace("h", " ").replace("c", " ")
            .replace("k", " ").replace("s", " ").split()]  # fmt: skip


def unit_module(key: str) -> tuple[nn.Module, tuple[int, int, int]]:
    """The module that runs unit `key`, and the shape (C, H, W) of one input sample."""
    kind, _, rest = key.partition(" ")
    parts = rest.split()
    if kind == "nb201.stem":
        ci, co, h = _ints(" ".join(parts))
        stem = nn.Sequential(nn.Conv2d(ci, co, 3, padding=1, bias=False), nn.BatchNorm2d(co))
        return stem, (ci, h, h)
    if kind == "nb201.reduce":
        ci, co, h = _ints(" ".join(parts))
        return ResNetBasicblock(ci, co), (ci, h, h)
    if kind == "nb201.head":
        c, h, k = _ints(" ".join(parts))
        return _Head(c, k, lastact=True), (c, h, h)
    if kind == "macro.head":
        c, h, k = _ints(" ".join(parts))
        return _Head(c, k, lastact=False), (c, h, h)
    if kind == "nb201.op":
        c, h = _ints(" ".join(parts[1:]))
        return make_op(parts[0], c), (c, h, h)
    if kind in ("nb201.add", "macro.add"):
        c, h = _ints(" ".join(parts))
        return _Add(), (c, h, h)
    if kind == "nb201.zeros":
        c, h = _ints(" ".join(parts))
        return _Zeros(), (c, h, h)
    if kind == "macro.conv":
        ci, co, k, s, h = _ints(" ".join(parts[:-1]))
        layers: list[nn.Module] = [nn.Conv2d(ci, co, k, stride=s, padding=k // 2)]
        if parts[-1] != "none":
            layers.append(ACTIVATIONS[parts[-1]]())
        return nn.Sequential(*layers), (ci, h, h)
    if kind == "macro.proj":
        ci, co, s, h = _ints(" ".join(parts))
        return nn.Conv2d(ci, co, 1, stride=s), (ci, h, h)
    if kind == "macro.norm":
        c, h = _ints(" ".join(parts[1:]))
        return make_norm(parts[0], c), (c, h, h)
    if kind == "macro.act":
        c, h = _ints(" ".join(parts[1:]))
        return ACTIVATIONS[parts[0]](), (c, h, h)
    raise ValueError(f"unknown latency unit {key!r}")


def iter_modules(keys: Sequence[str]) -> Iterator[tuple[str, nn.Module, tuple[int, int, int]]]:
    for key in keys:
        module, shape = unit_module(key)
        yield key, module.eval(), shape


__all__ = [
    "SPACES",
    "ReLUConvBN",
    "all_units",
    "iter_modules",
    "space_name",
    "unit_module",
    "units",
]  # fmt: skip
