"""Search spaces by name, and the plain-data spec a checkpoint or a worker rebuilds one from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from normnas.spaces.base import Arch, SearchSpace

SPACE_NAMES: tuple[str, ...] = ("macro", "nb201", "layers", "seq")


def make_space(
    name: str, options: Mapping[str, Any] | None = None, recipe: Mapping[str, Any] | None = None
) -> SearchSpace:
    """`macro`, `nb201`, `layers` or `seq` (options go to the space: a LayerSpace's are its
    `{input_size, layers}`), joined with a RecipeSpace when `recipe` is a dict (its
    options; `{}` for the defaults)."""
    from normnas.spaces import (
        JointSpace,
        LayerSpace,
        MacroSpace,
        NB201Space,
        RecipeSpace,
        SeqSpace,
    )

    options = dict(options or {})
    if name == "macro":
        space: SearchSpace = MacroSpace.from_dict(options)
    elif name == "nb201":
        if options:
            raise ValueError(f"space nb201 takes no options, got {sorted(options)}")
        space = NB201Space()
    elif name == "layers":
        space = LayerSpace.from_dict(options)
    elif name == "seq":
        space = SeqSpace.from_dict(options)
    else:
        raise ValueError(f"unknown space {name!r}; valid: {', '.join(SPACE_NAMES)}")
    if recipe is not None:
        space = JointSpace(space, RecipeSpace.from_dict(dict(recipe)))
    return space


def network_part(space: SearchSpace, arch: Arch) -> tuple[SearchSpace, Arch, Any | None]:
    """(space of the network, its arch, the recipe or None) for plain and joint spaces."""
    arch_space = getattr(space, "arch_space", None)
    if arch_space is not None and getattr(space, "recipe_space", None) is not None:
        return arch_space, arch[0], arch[1]
    return space, arch, None


def space_spec(space: SearchSpace) -> dict[str, Any]:
    """Plain data that `space_from_spec` turns back into an equal network space."""
    to_dict = getattr(space, "to_dict", None)
    return {"name": space.name, "options": to_dict() if callable(to_dict) else {}}


def space_from_spec(spec: Mapping[str, Any]) -> SearchSpace:
    return make_space(spec["name"], spec.get("options") or {})
