"""Tiny real data for the oneshot tests: digits (8x8, in memory or as an .npz file), the
end-to-end searches' config, BN randomization and the in-process CLI."""

from __future__ import annotations

import dataclasses
import os
from functools import cache
from pathlib import Path

import torch

from normnas.data.digits import load_digits_bundle
from normnas.data.split import DataBundle, Split

# the end-to-end searches' config: NB201 with a supernet of C=4, N=1 (the final retrain
# builds the benchmark's C=16, N=5 network: `write_digits_npz` keeps its data small)
ONESHOT_CONFIG = """\
space: nb201
data: npz:{data}
strategy: evolution
strategy_options: {{population_size: 4, sample_size: 2}}
train: {{epochs: 1, batch_size: 64, lr: 0.05}}
oneshot: {{C: 4, N: 1, warmup_epochs: 1, bn_epochs: 1, calib_batches: 2}}
"""


@cache
def _digits() -> DataBundle:
    return load_digits_bundle()


def small_digits(n_train: int = 192, n_valid: int = 96) -> DataBundle:
    """The first samples of digits' splits (a fixed, small, real data set)."""
    d = _digits()
    return dataclasses.replace(
        d,
        train=Split(d.train.x[:n_train], d.train.y[:n_train]),
        valid=Split(d.valid.x[:n_valid], d.valid.y[:n_valid]),
    )


def write_digits_npz(path: Path, n: int = 600) -> Path:
    """The first `n` of scikit-learn's digits as an .npz file (`npz:PATH` data: a fifth is
    the test split, a tenth of the rest the validation split)."""
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    np.savez(path, x=(d.images[:n] / 16).astype(np.float32), y=d.target[:n])
    return path


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BN non-trivial running stats and affine parameters (so a wrong mapping
    or a reset would show in the outputs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.num_batches_tracked.fill_(7)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def invoke(args: list[str], cwd: Path):
    """`normnas ARGS` run in `cwd` (the default storage lands there), wide output."""
    from typer.testing import CliRunner

    from normnas.cli import app

    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    finally:
        os.chdir(old)
