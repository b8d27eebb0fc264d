"""Normalization layers made by name: one string changes the norm of any model or space."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of (N, C, ...) inputs at each position (timm's LayerNorm2d)."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels last so F.layer_norm normalizes over C alone
        x = x.movedim(1, -1)
        x = F.layer_norm(x, (self.num_features,), self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.weight is not None}"


class ChannelRMSNorm(nn.Module):
    """RMSNorm over the channels of (N, C, ...) inputs at each position, from its definition
    (Zhang & Sennrich 2019): y = x / sqrt(mean_c(x^2) + eps) * weight, no centring, no bias.

    Written on dim 1 directly (no moving of axes), so it traces to plain ONNX ops."""

    def __init__(self, num_features: int, eps: float = 1e-6, affine: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + self.eps)
        if self.weight is None:
            return y
        return y * self.weight.view(1, -1, *([1] * (x.dim() - 2)))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.weight is not None}"


def default_groups(num_features: int, max_groups: int = 32) -> int:
    """Largest group count <= max_groups dividing num_features (32 as in the GN paper)."""
    return max(g for g in range(1, min(max_groups, num_features) + 1) if num_features % g == 0)


def _batchnorm(num_features: int, impl: str = "torch", dims: int = 2, **options: Any) -> nn.Module:
    if impl == "torch":
        return (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(num_features, **options)
    if impl == "reference":
        from normnas.nn.batchnorm import BatchNorm

        return BatchNorm(num_features, **options)
    raise ValueError(f"batchnorm: impl must be 'torch' or 'reference', got {impl!r}")


def _groupnorm(
    num_features: int, groups: int | None = None, dims: int = 2, **options: Any
) -> nn.Module:
    groups = default_groups(num_features) if groups is None else groups
    if groups < 1 or num_features % groups:
        raise ValueError(
            f"groupnorm: groups={groups} must be >= 1 and divide num_features={num_features}"
        )
    return nn.GroupNorm(groups, num_features, **options)


def _instancenorm(
    num_features: int, affine: bool = True, dims: int = 2, **options: Any
) -> nn.Module:
    # affine by default (torch's default is not) so it is a like-for-like alternative to BN
    layer = nn.InstanceNorm1d if dims == 1 else nn.InstanceNorm2d
    return layer(num_features, affine=affine, **options)


def _layernorm(num_features: int, dims: int = 2, **options: Any) -> nn.Module:
    return ChannelLayerNorm(num_features, **options)


def _rmsnorm(num_features: int, dims: int = 2, **options: Any) -> nn.Module:
    return ChannelRMSNorm(num_features, **options)


def _none(num_features: int, dims: int = 2, **options: Any) -> nn.Module:
    return nn.Identity()


_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "batchnorm": _batchnorm,
    "groupnorm": _groupnorm,
    "instancenorm": _instancenorm,
    "layernorm": _layernorm,
    "rmsnorm": _rmsnorm,
    "none": _none,
}
ALIASES: dict[str, str] = {
    "bn": "batchnorm",
    "gn": "groupnorm",
    "in": "instancenorm",
    "ln": "layernorm",
    "rms": "rmsnorm",
}
# every name make_norm takes; NORM_NAMES, the image spaces' default choices, leaves out
# rmsnorm (a sequence-model habit) so their default spaces and recorded studies stay as
# they were: name it in a space's `norms` to search it on images too
ALL_NORM_NAMES: tuple[str, ...] = tuple(_FACTORIES)
NORM_NAMES: tuple[str, ...] = tuple(n for n in _FACTORIES if n != "rmsnorm")
# how reports and summaries name each norm to a reader
NORM_LABELS: dict[str, str] = {
    "batchnorm": "BatchNorm",
    "groupnorm": "GroupNorm",
    "instancenorm": "InstanceNorm",
    "layernorm": "LayerNorm",
    "rmsnorm": "RMSNorm",
    "none": "no norm",
}


def canonical_norm_name(name: str) -> str:
    """Full name for a norm name or alias; ValueError listing the valid names otherwise."""
    key = name.lower()
    key = ALIASES.get(key, key)
    if key not in _FACTORIES:
        valid = ", ".join([*ALL_NORM_NAMES, *ALIASES])
        raise ValueError(f"unknown norm {name!r}; valid names: {valid}")
    return key


def make_norm(name: str, num_features: int, dims: int = 2, **options: Any) -> nn.Module:
    """Normalization layer `name` for `num_features` channels of (N, C, H, W) inputs, or of
    (N, C, T) sequences with `dims=1`.

    Names: batchnorm (bn), groupnorm (gn; option `groups`), instancenorm (in),
    layernorm (ln; over channels at each position), rmsnorm (rms; over channels at each
    position, no centring), none (identity). `batchnorm` is torch's fused layer
    (BatchNorm1d for `dims=1`) unless `impl="reference"` asks for ours (any rank).
    """
    if num_features < 1:
        raise ValueError(f"num_features must be >= 1, got {num_features}")
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 (N, C, T) or 2 (N, C, H, W), got {dims!r}")
    key = canonical_norm_name(name)
    try:
        return _FACTORIES[key](num_features, dims=dims, **options)
    except TypeError as err:  # an option the layer does not take, e.g. momentum for groupnorm
        if not options:
            raise
        raise ValueError(f"{key}: unsupported option in {sorted(options)}: {err}") from err
