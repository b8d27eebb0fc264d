"""Search spaces: NAS-Bench-201 cells, a macro chain of conv blocks, the training recipe."""

from normnas.spaces._macro_model import Block, MacroArch
from normnas.spaces.base import Arch, SearchSpace
from normnas.spaces.macro import MacroSpace, StageSpec
from normnas.spaces.nb201 import OPS, NB201Space

__all__ = [
    "OPS",
    "Arch",
    "Block",
    "MacroArch",
    "MacroSpace",
    "NB201Space",
    "SearchSpace",
    "StageSpec",
]
