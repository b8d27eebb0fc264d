"""Split batching, tensor augmentation, and the digits bundle."""

from __future__ import annotations

import pytest
import torch

from normnas.data import DATASET_NAMES, Split, load, random_crop_flip


def _split(n: int = 10, augment: bool = False) -> Split:
    x = torch.arange(n * 2 * 4 * 4, dtype=torch.float32).reshape(n, 2, 4, 4)
    return Split(x, torch.arange(n) % 3, augment=augment)


def test_batches_in_order_without_shuffle() -> None:
    s = _split(10)
    batches = list(s.batches(4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([x for x, _ in batches]), s.x)


def test_shuffle_covers_every_sample_once_and_follows_the_generator() -> None:
    s = _split(25)

    def order(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.cat([x[:, 0, 0, 0] for x, _ in s.batches(7, shuffle=True, generator=g)])

    a, b, c = order(1), order(1), order(2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(a.sort().values, s.x[:, 0, 0, 0])


def test_drop_last_and_num_batches() -> None:
    s = _split(10)
    assert [len(y) for _, y in s.batches(4, drop_last=True)] == [4, 4]
    assert s.num_batches(4) == 3 and s.num_batches(4, drop_last=True) == 2
    with pytest.raises(ValueError, match="batch_size"):
        next(s.batches(0))


def test_split_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="N, C, H, W"):  # (N, C, T) sequences are 3-D
        Split(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="images only"):  # crop and flip need images
        Split(torch.zeros(3, 4, 4), torch.zeros(3, dtype=torch.long), augment=True)
    with pytest.raises(ValueError, match=r"Split\.y"):
        Split(torch.zeros(3, 1, 4, 4), torch.zeros(2, dtype=torch.long))


def test_crop_flip_gives_a_shifted_crop_of_the_padded_image() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 3, 6, 5)
    out = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(3))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    kinds = set()
    for i in range(len(x)):
        found = None
        for dy in range(5):
            for dx in range(5):
                crop = padded[i, :, dy : dy + 6, dx : dx + 5]
                for flip in (False, True):
                    if torch.equal(out[i], crop.flip(2) if flip else crop):
                        found = (dy, dx, flip)
        assert found is not None, f"sample {i} is not a crop of its padded image"
        kinds.add(found)
    assert len(kinds) > 3  # offsets and flips vary across the batch


def test_augmented_split_changes_batches_reproducibly() -> None:
    s = _split(8, augment=True)

    def first(seed: int) -> torch.Tensor:
        return next(s.batches(8, generator=torch.Generator().manual_seed(seed)))[0]

    assert torch.equal(first(0), first(0))
    assert not torch.equal(first(0), s.x)


def test_digits_bundle_shapes_and_train_statistics() -> None:
    b = load("digits")
    assert (b.num_classes, b.in_channels, b.image_size) == (10, 1, (8, 8))
    assert len(b.train) + len(b.valid) + len(b.test) == 1797
    assert len(b.test) == 360 and abs(len(b.valid) - 0.1 * 1437) < 2
    assert not b.train.augment
    assert b.train.x.dtype == torch.float32 and b.train.y.dtype == torch.int64
    # normalized with the train split's own statistics: mean 0, std 1 there
    assert abs(float(b.train.x.mean())) < 1e-5
    assert abs(float(b.train.x.std(unbiased=False)) - 1) < 1e-4
    raw = b.train.x * b.std[0] + b.mean[0]
    assert float(raw.min()) > -1e-5 and float(raw.max()) < 1 + 1e-5  # pixels 0..16 -> [0, 1]
    # stratified: every class in every split
    for split in (b.train, b.valid, b.test):
        assert torch.bincount(split.y, minlength=10).min() > 0


def test_digits_split_is_deterministic_per_seed_and_test_is_fixed() -> None:
    a, a2, b = load("digits", seed=0), load("digits", seed=0), load("digits", seed=1)
    assert torch.equal(a.valid.y, a2.valid.y) and torch.equal(a.train.x, a2.train.x)
    assert not torch.equal(a.valid.x, b.valid.x)
    raw_test_a = a.test.x * a.std[0] + a.mean[0]
    raw_test_b = b.test.x * b.std[0] + b.mean[0]
    assert torch.allclose(raw_test_a, raw_test_b, atol=1e-5)


def test_train_plus_valid_joins_and_keeps_augmentation() -> None:
    b = load("digits", valid_fraction=0.2)
    tv = b.train_plus_valid()
    assert len(tv) == len(b.train) + len(b.valid)
    assert tv.augment == b.train.augment
    assert torch.equal(tv.y[: len(b.train)], b.train.y)


def test_valid_fraction_zero_gives_empty_valid() -> None:
    b = load("digits", valid_fraction=0.0)
    assert len(b.valid) == 0 and len(b.train) == 1437


def test_unknown_name_and_bad_fraction() -> None:
    with pytest.raises(ValueError, match="valid names: digits, cifar10") as e:
        load("imagenet")
    for name in DATASET_NAMES:
        assert name in str(e.value)
    with pytest.raises(ValueError, match="valid_fraction"):
        load("digits", valid_fraction=1.5)


def test_replace_does_not_share_the_device_cache() -> None:
    import dataclasses

    s = _split(6)
    s._device_cache["meta"] = (s.x, s.y)
    t = dataclasses.replace(s, x=s.x[:3], y=s.y[:3])
    assert t._device_cache == {} and len(t) == 3


def test_flip_only_and_crop_only() -> None:
    torch.manual_seed(1)
    x = torch.randn(32, 2, 5, 5)
    g = torch.Generator().manual_seed(0)
    flipped = random_crop_flip(x, padding=0, generator=g)
    same = [torch.equal(a, b) for a, b in zip(flipped, x, strict=True)]
    mirrored = [torch.equal(a, b.flip(2)) for a, b in zip(flipped, x, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert any(same) and any(mirrored)
    assert torch.equal(random_crop_flip(x, padding=0, generator=g, flip=False), x)
