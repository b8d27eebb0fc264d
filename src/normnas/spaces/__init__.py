"""Search spaces: NAS-Bench-201 cells, a macro chain of conv blocks, the training recipe."""

from normnas.spaces.base import Arch, SearchSpace

__all__ = ["Arch", "SearchSpace"]
