"""Sequence data: `ucr:NAME` from aeon's bundled files (official split, train-only
normalization, labels 0..K-1, one-line refusals) and npz files of (N, T, C) sequences."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from normnas.data import load
from normnas.errors import DataError

pytest.importorskip("aeon")


def test_gunpoint_has_its_official_split_sizes_and_train_only_statistics() -> None:
    from aeon.datasets import load_gunpoint

    b = load("ucr:gunpoint", valid_fraction=0.2, seed=3)  # names are case-insensitive
    assert b.name == "ucr:GunPoint" and b.is_sequence
    assert len(b.train) + len(b.valid) == 50 and len(b.test) == 150 and len(b.valid) == 10
    assert b.input_shape == (1, 150) and b.num_classes == 2 and b.classes == ["1", "2"]
    # normalized with the train split's mean and std only: reversing it gives aeon's values
    x_test, y_test = load_gunpoint(split="test")
    raw = b.test.x * torch.tensor(b.std)[None, :, None] + torch.tensor(b.mean)[None, :, None]
    torch.testing.assert_close(raw.double(), torch.from_numpy(x_test), atol=1e-4, rtol=0)
    assert b.train.x.mean().abs() < 1e-5 and abs(float(b.train.x.std()) - 1) < 1e-2
    assert b.test.y.tolist() == [int(v) - 1 for v in y_test]


def test_multivariate_string_labels_map_to_sorted_indices() -> None:
    b = load("ucr:BasicMotions")
    assert b.input_shape == (6, 100) and len(b.test) == 40
    assert b.classes == ["badminton", "running", "standing", "walking"]
    assert sorted(set(b.test.y.tolist())) == [0, 1, 2, 3]


def test_unknown_and_regression_names_list_the_bundled_ones() -> None:
    for name in ("ucr:NoSuchSet", "ucr:Covid3Month"):  # Covid3Month is a regression set
        with pytest.raises(DataError, match=r"bundled: .*GunPoint") as err:
            load(name)
        assert "\n" not in str(err.value) and "nothing is downloaded" in str(err.value)


def test_varying_lengths_are_refused_in_one_line() -> None:
    with pytest.raises(DataError, match=r"varying lengths \(7\.\.26\).*ucr:JapaneseVowels_eq"):
        load("ucr:JapaneseVowels")


def test_missing_aeon_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)  # what an absent package raises
    with pytest.raises(DataError, match=r"pip install 'normnas\[seq\]'"):
        load("ucr:GunPoint")


def test_npz_sequences_are_n_t_c(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 12, 2)).astype(np.float32)  # N, T, C
    xt = rng.normal(size=(8, 12, 2)).astype(np.float32)
    path = tmp_path / "s.npz"
    np.savez(path, x=x, y=np.arange(30) % 3, x_test=xt, y_test=np.arange(8) % 3)
    b = load(f"npz:{path}", valid_fraction=0.2, sequences=True)  # as a seq space asks
    assert b.is_sequence and b.input_shape == (2, 12) and b.num_classes == 3
    # without it, a 3-D float array is what it always was: N x H x W grey images
    assert load(f"npz:{path}").image_size == (12, 2)
    np.savez(tmp_path / "l.npz", x=x, y=np.arange(30) % 3, layout="ntc")  # the file says so
    assert load(f"npz:{tmp_path / 'l.npz'}").input_shape == (2, 12)
    raw = b.test.x * torch.tensor(b.std)[None, :, None] + torch.tensor(b.mean)[None, :, None]
    torch.testing.assert_close(raw, torch.from_numpy(xt.transpose(0, 2, 1)), atol=1e-4, rtol=0)


def test_npz_3d_uint8_stays_grey_images_and_layout_overrides(tmp_path: Path) -> None:
    x = np.random.default_rng(1).integers(0, 256, (20, 6, 5), dtype=np.uint8)
    np.savez(tmp_path / "g.npz", x=x, y=np.arange(20) % 2)
    assert load(f"npz:{tmp_path / 'g.npz'}").image_size == (6, 5)
    np.savez(tmp_path / "f.npz", x=x.astype(np.float32), y=np.arange(20) % 2, layout="nhw")
    assert load(f"npz:{tmp_path / 'f.npz'}").image_size == (6, 5)
    np.savez(tmp_path / "b.npz", x=x.astype(np.float32), y=np.arange(20) % 2, layout="tc")
    with pytest.raises(DataError, match="layout must be one of"):
        load(f"npz:{tmp_path / 'b.npz'}")


def test_an_image_space_on_sequences_is_one_line(tmp_path: Path) -> None:
    from normnas.search.setup import check_image_size
    from normnas.spaces import MacroSpace, SeqSpace

    b = load("ucr:ItalyPowerDemand")
    with pytest.raises(DataError, match=r"holds sequences .* use --space seq"):
        check_image_size(MacroSpace(), b)
    check_image_size(SeqSpace(), b)  # the sequence space takes it
    with pytest.raises(DataError, match=r"holds images, but .* takes sequences"):
        check_image_size(SeqSpace(), load("digits"))
