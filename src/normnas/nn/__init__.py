"""Normalization layers and BatchNorm tools."""

from normnas.nn.batchnorm import BatchNorm, is_batchnorm
from normnas.nn.calibrate import recalibrate_bn, set_bn_momentum
from normnas.nn.fuse import find_foldable_pairs, fold_bn
from normnas.nn.inspect import bn_report
from normnas.nn.norm import (
    ALL_NORM_NAMES,
    NORM_NAMES,
    ChannelLayerNorm,
    ChannelRMSNorm,
    canonical_norm_name,
    make_norm,
)

__all__ = [
    "ALL_NORM_NAMES",
    "NORM_NAMES",
    "BatchNorm",
    "ChannelLayerNorm",
    "ChannelRMSNorm",
    "bn_report",
    "canonical_norm_name",
    "find_foldable_pairs",
    "fold_bn",
    "is_batchnorm",
    "make_norm",
    "recalibrate_bn",
    "set_bn_momentum",
]
