"""Torch modules of SeqSpace networks on (N, C, T) sequences: a stem, stages of residual
1-D conv blocks and transformer encoder blocks, global average pooling, a linear head.

Every norm comes from `make_norm(name, C, dims=1)`, so LayerNorm and RMSNorm normalize the
channels at each time step, BatchNorm each channel over the batch and time, GroupNorm
groups of channels over time.

Placements (one vocabulary for both kinds; `f` is a block's branch, `x` its input):

- conv block, branch conv -> act (ReLU) with the norm placed
  `post` conv -> norm -> act, `pre` norm -> conv -> act, `post_act` conv -> act -> norm;
  out = x + branch(x) (a 1x1 conv on the shortcut when the width changes).
- transformer block, sub-layers f = self-attention, then an MLP (1x1 conv, GELU, 1x1 conv):
  `post` x = norm(x + f(x)) (the original Transformer), `pre` x = x + f(norm(x)) (pre-LN),
  `post_act` x = x + norm(f(x)) (the norm closes the branch, as conv -> act -> norm does).
  A 1x1 conv projects the input first when the width changes; the first transformer block
  of a network adds sinusoidal position codes to its input (attention alone cannot tell
  the order of the time steps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from normnas.nn import make_norm

KINDS: tuple[str, ...] = ("conv", "attn")
SEQ_PLACEMENTS: tuple[str, ...] = ("post", "pre", "post_act")


@dataclass(frozen=True)
class SeqBlock:
    """The choices of one block; the other kind's fields are 0 (so equal blocks are equal)."""

    kind: str
    width: int
    norm: str
    placement: str
    kernel: int = 0
    dilation: int = 0
    heads: int = 0
    mlp_ratio: int = 0


@dataclass(frozen=True)
class SeqArch:
    """A SeqSpace architecture: the active blocks of each stage and the head's dropout."""

    stages: tuple[tuple[SeqBlock, ...], ...]
    dropout: float = 0.0


def _norm(name: str, channels: int) -> nn.Module:
    return make_norm(name, channels, dims=1)


class ConvSeqBlock(nn.Module):
    """Residual 1-D conv block: x + branch(x) with the norm where `placement` puts it."""

    def __init__(self, c_in: int, block: SeqBlock) -> None:
        super().__init__()
        w, k, d = block.width, block.kernel, block.dilation
        has_norm = block.norm != "none"

        def conv(bias: bool) -> nn.Conv1d:
            return nn.Conv1d(c_in, w, k, dilation=d, padding=d * (k // 2), bias=bias)

        layers: list[nn.Module]
        if block.placement == "post":
            # a norm right after the conv makes the conv's bias redundant
            layers = [conv(bias=not has_norm), _norm(block.norm, w), nn.ReLU()]
        elif block.placement == "pre":
            layers = [_norm(block.norm, c_in), conv(bias=True), nn.ReLU()]
        elif block.placement == "post_act":
            layers = [conv(bias=True), nn.ReLU(), _norm(block.norm, w)]
        else:
            raise ValueError(f"placement {block.placement!r} is not one of {list(SEQ_PLACEMENTS)}")
        self.body = nn.Sequential(*(m for m in layers if not isinstance(m, nn.Identity)))
        self.shortcut: nn.Module = nn.Identity() if c_in == w else nn.Conv1d(c_in, w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the time steps of (N, C, T), written out: 1x1 convs
    for q, k, v and the output, softmax(q k^T / sqrt(d)) v per head. Plain ops so the FLOP
    counter, the zero-cost proxies (they see the 1x1 convs) and ONNX all read it."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"attention: heads={heads} must divide width={width}")
        self.heads = heads
        self.qkv = nn.Conv1d(width, 3 * width, 1)
        self.out = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t = x.shape
        d = c // self.heads
        q, k, v = self.qkv(x).reshape(n, 3, self.heads, d, t).unbind(1)  # each (N, H, d, T)
        scores = torch.matmul(q.transpose(2, 3), k) * (1.0 / math.sqrt(d))  # (N, H, T, T)
        mixed = torch.matmul(v, scores.softmax(-1).transpose(2, 3))  # (N, H, d, T)
        return self.out(mixed.reshape(n, c, t))


def position_codes(channels: int, length: int, like: torch.Tensor) -> torch.Tensor:
    """Sinusoidal position codes (Vaswani et al. 2017), shaped (1, C, T)."""
    pos = torch.arange(length, dtype=like.dtype, device=like.device)[None, :]
    i = torch.arange(channels, device=like.device)[:, None]
    freq = torch.exp(-(2 * (i // 2)).to(like.dtype) * (math.log(10000.0) / channels))
    angle = pos * freq
    return torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))[None]


class AttnSeqBlock(nn.Module):
    """Transformer encoder block (attention, then MLP) with pre-, post- or branch-end norms."""

    def __init__(self, c_in: int, block: SeqBlock, add_position: bool = False) -> None:
        super().__init__()
        w = block.width
        if block.placement not in SEQ_PLACEMENTS:
            raise ValueError(f"placement {block.placement!r} is not one of {list(SEQ_PLACEMENTS)}")
        self.placement = block.placement
        self.add_position = add_position
        self.project: nn.Module = nn.Identity() if c_in == w else nn.Conv1d(c_in, w, 1)
        self.attn = SelfAttention(w, block.heads)
        self.norm1 = _norm(block.norm, w)
        hidden = block.mlp_ratio * w
        self.mlp = nn.Sequential(nn.Conv1d(w, hidden, 1), nn.GELU(), nn.Conv1d(hidden, w, 1))
        self.norm2 = _norm(block.norm, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(x)
        if self.add_position:
            x = x + position_codes(x.shape[1], x.shape[2], x)
        for f, norm in ((self.attn, self.norm1), (self.mlp, self.norm2)):
            if self.placement == "pre":
                x = x + f(norm(x))
            elif self.placement == "post":
                x = norm(x + f(x))
            else:  # post_act
                x = x + norm(f(x))
        return x


class SeqNetwork(nn.Module):
    """stem conv -> stages (each after an average pool of its `pool`) -> mean over time ->
    dropout -> linear."""

    def __init__(
        self,
        arch: SeqArch,
        pools: Sequence[int],
        stem_width: int,
        stem_kernel: int,
        num_classes: int = 2,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        self.arch = arch
        c = in_channels
        # the stem is a plain conv (no norm): the norm of every block stays the searched one
        self.stem: nn.Module = nn.Identity()
        if stem_width > 0:
            self.stem = nn.Conv1d(in_channels, stem_width, stem_kernel, padding=stem_kernel // 2)
            c = stem_width
        layers: list[nn.Module] = []
        first_attn = True
        for stage, pool in zip(arch.stages, pools, strict=True):
            if pool > 1:
                # ceil_mode: a short sequence keeps at least one step
                layers.append(nn.AvgPool1d(pool, pool, ceil_mode=True))
            for block in stage:
                if block.kind == "conv":
                    layers.append(ConvSeqBlock(c, block))
                else:
                    layers.append(AttnSeqBlock(c, block, add_position=first_attn))
                    first_attn = False
                c = block.width
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.dropout = nn.Dropout(arch.dropout) if arch.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(x))).flatten(1)
        return self.classifier(self.dropout(x))
