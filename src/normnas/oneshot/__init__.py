"""Weight sharing: supernets, SPOS/FairNAS training, BN modes for sub-networks, BN-NAS, and
gradient-based search (DARTS, GDAS, DrNAS) on the relaxed NB201 supernet; few-shot
supernets (`few_shot`) and one supernet trained to several lengths (`curve`).

The macro space's supernet lives in `normnas.oneshot.supernet_macro`.
"""

from normnas.oneshot.base import Supernet
from normnas.oneshot.bn_modes import (
    BN_MODES,
    DEFAULT_CALIB_BATCHES,
    BNMode,
    SubnetScore,
    batch_statistics,
    bn_state,
    bn_stats_restored,
    calibration_batches,
    evaluate_subnet,
    recalibrated,
)
from normnas.oneshot.curve import CurvePoint, train_lengths
from normnas.oneshot.evaluators import (
    BNIndicatorEvaluator,
    SupernetEvaluator,
    SupernetOptions,
    make_supernet,
    prepare_supernet,
)
from normnas.oneshot.few_shot import FewShotSupernet, split_supernet, train_few_shot
from normnas.oneshot.gradient import GradientEpoch, GradientResult, search_gradient
from normnas.oneshot.gradient_options import METHODS, GradientOptions
from normnas.oneshot.indicator import bn_score, train_bn_indicator
from normnas.oneshot.relaxed import Decision, RelaxedSupernet
from normnas.oneshot.relaxed_macro import RelaxedMacro
from normnas.oneshot.relaxed_nb201 import RelaxedNB201
from normnas.oneshot.supernet_nb201 import NB201Supernet
from normnas.oneshot.training import (
    SAMPLINGS,
    SupernetEpoch,
    SupernetTrainResult,
    load_checkpoint,
    save_checkpoint,
    train_supernet,
)

__all__ = [
    "BN_MODES",
    "DEFAULT_CALIB_BATCHES",
    "METHODS",
    "SAMPLINGS",
    "BNIndicatorEvaluator",
    "BNMode",
    "CurvePoint",
    "Decision",
    "FewShotSupernet",
    "GradientEpoch",
    "GradientOptions",
    "GradientResult",
    "NB201Supernet",
    "RelaxedMacro",
    "RelaxedNB201",
    "RelaxedSupernet",
    "SubnetScore",
    "Supernet",
    "SupernetEpoch",
    "SupernetEvaluator",
    "SupernetOptions",
    "SupernetTrainResult",
    "batch_statistics",
    "bn_score",
    "bn_state",
    "bn_stats_restored",
    "calibration_batches",
    "evaluate_subnet",
    "load_checkpoint",
    "make_supernet",
    "prepare_supernet",
    "recalibrated",
    "save_checkpoint",
    "search_gradient",
    "split_supernet",
    "train_bn_indicator",
    "train_few_shot",
    "train_lengths",
    "train_supernet",
]
