"""Session fixtures: real digits, and checkpoints of the two test models (see helpers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tests import support

import normnas.data
from normnas.data import DataBundle

from .helpers import MACRO, MACRO_ARCH, NB201, NB201_ARCH, write_checkpoint


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: these small nets run 50x slower when 2 threads share a busy core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits() -> DataBundle:
    return normnas.data.load("digits")


@pytest.fixture(scope="session")
def macro_checkpoint(tmp_path_factory: pytest.TempPathFactory, digits: DataBundle) -> Path:
    path = tmp_path_factory.mktemp("macro") / "macro-best.pt"
    return write_checkpoint(path, MACRO, MACRO_ARCH, digits)


@pytest.fixture(scope="session")
def nb201_checkpoint(tmp_path_factory: pytest.TempPathFactory, digits: DataBundle) -> Path:
    path = tmp_path_factory.mktemp("nb201") / "nb201-best.pt"
    return write_checkpoint(path, NB201, NB201_ARCH, digits)


@pytest.fixture(scope="session")
def study_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding study `t` of `normnas search` (1 trial, 1 epoch on digits) and its
    saved best model, for the `normnas export` command."""
    folder = tmp_path_factory.mktemp("study")
    (folder / "tiny.yaml").write_text(support.TINY)
    result = support.invoke(["search", "-c", "tiny.yaml", "--trials", "1", "--study", "t"], folder)
    assert result.exit_code == 0, result.output
    return folder
