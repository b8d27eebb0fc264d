"""Keras export: outputs equal PyTorch's on real digits, conventions, errors, the saved file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from normnas.errors import ExportError
from normnas.export import export
from normnas.export.keras import keras_module, keras_outputs, to_keras
from normnas.search.final import load

from .helpers import BN_MOMENTUM, digit_images

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="needs the keras extra"),
    # Keras's variables predate numpy 2's copy keyword; numpy notes it on every weight read
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]
_GN = "GroupNormalization"


def _exported(checkpoint: Path, out: Path, fold_bn: bool = False) -> tuple[Any, nn.Module]:
    """(the .keras file reloaded, the PyTorch model) of an exported checkpoint."""
    done = export(checkpoint, out, fmt="keras", fold_bn=fold_bn)
    assert done.path == out and out.is_file()
    keras = keras_module()
    return keras.saving.load_model(out), load(checkpoint)[0]


@pytest.fixture(scope="module")
def macro(macro_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    return _exported(macro_checkpoint, tmp_path_factory.mktemp("keras") / "macro.keras")


def _max_difference(keras_model: Any, model: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        want = model.eval()(x).numpy()
    return float(np.abs(keras_outputs(keras_model, x) - want).max())


def test_macro_arch_with_every_norm_and_placement_equals_pytorch_on_digits(macro, digits):
    keras_model, model = macro
    x = digit_images(digits)
    assert _max_difference(keras_model, model, x) <= 1e-4
    # the same images, laid out channels last by hand, give the same classes as PyTorch
    nhwc = x.permute(0, 2, 3, 1).numpy()
    classes = np.asarray(keras_model.predict(nhwc, verbose=0)).argmax(1)
    assert (classes == model(x).argmax(1).numpy()).all()


def test_norms_map_to_keras_layers_with_pytorch_settings(macro):
    keras_model, model = macro
    torch_bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    bns = [layer for layer in keras_model.layers if type(layer).__name__ == "BatchNormalization"]
    assert len(bns) == len(torch_bns) == 3
    # Keras's momentum is 1 - PyTorch's: the recipe trained with 0.3
    assert [layer.momentum for layer in bns] == pytest.approx([1 - BN_MOMENTUM] * 3)
    assert [layer.epsilon for layer in bns] == pytest.approx([m.eps for m in torch_bns])
    groups = [layer.groups for layer in keras_model.layers if type(layer).__name__ == _GN]
    gn = model.blocks[1].body[2]
    assert isinstance(gn, nn.GroupNorm)
    # 8 channels: group norm's default groups (8), and instance norm's one group per channel (16)
    assert sorted(groups) == [gn.num_groups, 16]
    (ln,) = [layer for layer in keras_model.layers if type(layer).__name__ == "LayerNormalization"]
    assert ln.axis in (-1, [-1]) and ln.epsilon == pytest.approx(1e-5)


def test_nb201_cell_with_zero_node_equals_pytorch_on_digits(nb201_checkpoint, digits, tmp_path):
    keras_model, model = _exported(nb201_checkpoint, tmp_path / "cell.keras")
    assert _max_difference(keras_model, model, digit_images(digits)) <= 1e-4
    kinds = {type(layer).__name__ for layer in keras_model.layers}
    assert {"AveragePooling2D", "Rescaling", "Add", "BatchNormalization"} <= kinds


def test_explicit_padding_pooling_and_flatten_equal_pytorch(digits):
    # a strided even kernel (ZeroPadding2D), pools that count or skip padding, and a flatten
    # of a 2x2 map whose feature order must be PyTorch's for the Linear after it
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 4, stride=2, padding=1),
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True),
        nn.MaxPool2d(3, stride=1, padding=1),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, 10),
    ).eval()
    keras_model = to_keras(model, (1, 8, 8))
    assert _max_difference(keras_model, model, digit_images(digits)) <= 1e-4


class _Doubled(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x], dim=1)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            nn.Sequential(nn.Conv2d(1, 4, 3), nn.Upsample(scale_factor=2)),
            "cannot map layer 1 (Upsample) to Keras (no Keras layer)",
        ),
        (
            nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect")),
            "cannot map layer 0 (Conv2d) to Keras: padding_mode 'reflect' (Keras pads with zeros "
            "only)",
        ),
        (
            nn.Sequential(nn.BatchNorm2d(1, momentum=None)),
            "cannot map layer 0 (BatchNorm2d) to Keras: momentum None (a cumulative average) has "
            "no Keras equivalent; set one with normnas.nn.set_bn_momentum",
        ),
        (
            nn.Sequential(nn.BatchNorm2d(1, track_running_stats=False)),
            "cannot map layer 0 (BatchNorm2d) to Keras: it tracks no running statistics "
            "(normalizes with batch statistics at inference)",
        ),
    ],
)
def test_a_layer_without_keras_equivalent_is_one_line_export_error(model, message):
    with pytest.raises(ExportError) as info:
        to_keras(model, (1, 8, 8))
    assert str(info.value) == message


def test_concatenation_on_channels_maps_to_the_last_keras_axis(digits):
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), _Doubled(), nn.Conv2d(6, 2, 1)).eval()
    keras_model = to_keras(model, (1, 8, 8))
    x = digit_images(digits, 32)
    with torch.no_grad():
        want = model(x).permute(0, 2, 3, 1).numpy()  # a map out: Keras gives it channels last
    assert np.abs(keras_outputs(keras_model, x) - want).max() <= 1e-4


def test_missing_keras_is_one_line_error_naming_the_extra(macro_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)  # what `import keras` sees when absent
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    out = tmp_path / "m.keras"
    with pytest.raises(ExportError) as info:
        export(macro_checkpoint, out, fmt="keras")
    assert str(info.value) == (
        "--format keras needs keras, and keras is not installed; "
        "pip install 'normnas[keras]' (or: pip install keras)"
    )
    assert not out.exists()


def test_keras_file_name_must_end_in_keras(macro_checkpoint, tmp_path):
    with pytest.raises(ExportError, match=r"m\.h5: a Keras model file must end in \.keras"):
        export(macro_checkpoint, tmp_path / "m.h5", fmt="keras")


def test_fold_bn_leaves_only_the_bns_that_cannot_fold(macro_checkpoint, digits, tmp_path):
    # of the macro arch's 3 BNs only conv → BN → act folds; the other two stay Keras BNs
    keras_model, model = _exported(macro_checkpoint, tmp_path / "folded.keras", fold_bn=True)
    kinds = [type(layer).__name__ for layer in keras_model.layers]
    assert kinds.count("BatchNormalization") == 2
    assert _max_difference(keras_model, model, digit_images(digits)) <= 1e-4
