"""`load_model(path)`: a saved normnas checkpoint back as a network ready for inference.

What it expects as input is what the checkpoint records: float32 images (N, C, H, W) of
`image_size`, normalized channel by channel with the checkpoint's `mean` and `std`
(`(pixels / 255 - mean) / std` for 8-bit images scaled to [0, 1] as normnas's loaders do);
it returns logits (N, classes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from normnas.errors import ExportError


def load_model(path: str | Path) -> nn.Module:
    """The network of a normnas checkpoint (`model.pt` from a search, or `normnas export`'s
    state-dict file, BN folded or not): its architecture rebuilt from the recorded space,
    its weights loaded, in eval mode, on the CPU.

    The input it expects is float32 images (N, C, H, W), normalized with the checkpoint's
    `mean`/`std` (see `load_checkpoint`); the output is logits (N, classes). ExportError,
    one line naming `path`, for a missing or unreadable file, a file that is not a normnas
    checkpoint (a TorchScript, `.pt2`, ONNX or Keras file has its own loader: see the
    export guide), or weights that do not fit the architecture.
    """
    return _load(path)[0]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict beside the weights: `arch`, `space`, `num_classes`,
    `in_channels`, `image_size`, `mean`, `std`, `test_accuracy`, `folded_bn`, …"""
    return _load(path)[1]


def _load(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    from normnas.search import final

    _refuse_other_formats(Path(path).expanduser())
    ckpt_path = Path(path).expanduser()
    if not ckpt_path.is_file():
        return final.load(ckpt_path)  # its one-line error for a missing file or a folder
    ckpt = _read(ckpt_path)
    if not ckpt.get("folded_bn"):
        return final.load(ckpt_path)
    return _load_folded(ckpt_path, ckpt), ckpt


def _read(path: Path) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # final.load gives the one-line reason
        from normnas.search import final

        return final.load(path)[1]
    return ckpt if isinstance(ckpt, dict) else {}


def _load_folded(path: Path, ckpt: dict[str, Any]) -> nn.Module:
    """A folded export: the same architecture folded the same way, then its weights."""
    from normnas.nn import fold_bn
    from normnas.search.final import rebuild_network

    folded = fold_bn(rebuild_network(path, ckpt).eval())
    try:
        folded.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ExportError(
            f"{path}: its folded weights do not fit its architecture ({first})"
        ) from None
    return folded.eval()


_OTHER_LOADERS = {
    ".onnx": "an ONNX file: load it with onnxruntime.InferenceSession",
    ".keras": "a Keras file: load it with keras.saving.load_model",
    ".pt2": "a torch.export program: load it with torch.export.load(path).module()",
}


def _refuse_other_formats(path: Path) -> None:
    what = _OTHER_LOADERS.get(path.suffix.lower())
    if what is not None:
        raise ExportError(f"{path}: {what}, not normnas.load_model (see the export guide)")
    if path.is_file() and _is_zip_with(path, "constants.pkl"):  # TorchScript archives
        raise ExportError(
            f"{path}: a TorchScript file: load it with torch.jit.load, not normnas.load_model"
        )


def _is_zip_with(path: Path, member: str) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith(member) for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
