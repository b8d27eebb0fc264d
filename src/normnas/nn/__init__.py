"""Normalization layers and BatchNorm tools."""

from normnas.nn.norm import NORM_NAMES, ChannelLayerNorm, canonical_norm_name, make_norm

__all__ = ["NORM_NAMES", "ChannelLayerNorm", "canonical_norm_name", "make_norm"]
