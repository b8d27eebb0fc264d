"""The network NAS-Bench-201 trained for a cell (its `TinyNetwork` / `InferCell`), rebuilt.

Written from the benchmark's published model description: a 3x3 conv stem + BN, three
stages of N cells with C, 2C, 4C channels joined by residual reduction blocks, then BN,
ReLU, global average pooling and a linear classifier. Ops are ReLU -> Conv -> BN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

# (destination node, source node) of each edge, in the benchmark's string order
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BN, the benchmark's convolution op."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int = 1
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
        )


def make_op(name: str, channels: int) -> nn.Module:
    """One cell edge's op at stride 1 with equal in/out channels (all a normal cell needs)."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        # C_in == C_out in a normal cell, so the benchmark's POOLING has no 1x1 preprocess
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"no module for op {name!r}")


class InferCell(nn.Module):
    """node_i = sum of op(node_j) over its edges; output = node 3. 'none' edges are left out."""

    def __init__(self, arch: Sequence[str], channels: int) -> None:
        super().__init__()
        self.edges = [
            (dst, src) for (dst, src), op in zip(EDGES, arch, strict=True) if op != "none"
        ]
        self.ops = nn.ModuleList(make_op(op, channels) for op in arch if op != "none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor] = [x]
        for node in (1, 2, 3):
            terms = [
                op(nodes[src])
                for (dst, src), op in zip(self.edges, self.ops, strict=True)
                if dst == node
            ]
            # a node with no incoming edge is zero, as the benchmark's Zero ops make it
            total = torch.zeros_like(x) if not terms else terms[0]
            for term in terms[1:]:
                total = total + term
            nodes.append(total)
        return nodes[3]


class ResNetBasicblock(nn.Module):
    """The benchmark's reduction block: two ReLUConvBN 3x3 (first stride 2) + avgpool/1x1 skip."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def skeleton(
    C: int, N: int, in_channels: int, make_cell: Callable[[int], nn.Module]
) -> tuple[nn.Sequential, list[nn.Module], int]:
    """The benchmark's macro skeleton: stem, then N cells per stage (`make_cell(channels)`)
    with a ResNet reduction block between stages; returns (stem, cells, last channels)."""
    stem = nn.Sequential(
        nn.Conv2d(in_channels, C, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(C)
    )
    channels = [C] * N + [2 * C] + [2 * C] * N + [4 * C] + [4 * C] * N
    reductions = [False] * N + [True] + [False] * N + [True] + [False] * N
    cells: list[nn.Module] = []
    c_prev = C
    for c_out, reduction in zip(channels, reductions, strict=True):
        cells.append(ResNetBasicblock(c_prev, c_out) if reduction else make_cell(c_out))
        c_prev = c_out
    return stem, cells, c_prev


class NB201Network(nn.Module):
    """NAS-Bench-201's TinyNetwork for one cell."""

    def __init__(
        self,
        arch: Sequence[str],
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.arch = tuple(arch)
        self.stem, cells, c_prev = skeleton(C, N, in_channels, lambda c: InferCell(arch, c))
        self.cells = nn.Sequential(*cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.global_pooling(x).flatten(1))
