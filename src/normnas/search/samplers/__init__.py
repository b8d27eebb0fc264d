"""Samplers of ours: whole-architecture proposals driven by the study's history."""

from normnas.search.samplers._base import ArchSampler
from normnas.search.samplers.evolution import EvolutionSampler
from normnas.search.samplers.local import LocalSearchSampler

__all__ = ["ArchSampler", "EvolutionSampler", "LocalSearchSampler"]
