"""Batch-wise augmentation on tensors (no torchvision): random crop with padding, flip."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(
    x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random crop of each image after zero padding by `padding` px, then a random h-flip.

    Vectorized over the batch with one gather; random numbers come from `generator`
    (a CPU generator) so runs are reproducible. Zero padding of normalized data pads
    with the data mean, as padding before normalization would roughly do.
    """
    x = random_crop(x, padding, generator)
    return random_hflip(x, generator)


def random_crop(
    x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indexing on dims 0, 2, 3 puts the indexed dims first: (N, H, W, C)
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)
