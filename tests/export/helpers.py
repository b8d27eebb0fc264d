"""Checkpoints of briefly trained models on real digits, in normnas's checkpoint format.

The macro arch has every norm (bn, gn, ln, in, none) and every placement, residuals with an
identity and a strided 1x1 projection, strided convs of kernel 3 and 5, and dropout; the
NB201 cell has a conv 3x3, a conv 1x1, an avg pool, a skip, `none` edges and a node with
no input (zero).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from normnas.data import DataBundle
from normnas.search.spaces import space_spec
from normnas.spaces import MacroSpace, NB201Space
from normnas.spaces.base import SearchSpace

MACRO = MacroSpace(
    stages=[
        {"widths": [8], "min_blocks": 1, "max_blocks": 3, "stride": 1},
        {"widths": [16], "min_blocks": 1, "max_blocks": 3, "stride": 2},
        {"widths": [24], "min_blocks": 1, "max_blocks": 1, "stride": 2},
    ],
    dropout=[0.0, 0.2],
)
MACRO_ARCH = (
    "[w8-k3-batchnorm-conv_norm_act-relu-res, w8-k5-groupnorm-conv_act_norm-gelu-plain, "
    "w8-k3-layernorm-norm_act_conv-silu-res] "
    "[w16-k3-instancenorm-conv_norm_act-relu-res, w16-k3-none-conv_act_norm-relu-plain, "
    "w16-k5-batchnorm-norm_act_conv-gelu-res] "
    "[w24-k3-batchnorm-conv_act_norm-silu-res] dropout=0.2"
)
NB201 = NB201Space()
# node 2 has only `none` edges (a zero node that conv 1x1 then reads)
NB201_ARCH = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|"
BN_MOMENTUM = 0.3  # the recipe's, not torch's default: Keras's must become 0.7


def write_checkpoint(path: Path, space: SearchSpace, arch_str: str, data: DataBundle) -> Path:
    """A checkpoint as `search.final.retrain` writes it: BN statistics of real digits (a few
    train-mode passes) and affine parameters moved off their 1 / 0 start (seeded)."""
    torch.manual_seed(0)
    arch = space.from_str(arch_str)
    model = space.build(arch, data.num_classes, data.in_channels)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = BN_MOMENTUM
        for p in model.parameters():
            if p.dim() == 1:  # norm scales and shifts, biases
                p.add_(0.3 * torch.randn_like(p))
        model.train()
        for start in range(0, 192, 64):
            model(data.train.x[start : start + 64])
    model.eval()
    checkpoint: dict[str, Any] = {
        "format": "normnas-checkpoint-1",
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "arch": space.to_str(arch),
        "space": space_spec(space),
        "recipe": {"bn_momentum": BN_MOMENTUM},
        "num_classes": int(data.num_classes),
        "in_channels": int(data.in_channels),
        "image_size": [int(s) for s in data.image_size],
        "mean": [float(m) for m in data.mean],
        "std": [float(s) for s in data.std],
        "test_accuracy": 0.0,
        "study": "export-tests",
        "trial": 0,
    }
    torch.save(checkpoint, path)
    return path


def digit_images(data: DataBundle, n: int = 256) -> torch.Tensor:
    """Real, normalized digits from the test split."""
    return data.test.x[:n]
