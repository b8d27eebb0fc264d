"""Normalization layers and BatchNorm tools."""

from normnas.nn.batchnorm import BatchNorm, is_batchnorm
from normnas.nn.norm import NORM_NAMES, ChannelLayerNorm, canonical_norm_name, make_norm

__all__ = [
    "NORM_NAMES",
    "BatchNorm",
    "ChannelLayerNorm",
    "canonical_norm_name",
    "is_batchnorm",
    "make_norm",
]
