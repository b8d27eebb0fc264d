"""Torch modules of LayerSpace networks: the user's layer list in order, then a classifier."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from normnas.nn import make_norm
from normnas.spaces._macro_model import ACTIVATIONS, Block, ConvBlock

DENSE_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {**ACTIVATIONS, "none": nn.Identity}
POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}

Shape = tuple[int, ...]  # (C, H, W) for a feature map, (F,) once flattened


@dataclass(frozen=True)
class Layer:
    """One layer of a LayerSpace architecture: its type, every field's value, its repeats.

    `values` holds every field of the type (fixed ones too) in the spec's order; `body`
    the layers of a residual group (None where an optional layer is left out). A layer
    repeated `repeat` times is that many copies with the same values (own weights).
    """

    kind: str
    values: tuple[tuple[str, Any], ...] = ()
    repeat: int = 1
    body: tuple[Layer | None, ...] = ()

    def get(self, field: str) -> Any:
        return dict(self.values)[field]


@dataclass(frozen=True)
class LayerArch:
    """A LayerSpace architecture: one entry per layer spec, None for an optional one left out."""

    layers: tuple[Layer | None, ...]


class Residual(nn.Module):
    """body(x) + shortcut(x); the shortcut is a 1x1 conv when the body changes the channels."""

    def __init__(self, body: Sequence[nn.Module], c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*body)
        self.shortcut: nn.Module = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class LayerNetwork(nn.Module):
    """`features` (the layers in order) -> global average pool if still a map -> linear."""

    def __init__(
        self,
        arch: LayerArch,
        image_size: tuple[int, int],
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.arch = arch
        modules, shape = layer_modules(arch.layers, (in_channels, *image_size))
        self.features = nn.Sequential(*modules)
        head: list[nn.Module] = []
        if len(shape) == 3:  # still a feature map: pool it, as the macro space's head does
            head += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        head.append(nn.Linear(shape[0], num_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def layer_modules(layers: Sequence[Layer | None], shape: Shape) -> tuple[list[nn.Module], Shape]:
    """The modules of `layers` (each repeat its own copy) and the shape they output."""
    modules: list[nn.Module] = []
    for layer in layers:
        if layer is None:
            continue
        for _ in range(layer.repeat):
            module, shape = _module(layer, shape)
            if not isinstance(module, nn.Identity):
                modules.append(module)
    return modules, shape


def _module(layer: Layer, shape: Shape) -> tuple[nn.Module, Shape]:
    v = dict(layer.values)
    kind = layer.kind
    if kind == "conv":
        c, h, w = shape
        block = Block(v["filters"], v["kernel_size"], v["norm"], v["placement"],
                      v["activation"], residual=False)  # fmt: skip
        s = v["stride"]
        return ConvBlock(c, block, s), (v["filters"], math.ceil(h / s), math.ceil(w / s))
    if kind == "pool":
        c, h, w = shape
        k = v["size"]
        return POOLS[v["kind"]](k), (c, h // k, w // k)
    if kind == "global_pool":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), (shape[0],)
    if kind == "flatten":
        return (nn.Flatten(), (math.prod(shape),)) if len(shape) == 3 else (nn.Identity(), shape)
    if kind == "dense":
        parts: list[nn.Module] = [nn.Flatten()] if len(shape) == 3 else []
        parts += [nn.Linear(math.prod(shape), v["units"]), DENSE_ACTIVATIONS[v["activation"]]()]
        return nn.Sequential(*(m for m in parts if not isinstance(m, nn.Identity))), (v["units"],)
    if kind == "norm":
        return make_norm(v["norm"], shape[0]), shape
    if kind == "activation":
        return ACTIVATIONS[v["activation"]](), shape
    if kind == "dropout":
        return (nn.Dropout(v["rate"]) if v["rate"] > 0 else nn.Identity()), shape
    if kind == "residual":
        body, out = layer_modules(layer.body, shape)
        return Residual(body, shape[0], out[0]), out
    raise ValueError(f"unknown layer type {kind!r}")
