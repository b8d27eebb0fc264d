"""Checkpoints of trained networks: the final model's format, and the best trials' own weights.

Why keep trials' weights: the final retrain (train+valid, the full epochs) is usually the
better model, but it can be cut by `--time` or end worse on a loaded machine; then the
best trial's own trained network is the honest answer, and it costs nothing to keep.
`TrialCheckpoints` keeps the `keep` best trials (by validation accuracy) of a study in a
folder beside its storage; each file is an ordinary normnas checkpoint (see `make_checkpoint`),
so `normnas export` and `normnas.search.final.load` read it as they read the final model.

File names carry the score and a hash of the architecture's canonical string
(`0.953125-3f2a….pt`), so several worker processes can add and prune files without an
index to race on: the worst files beyond `keep` are removed by whoever adds one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normnas.search.spaces import network_part, space_spec
from normnas.spaces.base import Arch, SearchSpace

FORMAT = "normnas-checkpoint-1"


def make_checkpoint(
    space: SearchSpace, arch: Arch, data: Any, model: nn.Module, **fields: Any
) -> dict[str, Any]:
    """The checkpoint dict of a trained `model` of `arch` (loadable with weights_only=True):
    `state_dict`, `arch` (the network space's string), `space` (its spec), `recipe`,
    `num_classes`, `in_channels`, `image_size`, `mean`/`std` (the input normalization the
    model expects), plus `fields`."""
    net_space, net_arch, recipe = network_part(space, arch)
    return {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "arch": net_space.to_str(net_arch),
        "space": space_spec(net_space),
        "recipe": recipe.as_dict() if hasattr(recipe, "as_dict") else None,
        "num_classes": int(data.num_classes),
        "in_channels": int(data.in_channels),
        "image_size": [int(s) for s in data.image_size],
        "mean": [float(m) for m in data.mean],
        "std": [float(s) for s in data.std],
        **fields,
    }


def arch_hash(key: str) -> str:
    """A file-name-safe digest of an architecture's canonical string."""
    return hashlib.sha1(key.encode()).hexdigest()[:16]


class TrialCheckpoints:
    """The `keep` best trials' trained weights in `folder` (see the module doc)."""

    def __init__(self, folder: str | Path, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"TrialCheckpoints: keep must be >= 1, got {keep}")
        self.folder = Path(folder)
        self.keep = keep

    def _files(self) -> list[tuple[float, Path]]:
        if not self.folder.is_dir():
            return []
        out = []
        for p in self.folder.glob("*.pt"):
            score, _, _ = p.stem.partition("-")
            try:
                out.append((float(score), p))
            except ValueError:
                continue  # not one of ours
        return sorted(out, key=lambda sp: (-sp[0], sp[1].name))

    def wanted(self, score: float) -> bool:
        """Would a trial of `score` be among the `keep` best kept so far?"""
        files = self._files()
        return len(files) < self.keep or score > files[self.keep - 1][0]

    def add(self, key: str, score: float, checkpoint: dict[str, Any]) -> Path | None:
        """Save `checkpoint` as the trial of architecture `key` (validation accuracy `score`)
        if it ranks among the best `keep`, and remove the files that drop out. A checkpoint
        that cannot be written is skipped: a trial never fails for want of disk."""
        if not self.wanted(score):
            return None
        name = f"{score:.6f}-{arch_hash(key)}.pt"
        path = self.folder / name
        tmp = self.folder / f".{name}.{os.getpid()}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            torch.save(checkpoint, tmp)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            return None
        for _, old in self._files()[self.keep :]:
            old.unlink(missing_ok=True)  # another worker may have removed it already
        return path if path.exists() else None

    def find(self, key: str) -> Path | None:
        """The kept checkpoint of architecture `key`, if any."""
        if not self.folder.is_dir():
            return None
        found = sorted(self.folder.glob(f"*-{arch_hash(key)}.pt"))
        return found[-1] if found else None
