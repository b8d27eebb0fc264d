"""A user's own data: npz:PATH and folder:PATH, and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from normnas.data import load
from normnas.data.common import DataWarning
from normnas.errors import DataError


def _raw(split, bundle) -> torch.Tensor:
    mean = torch.tensor(bundle.mean)[None, :, None, None]
    std = torch.tensor(bundle.std)[None, :, None, None]
    return split.x * std + mean


def _labels(n: int, k: int = 3) -> np.ndarray:
    return np.arange(n) % k


@pytest.mark.parametrize("layout", ["nhwc", "nchw", "nhw"])
def test_npz_layouts_uint8(tmp_path: Path, layout: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 3, 7, 5), dtype=np.uint8)  # N C H W
    if layout == "nhwc":
        stored = x.transpose(0, 2, 3, 1)
    elif layout == "nhw":
        x = x[:, :1]
        stored = x[:, 0]
    else:
        stored = x
    xt = x[:6]
    path = tmp_path / "d.npz"
    store_t = stored[:6]
    np.savez(path, x=stored, y=_labels(40), x_test=store_t, y_test=_labels(6))
    b = load(f"npz:{path}", valid_fraction=0.25)
    assert b.in_channels == x.shape[1] and b.image_size == (7, 5) and b.num_classes == 3
    assert len(b.train) == 30 and len(b.valid) == 10 and len(b.test) == 6
    assert torch.allclose(_raw(b.test, b) * 255, torch.from_numpy(xt).float(), atol=1e-3)


def test_npz_float_without_test_gets_a_fixed_split(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(50, 2, 4, 4)).astype(np.float32)
    path = tmp_path / "f.npz"
    np.savez(path, x=x, y=_labels(50, 5))
    b = load(f"npz:{path}")
    assert len(b.test) == 10 and b.num_classes == 5
    assert b.train.x.dtype == torch.float32
    b2 = load(f"npz:{path}", seed=3)
    assert torch.allclose(_raw(b.test, b), _raw(b2.test, b2), atol=1e-5)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.zeros((10, 8, 8, 8), np.uint8), "y": _labels(10)}, "cannot tell the channel"),
        ({"x": np.zeros((10, 64), np.uint8), "y": _labels(10)}, "x must be N x H x W x C"),
        ({"x": np.zeros((10, 4, 4, 1), np.uint8), "y": _labels(9)}, r"y must have shape \(10,\)"),
        ({"x": np.zeros((10, 4, 4, 1), np.uint8)}, "missing array 'y'"),
        (
            {"x": np.zeros((10, 4, 4, 1), np.uint8), "y": _labels(10), "num_classes": 2},
            r"label 2 out of range \[0, 2\)",
        ),
        ({"x": np.zeros((10, 4, 4, 1), np.uint8), "y": _labels(10) - 1}, "label -1 out of range"),
        ({"x": np.zeros((10, 4, 4, 1), np.uint8), "y": _labels(10) + 0.5}, "integer class"),
        ({"x": np.zeros((10, 4, 4, 1), np.int32), "y": _labels(10)}, "uint8 or float"),
        (
            {
                "x": np.zeros((10, 4, 4, 1), np.uint8),
                "y": _labels(10),
                "x_test": np.zeros((3, 5, 5, 1), np.uint8),
                "y_test": _labels(3),
            },
            "x_test shape",
        ),
    ],
)
def test_npz_errors_name_the_file_and_problem(tmp_path: Path, arrays: dict, match: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as e:
        load(f"npz:{path}")
    assert str(path) in str(e.value)


def test_npz_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.npz: npz file not found"):
        load(f"npz:{tmp_path / 'nope.npz'}")


def _save(path: Path, arr: np.ndarray, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)


def _folder(root: Path, classes=("cat", "dog"), n: int = 10, rgb: bool = True) -> dict:
    rng = np.random.default_rng(0)
    images = {}
    for c in classes:
        for i in range(n):
            shape = (6, 5, 3) if rgb else (6, 5)
            arr = rng.integers(0, 256, shape, dtype=np.uint8)
            name = root / c / f"{i:02d}.png"
            _save(name, arr, "RGB" if rgb else "L")
            images[name] = arr
    return images


def test_folder_rgb_and_grey(tmp_path: Path) -> None:
    _folder(tmp_path / "rgb")
    b = load(f"folder:{tmp_path / 'rgb'}")
    assert (b.num_classes, b.in_channels, b.image_size) == (2, 3, (6, 5))
    assert b.classes == ["cat", "dog"]
    assert len(b.train) + len(b.valid) + len(b.test) == 20
    _folder(tmp_path / "grey", classes=("a", "b", "c"), rgb=False)
    g = load(f"folder:{tmp_path / 'grey'}")
    assert (g.num_classes, g.in_channels) == (3, 1)


def test_folder_with_train_and_test(tmp_path: Path) -> None:
    images = _folder(tmp_path / "train")
    test = _folder(tmp_path / "test", n=3)
    b = load(f"folder:{tmp_path}", valid_fraction=0.2)
    assert len(b.test) == 6 and len(b.train) + len(b.valid) == 20
    first = next(iter(test.values()))  # test/cat/00.png, first in sorted order
    pixels = _raw(b.test, b)[0] * 255
    assert torch.allclose(pixels, torch.from_numpy(first).permute(2, 0, 1).float(), atol=1e-3)
    assert len(images) == 20


def test_folder_empty_class(tmp_path: Path) -> None:
    _folder(tmp_path)
    (tmp_path / "zebra").mkdir()
    with pytest.raises(ValueError, match=r"zebra: empty class folder"):
        load(f"folder:{tmp_path}")


def test_folder_mixed_sizes_names_the_file(tmp_path: Path) -> None:
    _folder(tmp_path)
    _save(tmp_path / "dog" / "big.png", np.zeros((9, 9, 3), np.uint8), "RGB")
    with pytest.raises(ValueError, match=r"big\.png: image size 9x9 differs"):
        load(f"folder:{tmp_path}")


def test_folder_unreadable_image_names_the_file(tmp_path: Path) -> None:
    _folder(tmp_path)
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"broken\.jpg: cannot read image"):
        load(f"folder:{tmp_path}")


def test_folder_without_class_folders(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no class sub-folders"):
        load(f"folder:{tmp_path}")


def test_folder_reads_nested_images_and_says_how_many(tmp_path: Path) -> None:
    images = _folder(tmp_path, n=6)
    for i in range(4):  # cat/2023/jan/…: a class split by date is still one class
        _save(tmp_path / "cat" / "2023" / "jan" / f"n{i}.png", next(iter(images.values())), "RGB")
    for i in range(5):  # a class whose images are all nested
        _save(tmp_path / "bird" / "shots" / f"{i}.png", next(iter(images.values())), "RGB")
    # a notebook's hidden copy (of another size) is not data: it is skipped, not read
    _save(tmp_path / "dog" / ".ipynb_checkpoints" / "00.png", np.zeros((9, 9, 3), np.uint8), "RGB")
    with pytest.warns(DataWarning) as caught:
        b = load(f"folder:{tmp_path}")
    assert b.classes == ["bird", "cat", "dog"]
    assert len(b.train) + len(b.valid) + len(b.test) == 5 + 10 + 6
    messages = sorted(str(w.message) for w in caught if "sub-folders" in str(w.message))
    assert messages == [
        f"{tmp_path / 'bird'}: 5 of the 5 images of class 'bird' are in its sub-folders; "
        "they were read as that class",
        f"{tmp_path / 'cat'}: 4 of the 10 images of class 'cat' are in its sub-folders; "
        "they were read as that class",
    ]
