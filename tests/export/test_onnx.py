"""ONNX export: BN folded, opset stated, ONNX Runtime equals PyTorch on real digits; errors."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tests import support

from normnas.errors import ExportError
from normnas.export import OPSET, export
from normnas.export._common import check_close
from normnas.nn import find_foldable_pairs, is_batchnorm
from normnas.search.final import load

from .helpers import digit_images

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime")),
    reason="needs the onnx extra",
)


@pytest.mark.parametrize("which", ["macro_checkpoint", "nb201_checkpoint"])
def test_onnx_runtime_equals_pytorch_on_digits_with_bn_folded(which, request, digits, tmp_path):
    import onnx
    import onnxruntime as ort

    checkpoint: Path = request.getfixturevalue(which)
    out = tmp_path / "model.onnx"
    done = export(checkpoint, out, fmt="onnx", inputs=digit_images(digits, 64))
    assert done.path == out and f"opset {OPSET}" in done.note

    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    model, ckpt = load(checkpoint)
    assert meta["opset"] == str(OPSET) and meta["arch"] == ckpt["arch"]
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    # only the BNs that cannot fold (after an activation, before a conv, after a sum) remain
    folds = len(find_foldable_pairs(model))
    unfoldable = sum(1 for m in model.modules() if is_batchnorm(m)) - folds
    assert meta["bn_folded"] == str(folds) and folds > 0
    assert sum(n.op_type == "BatchNormalization" for n in proto.graph.node) == unfoldable

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = digit_images(digits)
    for batch in (x[:1], x[:32], x):  # the batch size is dynamic
        with torch.no_grad():
            want = model(batch).numpy()
        got = session.run(None, {"input": batch.numpy()})[0]
        assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4


def test_missing_onnxruntime_is_one_line_error_naming_the_extra(
    macro_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import` sees when absent
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError) as info:
        export(macro_checkpoint, out, fmt="onnx")
    assert str(info.value) == (
        "--format onnx needs onnx and onnxruntime, and onnxruntime is not installed; "
        "pip install 'normnas[onnx]' (or: pip install onnx onnxruntime)"
    )
    assert not out.exists()


@pytest.mark.parametrize("difference", [2e-4, float("nan")])
def test_outputs_beyond_the_tolerance_refuse_the_file(difference):
    with pytest.raises(ExportError) as info:
        check_close(Path("m.onnx"), "ONNX Runtime", difference)
    assert str(info.value) == (
        f"m.onnx: ONNX Runtime's outputs differ from PyTorch's by {difference:.3g} "
        "(more than 0.0001); the file was not written"
    )
    check_close(Path("m.onnx"), "ONNX Runtime", 9e-5)  # within: no error


def test_export_command_writes_onnx_and_keras_and_names_bad_formats(study_folder):
    def run(*args: str):
        return support.invoke(["export", "--study", "t", *args], study_folder)

    onnx_run = run("--out", "best.onnx", "--format", "onnx")
    assert onnx_run.exit_code == 0, onnx_run.output
    assert onnx_run.output.startswith(f"wrote best.onnx (onnx, opset {OPSET}, ")
    assert (study_folder / "best.onnx").is_file()
    if importlib.util.find_spec("keras") is not None:
        keras_run = run("--out", "best.keras", "--format", "keras")
        assert keras_run.exit_code == 0, keras_run.output
        assert "channels_last input (N, H, W, C)" in keras_run.output
        assert (study_folder / "best.keras").is_file()
        wrong = run("--out", "best.h5", "--format", "keras")
        assert wrong.exit_code == 2
        assert wrong.output.strip().splitlines() == [
            "error: best.h5: a Keras model file must end in .keras (--out)"
        ]
    unknown = run("--out", "m.tflite", "--format", "tflite")
    assert unknown.exit_code == 2 and unknown.output.strip() == (
        "error: --format: unknown format 'tflite'; "
        "valid: state_dict, pt2, onnx, keras, torchscript"
    )
