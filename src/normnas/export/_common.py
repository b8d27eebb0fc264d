"""What the ONNX and Keras exports share: optional imports, check inputs, the output check."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from normnas.errors import ExportError

# largest |difference| between an exported model's outputs and PyTorch's that passes the check
TOLERANCE = 1e-4
CHECK_BATCH = 16  # inputs the export check runs when the caller gives none


@dataclass(frozen=True)
class Exported:
    """A written export: its file, format and what was checked (`note`, one line)."""

    path: Path
    fmt: str
    note: str


def require(modules: tuple[str, ...], extra: str, fmt: str) -> tuple[ModuleType, ...]:
    """Import optional `modules`, or an ExportError telling which extra to pip install."""
    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError:  # also what a sys.modules entry of None raises
            raise ExportError(
                f"--format {fmt} needs {' and '.join(modules)}, and {name} is not installed; "
                f"pip install 'normnas[{extra}]' (or: pip install {' '.join(modules)})"
            ) from None
    return tuple(loaded)


def check_inputs(checkpoint: Mapping[str, Any], n: int = CHECK_BATCH) -> torch.Tensor:
    """`n` seeded N(0, 1) images (or sequences) of the checkpoint's shape: the scale of
    normalized data."""
    size = [int(s) for s in checkpoint["image_size"]]  # (H, W) of images, (T,) of sequences
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, int(checkpoint["in_channels"]), *size, generator=generator)


@torch.no_grad()
def torch_outputs(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """`model`'s eval-mode outputs for `x` as float32 numpy (the reference of every check)."""
    return model.eval()(x).detach().cpu().numpy().astype(np.float32)


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def fold_note(model: nn.Module, folded: nn.Module) -> str:
    """`N of M BatchNorm folded`: of `model`'s M BatchNorm layers, the N that `folded` (its
    `fold_bn`) no longer has. A model without BN says 0 of 0, never just "BN folded"."""
    from normnas.nn import is_batchnorm

    before = sum(1 for m in model.modules() if is_batchnorm(m))
    after = sum(1 for m in folded.modules() if is_batchnorm(m))
    return f"{before - after} of {before} BatchNorm folded"


def check_close(path: Path, runtime: str, difference: float) -> None:
    """ExportError naming `path` when `runtime`'s outputs are further than TOLERANCE away."""
    if not difference <= TOLERANCE:  # also catches NaN
        raise ExportError(
            f"{path}: {runtime}'s outputs differ from PyTorch's by {difference:.3g} "
            f"(more than {TOLERANCE:g}); the file was not written"
        )
