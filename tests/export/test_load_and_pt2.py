"""normnas.load_model (plain and folded checkpoints) and the torch.export (.pt2) format,
both against the stored model's own predictions on real digits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import normnas
from normnas.errors import ExportError
from normnas.export import export
from normnas.export.pt2 import read_metadata
from normnas.search.final import load

from .helpers import digit_images


def _reference(checkpoint: Path, x: torch.Tensor) -> torch.Tensor:
    model, _ = load(checkpoint)
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("which", ["macro_checkpoint", "nb201_checkpoint"])
def test_load_model_predicts_what_the_stored_model_predicts(which, request, digits):
    checkpoint: Path = request.getfixturevalue(which)
    model = normnas.load_model(checkpoint)
    assert not model.training
    x = digit_images(digits, 64)
    with torch.no_grad():
        got = model(x)
    # the reference: the same architecture built by hand with the stored weights
    ckpt = torch.load(checkpoint, weights_only=True)
    from normnas.search.spaces import space_from_spec

    space = space_from_spec(ckpt["space"])
    net = space.build(space.from_str(ckpt["arch"]), ckpt["num_classes"], ckpt["in_channels"])
    net.load_state_dict(ckpt["state_dict"])
    with torch.no_grad():
        want = net.eval()(x)
    assert torch.equal(got, want)
    assert got.argmax(1).eq(digits.test.y[:64]).float().mean() > 0.05  # logits of 10 classes


def test_load_model_reads_a_folded_export(macro_checkpoint, digits, tmp_path):
    out = tmp_path / "folded.pt"
    export(macro_checkpoint, out, fmt="state_dict", fold_bn=True)
    model = normnas.load_model(out)
    x = digit_images(digits, 64)
    with torch.no_grad():
        got = model(x)
    # fewer BatchNorms than the stored model: the folded structure was rebuilt
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) < sum(
        isinstance(m, torch.nn.BatchNorm2d) for m in load(macro_checkpoint)[0].modules()
    )
    assert (got - _reference(macro_checkpoint, x)).abs().max() <= 1e-4


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.pt", None, "no such checkpoint file"),
        ("junk.pt", b"not a checkpoint", "not a readable checkpoint"),
        ("model.onnx", b"x", "onnxruntime.InferenceSession"),
        ("model.pt2", b"x", "torch.export.load"),
    ],
)
def test_load_model_errors_name_the_file_and_the_right_loader(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ExportError, match=message) as info:
        normnas.load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_load_model_names_a_torchscript_file(macro_checkpoint, tmp_path):
    out = tmp_path / "model.ts"
    export(macro_checkpoint, out, fmt="torchscript")
    with pytest.raises(ExportError, match=r"torch\.jit\.load"):
        normnas.load_model(out)


@pytest.mark.parametrize("fold_bn", [False, True])
def test_pt2_loads_with_torch_export_and_equals_pytorch_at_batch_1_and_3(
    macro_checkpoint, digits, tmp_path, fold_bn
):
    out = tmp_path / "model.pt2"
    done = export(macro_checkpoint, out, fmt="pt2", fold_bn=fold_bn)
    assert done.path == out and "dynamic batch" in done.note
    program = torch.export.load(str(out))
    module = program.module()
    x = digit_images(digits, 8)
    for n in (1, 3):
        with torch.no_grad():
            got = module(x[:n])
        assert got.shape == (n, 10)
        assert (got - _reference(macro_checkpoint, x[:n])).abs().max() <= 1e-4
    meta = read_metadata(out)
    ckpt = torch.load(macro_checkpoint, weights_only=True)
    assert meta["arch"] == ckpt["arch"] and meta["mean"] == ckpt["mean"]
    assert meta["folded_bn"] is fold_bn


def test_pt2_of_an_nb201_cell(nb201_checkpoint, digits, tmp_path):
    out = export(nb201_checkpoint, tmp_path / "cell.pt2", fmt="pt2").path
    x = digit_images(digits, 3)
    with torch.no_grad():
        got = torch.export.load(str(out)).module()(x)
    assert (got - _reference(nb201_checkpoint, x)).abs().max() <= 1e-4
