"""Batch-wise augmentation on tensors (no torchvision): random crop with padding + h-flip."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(
    x: torch.Tensor,
    padding: int = 4,
    generator: torch.Generator | None = None,
    flip: bool = True,
) -> torch.Tensor:
    """Random crop of each image after zero padding by `padding` px, then a random h-flip.

    One `gather` over the whole batch does both: the flip just reverses the column
    indices of the crop. Random numbers come from `generator` (a CPU generator), so runs
    are reproducible on any device. Zero padding of normalized data pads with the data
    mean, close to what padding before normalization gives.
    """
    n, c, h, w = x.shape
    p = max(0, int(padding))
    offsets = torch.randint(0, 2 * p + 1, (2, n), generator=generator)
    cols = torch.arange(w)
    cols = cols.expand(n, w)
    if flip:
        flipped = torch.rand(n, generator=generator) < 0.5
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    rows = offsets[0, :, None] + torch.arange(h)  # (N, H)
    cols = offsets[1, :, None] + cols  # (N, W)
    index = rows[:, :, None] * (w + 2 * p) + cols[:, None, :]  # (N, H, W) into the padded map
    index = index.reshape(n, 1, h * w).expand(n, c, h * w).to(x.device)
    padded = F.pad(x, (p, p, p, p)) if p else x
    return torch.gather(padded.reshape(n, c, -1), 2, index).reshape(n, c, h, w)
