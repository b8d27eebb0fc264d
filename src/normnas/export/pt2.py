"""The found model as a `torch.export` program (`.pt2`), the successor of TorchScript.

`torch.export.export` traces the eval-mode network (BN folded first with `fold`) with a
dynamic batch dimension, and `torch.export.save` writes it with the checkpoint's metadata
(`normnas.json`: architecture, space, input size and normalization) as an extra file. It
loads with `torch.export.load(path).module()` and takes what the checkpoint's network takes:
float32 (N, C, H, W) images normalized with `mean`/`std`. Before the file is written the
program's outputs at batch sizes 1 and 3 must equal the PyTorch model's within `TOLERANCE`.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normnas.errors import ExportError
from normnas.export._common import (
    Exported,
    check_close,
    check_inputs,
    fold_note,
    max_difference,
    torch_outputs,
)

METADATA_FILE = "normnas.json"
MAX_BATCH = 1 << 16  # the dynamic batch's upper bound (torch.export wants a finite range)


def model_to_pt2(model: nn.Module, example: torch.Tensor) -> Any:
    """The ExportedProgram of eval-mode `model`, its first dimension dynamic.

    `example` needs a batch of at least 2: torch.export specializes a dimension of size 1.
    """
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        return torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},))


def export_pt2(
    checkpoint: str | Path, out: str | Path, fold: bool = False, inputs: torch.Tensor | None = None
) -> Exported:
    """Write the model of `checkpoint` to `out` as a `.pt2` program (see the module doc)."""
    from normnas.nn import fold_bn
    from normnas.search import final

    out = final.prepare_out(out, "model.pt2")
    model, ckpt = final.load(checkpoint)
    deployed = fold_bn(model).eval() if fold else model
    x = check_inputs(ckpt) if inputs is None else inputs
    try:
        program = model_to_pt2(deployed, x[:2] if len(x) >= 2 else x.repeat(2, 1, 1, 1))
    except Exception as e:  # torch.export's own errors are pages long
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"{out}: torch.export could not trace the model ({first})") from None
    loaded = program.module()
    difference = 0.0
    for n in (1, 3):  # the batch is dynamic: check two sizes, neither the traced one
        batch = x[:n] if len(x) >= n else x[:1].repeat(n, 1, 1, 1)
        with torch.no_grad():
            got = loaded(batch).detach().cpu().numpy()
        difference = max(difference, max_difference(torch_outputs(model, batch), got))
    check_close(out, "torch.export", difference)
    meta = {
        key: ckpt.get(key)
        for key in ("arch", "space", "num_classes", "in_channels", "image_size", "mean", "std")
    }
    meta["folded_bn"] = bool(fold)
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={METADATA_FILE: json.dumps(meta)})
    data = buffer.getvalue()
    path = final._write_whole(out, lambda f: f.write(data))
    note = "torch.export, dynamic batch"
    if fold:
        note += f", {fold_note(model, deployed)}"
    return Exported(path, "pt2", note)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The `normnas.json` a `.pt2` file carries (architecture, input size, mean/std)."""
    extra = {METADATA_FILE: ""}
    torch.export.load(str(path), extra_files=extra)
    return dict(json.loads(extra[METADATA_FILE]))
