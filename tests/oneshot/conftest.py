"""Fixtures of the oneshot tests: digits (8x8), supernets with C=4, N=1, and for the
end-to-end searches a small digits file and the supernets trained once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from normnas.data.split import DataBundle
from normnas.oneshot import NB201Supernet
from normnas.spaces import NB201Space

from .helpers import ONESHOT_CONFIG, invoke, randomize_bn, small_digits, write_digits_npz


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


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 digits as `npz:PATH` data, for the end-to-end searches."""
    return write_digits_npz(tmp_path_factory.mktemp("data") / "digits600.npz")


@pytest.fixture(scope="session")
def trained_supernet(
    tmp_path_factory: pytest.TempPathFactory, digits_npz: Path
) -> Callable[[str], list[Path]]:
    """`get(evaluator)`: the checkpoint files of study `s`'s supernet under ONESHOT_CONFIG on
    `digits_npz` (`s.supernet.pt`; the BN indicator's phases `s.bn-indicator.pt.warmup` and
    `.bn`), trained once per session by a one-trial search and checked to lie beside its
    storage. Copied beside a study named `s`, a search reuses them instead of training."""
    made: dict[str, list[Path]] = {}

    def get(evaluator: str) -> list[Path]:
        if evaluator not in made:
            folder = tmp_path_factory.mktemp(f"supernet-{evaluator}")
            (folder / "c.yaml").write_text(ONESHOT_CONFIG.format(data=digits_npz))
            args = ["search", "-c", "c.yaml", "--evaluator", evaluator, "--trials", "1"]
            result = invoke([*args, "--study", "s", "--no-final", "--no-progress"], folder)
            assert result.exit_code == 0, result.output
            # beside the study's storage (the indicator's last phase is `.bn`)
            last = folder / f"s.{evaluator}.pt{'.bn' if evaluator == 'bn-indicator' else ''}"
            assert last.is_file()
            made[evaluator] = sorted(folder.glob(f"s.{evaluator}.pt*"))
        return made[evaluator]

    return get
