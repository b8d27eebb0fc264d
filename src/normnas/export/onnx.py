"""The found model as ONNX: BatchNorm folded, opset `OPSET`, checked with ONNX Runtime.

The graph takes `input` (N, C, H, W) float32, normalized as the checkpoint's `mean`/`std`
say, with a dynamic batch size, and returns `logits` (N, classes). Every BN that directly
follows a conv is folded into it first (`normnas.nn.fold_bn`); the others (conv → act → BN,
pre-activation BN) stay as ONNX BatchNormalization nodes. The model's metadata holds the
opset, the architecture string, the space spec and the input normalization.

Before the file is written, ONNX Runtime runs it on check inputs and its outputs must equal
the unfolded PyTorch model's within `TOLERANCE`; otherwise nothing is written. Needs the
`onnx` extra (`pip install 'normnas[onnx]'`).
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from normnas.export._common import (
    Exported,
    check_close,
    check_inputs,
    max_difference,
    require,
    torch_outputs,
)
from normnas.nn import ChannelLayerNorm, find_foldable_pairs, fold_bn, is_batchnorm

# 17: every ONNX Runtime since 1.11 runs it, and it has every op these networks use
OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def onnx_modules() -> tuple[Any, Any]:
    """(onnx, onnxruntime), or an ExportError telling what to pip install."""
    return require(("onnx", "onnxruntime"), "onnx", "onnx")


def model_to_onnx(
    model: nn.Module, example: torch.Tensor, metadata: Mapping[str, str] | None = None
) -> bytes:
    """The serialized ONNX model of eval-mode `model` (no folding here), batch size dynamic.

    Layers the exporter writes badly are swapped for equal ones first (`onnx_ready`);
    `metadata` is added to the model's metadata beside `opset`; the model is checked with
    `onnx.checker`.
    """
    onnx, _ = onnx_modules()
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript-based exporter: the torch.export one needs onnxscript, a heavier
        # extra, and gives the same graph for these static networks
        warnings.simplefilter("ignore")
        torch.onnx.export(
            onnx_ready(model),
            (example,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    proto = onnx.load_from_string(buffer.getvalue())
    entries = {"opset": str(OPSET), **(metadata or {})}
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


class _PermutedChannelLayerNorm(nn.Module):
    """ChannelLayerNorm's maths with explicit permutations: the TorchScript exporter writes
    `movedim(1, -1)` as a Transpose with a negative axis, which ONNX Runtime rejects."""

    def __init__(self, norm: ChannelLayerNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rank = x.dim()
        last = x.permute(0, *range(2, rank), 1)
        out = F.layer_norm(
            last, (self.norm.num_features,), self.norm.weight, self.norm.bias, self.norm.eps
        )
        return out.permute(0, rank - 1, *range(1, rank - 1))


def onnx_ready(model: nn.Module) -> nn.Module:
    """A copy of `model` whose layers export to ONNX Runtime-loadable nodes (same maths)."""
    ready = copy.deepcopy(model)
    for name, module in list(ready.named_modules()):
        if isinstance(module, ChannelLayerNorm):
            parent, _, attr = name.rpartition(".")
            setattr(ready.get_submodule(parent), attr, _PermutedChannelLayerNorm(module))
    return ready.eval()


def session(data: bytes) -> Any:
    """An ONNX Runtime CPU inference session of serialized model `data`."""
    _, ort = onnx_modules()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def run(sess: Any, x: torch.Tensor) -> np.ndarray:
    """The outputs of session `sess` for (N, C, H, W) images `x`."""
    return sess.run([OUTPUT_NAME], {INPUT_NAME: x.detach().cpu().numpy().astype(np.float32)})[0]


def export_onnx(
    checkpoint: str | Path, out: str | Path, inputs: torch.Tensor | None = None
) -> Exported:
    """Write the checkpoint's model to `out` as ONNX with BN folded, checked by ONNX Runtime.

    `inputs` (N, C, H, W, normalized) are what the check runs; default: 16 seeded N(0, 1)
    images. ExportError when onnx/onnxruntime are missing, `out` cannot be written, the
    checkpoint cannot be read, or ONNX Runtime disagrees with PyTorch.
    """
    from normnas.search.final import _write_whole, load, prepare_out

    onnx_modules()  # a missing extra fails before any work
    out = prepare_out(out, "model.onnx")
    model, ckpt = load(checkpoint)
    batchnorms = sum(1 for m in model.modules() if is_batchnorm(m))
    folds = len(find_foldable_pairs(model))
    folded = fold_bn(model).eval()
    x = check_inputs(ckpt) if inputs is None else inputs
    data = model_to_onnx(folded, x[:1], _metadata(ckpt, folds))
    difference = max_difference(run(session(data), x), torch_outputs(model, x))
    check_close(out, "ONNX Runtime", difference)
    path = _write_whole(out, lambda f: f.write(data))
    note = (
        f"onnx, opset {OPSET}, {folds} of {batchnorms} BatchNorm folded; ONNX Runtime "
        f"equals PyTorch within {difference:.1e} on {len(x)} inputs"
    )
    return Exported(path, "onnx", note)


def _metadata(ckpt: Mapping[str, Any], folds: int) -> dict[str, str]:
    return {
        "producer": "normnas",
        "arch": str(ckpt["arch"]),
        "space": json.dumps(ckpt["space"], sort_keys=True),
        "input_layout": "NCT" if len(ckpt["image_size"]) == 1 else "NCHW",
        "image_size": json.dumps(list(ckpt["image_size"])),
        "in_channels": str(ckpt["in_channels"]),
        "num_classes": str(ckpt["num_classes"]),
        "mean": json.dumps(list(ckpt.get("mean") or [])),
        "std": json.dumps(list(ckpt.get("std") or [])),
        "bn_folded": str(folds),
    }
