"""Fixtures of the oneshot tests: digits (8x8), supernets with C=4, N=1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from normnas.data.split import DataBundle
from normnas.oneshot import NB201Supernet
from normnas.spaces import NB201Space

from .helpers import randomize_bn, small_digits


@pytest.fixture
def space() -> NB201Space:
    return NB201Space()


@pytest.fixture
def data() -> DataBundle:
    return small_digits()


@pytest.fixture
def supernet(space: NB201Space) -> NB201Supernet:
    torch.manual_seed(0)
    net = NB201Supernet(space, num_classes=10, in_channels=1, C=4, N=1)
    randomize_bn(net)
    return net


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
