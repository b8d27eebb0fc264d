"""The found model for deployment: state dict, torch.export (.pt2), ONNX (BN folded), Keras 3,
and TorchScript (legacy: deprecated in torch 2.13; use pt2).

`export(checkpoint, out, fmt)` writes any of them from a normnas checkpoint (what
`normnas export --format FORMAT` runs). ONNX and Keras are optional extras
(`pip install 'normnas[onnx]'`, `'normnas[keras]'`); their modules import them only when
called, so `import normnas.export` needs neither.
"""

from __future__ import annotations

from pathlib import Path

import torch

from normnas.errors import ExportError
from normnas.export._common import TOLERANCE, Exported, fold_note
from normnas.export.keras import export_keras, keras_module, to_keras
from normnas.export.loading import load_checkpoint, load_model
from normnas.export.onnx import OPSET, export_onnx, onnx_modules
from normnas.export.pt2 import export_pt2

FORMATS: tuple[str, ...] = ("state_dict", "pt2", "onnx", "keras", "torchscript")


def check_format(fmt: str, out: str | Path) -> None:
    """ExportError now for what would fail `export` after a long retrain: an unknown `fmt`,
    its missing extra, or a Keras `out` not ending in .keras."""
    if fmt not in FORMATS:
        raise ExportError(f"--format: unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "onnx":
        onnx_modules()
    elif fmt == "keras":
        keras_module()
        if Path(out).suffix != ".keras":
            raise ExportError(f"{out}: a Keras model file must end in .keras (--out)")


def export(
    checkpoint: str | Path,
    out: str | Path,
    fmt: str = "state_dict",
    fold_bn: bool = False,
    inputs: torch.Tensor | None = None,
) -> Exported:
    """Write the model of `checkpoint` to `out` as `fmt` (one of FORMATS).

    ONNX always folds BN (`fold_bn` is implied); Keras keeps BN as BatchNormalization
    unless `fold_bn`, and so does pt2 (torch.export, dynamic batch). `inputs` (normalized
    N, C, H, W images) are what the ONNX, Keras and pt2 outputs are checked on; default:
    16 seeded N(0, 1) images. ExportError for an unknown `fmt`, a missing extra, an
    unwritable `out`, an unreadable checkpoint, or a check that fails.
    """
    check_format(fmt, out)
    if fmt == "onnx":
        return export_onnx(checkpoint, out, inputs=inputs)
    if fmt == "keras":
        return export_keras(checkpoint, out, inputs=inputs, fold=fold_bn)
    if fmt == "pt2":
        return export_pt2(checkpoint, out, fold=fold_bn, inputs=inputs)
    from normnas.search import final

    path = final.export(checkpoint, out, fold_bn=fold_bn, fmt=fmt)
    if not fold_bn:
        return Exported(path, fmt, fmt)
    from normnas.nn import fold_bn as fold

    model, _ = final.load(checkpoint)  # what was folded, counted as the ONNX export counts
    return Exported(path, fmt, f"{fmt}, {fold_note(model, fold(model))}")


__all__ = [
    "FORMATS",
    "OPSET",
    "TOLERANCE",
    "Exported",
    "check_format",
    "export",
    "export_keras",
    "export_onnx",
    "export_pt2",
    "load_checkpoint",
    "load_model",
    "to_keras",
]
