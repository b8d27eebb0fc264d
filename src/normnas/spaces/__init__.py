"""Search spaces: NAS-Bench-201 cells, a macro chain of conv blocks, your own layer list,
sequence networks (1-D conv and transformer blocks), the training recipe."""

from normnas.spaces._layer_model import Layer, LayerArch
from normnas.spaces._macro_model import Block, MacroArch
from normnas.spaces.base import Arch, SearchSpace
from normnas.spaces.joint import JointSpace
from normnas.spaces.layers import LayerSpace
from normnas.spaces.macro import MacroSpace, StageSpec
from normnas.spaces.nb201 import OPS, NB201Space
from normnas.spaces.recipe import OPTIMIZERS, SCHEDULES, Recipe, RecipeSpace
from normnas.spaces.seq import SeqArch, SeqBlock, SeqSpace, SeqStageSpec

__all__ = [
    "OPS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Arch",
    "Block",
    "JointSpace",
    "Layer",
    "LayerArch",
    "LayerSpace",
    "MacroArch",
    "MacroSpace",
    "NB201Space",
    "Recipe",
    "RecipeSpace",
    "SearchSpace",
    "SeqArch",
    "SeqBlock",
    "SeqSpace",
    "SeqStageSpec",
    "StageSpec",
]
