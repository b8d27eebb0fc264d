"""BatchNorm written from the math, state-dict compatible with torch's BatchNorm1d/2d/3d."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# torch's BN base class is private; naming it once here keeps the private import in one place
TORCH_BATCHNORM: type[nn.Module] = nn.modules.batchnorm._BatchNorm


class BatchNorm(nn.Module):
    """Batch normalization over dim 1 of (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W) inputs.

    Training (or `track_running_stats=False`): normalize with the batch's per-channel mean
    and biased variance. Training with running stats also updates `running_mean` and the
    *unbiased* `running_var` by `momentum` (`None`: cumulative average over
    `num_batches_tracked` batches). Eval: normalize with the running statistics.
    """

    # version 2 is torch's BN layout (it has num_batches_tracked); torch reads it on load
    _version = 2

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be an int >= 1, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be None or in [0, 1], got {momentum!r}")
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked (as torch does)."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset running statistics, γ to 1 and β to 0."""
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not 2 <= x.dim() <= 5:
            raise ValueError(f"input must have 2 to 5 dims (N, C, ...), got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"input channels (dim 1) must be num_features={self.num_features}, "
                f"got shape {tuple(x.shape)}"
            )
        shape = (1, -1) + (1,) * (x.dim() - 2)  # broadcasts a (C,) vector over (N, C, ...)
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            mean, var = self._batch_stats(x)
            if self.training and self.track_running_stats:
                self._update_running_stats(mean.detach(), var.detach(), x.numel() // x.shape[1])
        else:
            mean, var = self.running_mean, self.running_var
        # γ folded into the per-channel scale first: two full-size ops instead of four;
        # x - mean stays explicit so a large mean does not cancel precision away
        scale = torch.rsqrt(var + self.eps)
        if not self.affine:
            return (x - mean.view(shape)) * scale.view(shape)
        scale = scale * self.weight
        return torch.addcmul(self.bias.view(shape), x - mean.view(shape), scale.view(shape))

    def _batch_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and biased variance of x over every dim but 1."""
        count = x.numel() // x.shape[1]
        if count <= 1:
            # the variance of one value is 0: the output would be β alone (torch refuses too)
            raise ValueError(
                f"BatchNorm needs more than 1 value per channel to use batch statistics, "
                f"got input shape {tuple(x.shape)}"
            )
        dims = [0, *range(2, x.dim())]
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        return mean, var

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        self.num_batches_tracked.add_(1)
        # momentum=None: cumulative moving average over the batches seen so far
        momentum = self.momentum
        factor = 1.0 / float(self.num_batches_tracked) if momentum is None else momentum
        unbiased = var * (count / (count - 1))
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


BATCHNORM_TYPES: tuple[type[nn.Module], ...] = (BatchNorm, TORCH_BATCHNORM)


def is_batchnorm(module: nn.Module) -> bool:
    """True for our BatchNorm and every torch BatchNorm (1d/2d/3d, sync, lazy)."""
    return isinstance(module, BATCHNORM_TYPES)
