"""Torch modules of MacroSpace networks: a stem, a chain of conv blocks, a pooling head."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from normnas.nn import make_norm

PLACEMENTS: tuple[str, ...] = ("conv_norm_act", "conv_act_norm", "norm_act_conv")
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


@dataclass(frozen=True)
class Block:
    """The choices of one conv block."""

    width: int
    kernel: int
    norm: str
    placement: str
    activation: str
    residual: bool


@dataclass(frozen=True)
class MacroArch:
    """A MacroSpace architecture: the active blocks of each stage and the head's dropout.

    Skipped blocks are not stored, so two encodings that differ only in the choices of
    skipped blocks are the same value (equal and equally hashed).
    """

    stages: tuple[tuple[Block, ...], ...]
    dropout: float = 0.0


class ConvBlock(nn.Module):
    """conv / norm / activation in the chosen order, plus an optional residual connection."""

    def __init__(self, c_in: int, block: Block, stride: int) -> None:
        super().__init__()
        c_out, k = block.width, block.kernel
        has_norm = block.norm != "none"

        def conv(bias: bool) -> nn.Conv2d:
            return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=bias)

        act = ACTIVATIONS[block.activation]
        layers: list[nn.Module]
        if block.placement == "conv_norm_act":
            # a norm right after the conv makes the conv's bias redundant
            layers = [conv(bias=not has_norm), make_norm(block.norm, c_out), act()]
        elif block.placement == "conv_act_norm":
            layers = [conv(bias=True), act(), make_norm(block.norm, c_out)]
        elif block.placement == "norm_act_conv":
            # pre-activation: the norm sees the block's input channels
            layers = [make_norm(block.norm, c_in), act(), conv(bias=True)]
        else:
            raise ValueError(f"placement {block.placement!r} is not one of {list(PLACEMENTS)}")
        self.body = nn.Sequential(*(m for m in layers if not isinstance(m, nn.Identity)))
        self.shortcut: nn.Module | None = None
        if block.residual:
            same_shape = c_in == c_out and stride == 1
            self.shortcut = (
                nn.Identity() if same_shape else nn.Conv2d(c_in, c_out, 1, stride=stride)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out if self.shortcut is None else out + self.shortcut(x)


class MacroNetwork(nn.Module):
    """stem conv -> stages of ConvBlocks (first block of each stage strided) -> pool -> linear."""

    def __init__(
        self,
        arch: MacroArch,
        strides: Sequence[int],
        stem_width: int,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.arch = arch
        c = in_channels
        # the stem is a plain conv (no norm): the norm of every block stays the searched one
        self.stem: nn.Module = nn.Identity()
        if stem_width > 0:
            self.stem = nn.Conv2d(in_channels, stem_width, 3, padding=1)
            c = stem_width
        blocks: list[nn.Module] = []
        for stage, stride in zip(arch.stages, strides, strict=True):
            for j, block in enumerate(stage):
                blocks.append(ConvBlock(c, block, stride if j == 0 else 1))
                c = block.width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(arch.dropout) if arch.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(x))).flatten(1)
        return self.classifier(self.dropout(x))
