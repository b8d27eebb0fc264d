"""Supernet training: SPOS/FairNAS updates, BN-only training, checkpoints, kill and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from normnas.data.split import DataBundle
from normnas.errors import StorageError
from normnas.oneshot import NB201Supernet, load_checkpoint, train_supernet
from normnas.spaces import NB201Space
from normnas.spaces.nb201 import OPS
from normnas.train import TrainConfig

from .helpers import small_digits

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import sys, time
import torch
torch.set_num_threads(1)
from normnas.oneshot import NB201Supernet, train_supernet
from normnas.spaces import NB201Space
from normnas.train import TrainConfig
from tests.oneshot.helpers import small_digits

ckpt, mode = sys.argv[1], sys.argv[2]

def callback(record):
    print(f"epoch {record.epoch} checkpointed", flush=True)
    if mode == "crash" and record.epoch == 1:
        time.sleep(120)  # killed here, after the first checkpoint

torch.manual_seed(0)
net = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
config = TrainConfig(epochs=3, batch_size=32, lr=0.1, seed=3)
result = train_supernet(net, small_digits(), config, "uniform", ckpt, callback=callback)
print(f"done resumed_from={result.resumed_from}", flush=True)
"""


def _child(ckpt: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ckpt), mode],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _uninterrupted(ckpt: Path) -> None:
    """The children's training in this process, on one thread as theirs, never stopped."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        net = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
        config = TrainConfig(epochs=3, batch_size=32, lr=0.1, seed=3)
        assert train_supernet(net, small_digits(), config, "uniform", ckpt).status == "ok"
    finally:
        torch.set_num_threads(threads)


def test_killed_training_resumes_bit_identical(tmp_path: Path) -> None:
    crashed = _child(tmp_path / "a.pt", "crash")
    assert crashed.stdout is not None
    line = crashed.stdout.readline()
    assert line.strip() == "epoch 1 checkpointed", crashed.stderr.read() if crashed.stderr else ""
    crashed.send_signal(signal.SIGKILL)
    assert crashed.wait(60) == -signal.SIGKILL
    assert load_checkpoint(tmp_path / "a.pt")["epoch"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file

    resumed = _child(tmp_path / "a.pt", "resume")
    _uninterrupted(tmp_path / "b.pt")  # meanwhile, here
    out_resumed, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    assert "done resumed_from=1" in out_resumed
    assert "epoch 1" not in out_resumed  # epoch 1 was not trained again

    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for pid, state in b["optimizer"]["state"].items():
        assert torch.equal(
            a["optimizer"]["state"][pid]["momentum_buffer"], state["momentum_buffer"]
        )
    assert a["scheduler"] == b["scheduler"]
    losses = [h["train_loss"] for h in a["history"]]
    assert losses == [h["train_loss"] for h in b["history"]]


def _changed(before: dict[str, torch.Tensor], net: NB201Supernet) -> set[str]:
    return {k for k, v in net.state_dict().items() if k in before and not torch.equal(before[k], v)}


def _one_step(data: DataBundle, sampling: str, trainable: str = "all") -> tuple[set[str], set]:
    """Train for exactly one optimizer step (one batch holds the whole split)."""
    torch.manual_seed(0)
    net = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
    before = {k: v.clone() for k, v in net.named_parameters()}
    config = TrainConfig(epochs=1, batch_size=len(data.train), lr=0.1, seed=5)
    train_supernet(net, data, config, sampling, trainable=trainable)  # type: ignore[arg-type]
    ops_changed = {
        (e, op)
        for key in _changed(before, net)
        if key.startswith("cells.0.edges.")
        for e, op in [(int(key.split(".")[3]), key.split(".")[4])]
    }
    return _changed(before, net), ops_changed


def test_uniform_sampling_updates_one_path_fair_sampling_every_op(data: DataBundle) -> None:
    _, uniform_ops = _one_step(data, "uniform")
    arch = NB201Space().sample(np.random.default_rng(5))  # the arch the step sampled
    convs = {(e, op) for e, op in enumerate(arch) if op.startswith("nor_conv")}
    assert uniform_ops == convs
    _, fair_ops = _one_step(data, "fair")
    # edge 3<-0 reads the cell input and feeds the output: live in every one of the 5 archs,
    # so one fair step trains both of its convs (other edges can sit on a dead path)
    assert {op for e, op in fair_ops if e == 3} == {op for op in OPS if op.startswith("nor_conv")}
    assert len(fair_ops) > len(uniform_ops)


def test_bn_only_training_changes_only_bn_affine(data: DataBundle) -> None:
    changed, _ = _one_step(data, "fair", trainable="bn")
    assert changed  # something learned
    net = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
    modules = dict(net.named_modules())
    for key in changed:
        owner = modules[key.rsplit(".", 1)[0]]
        assert isinstance(owner, torch.nn.BatchNorm2d), key


def test_finished_checkpoint_is_loaded_not_retrained(data: DataBundle, tmp_path: Path) -> None:
    ckpt = tmp_path / "s.pt"
    config = TrainConfig(epochs=1, batch_size=64, seed=1)
    torch.manual_seed(0)
    first = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
    train_supernet(first, data, config, "uniform", ckpt)
    mtime = ckpt.stat().st_mtime_ns
    torch.manual_seed(1)  # a different init: the checkpoint must replace it
    second = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
    result = train_supernet(second, data, config, "uniform", ckpt)
    assert result.resumed_from == 1 and result.epochs_run == 1
    assert ckpt.stat().st_mtime_ns == mtime
    for (k, v), w in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_checkpoint_of_another_setup_is_refused(data: DataBundle, tmp_path: Path) -> None:
    ckpt = tmp_path / "s.pt"
    net = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
    train_supernet(net, data, TrainConfig(epochs=1, batch_size=64), "uniform", ckpt)
    with pytest.raises(StorageError, match=r"s\.pt: the checkpoint was made with another sampling"):
        train_supernet(net, data, TrainConfig(epochs=1, batch_size=64), "fair", ckpt)
    wider = NB201Supernet(NB201Space(), 10, 1, C=8, N=1)
    with pytest.raises(StorageError, match="another shapes"):
        train_supernet(wider, data, TrainConfig(epochs=1, batch_size=64), "uniform", ckpt)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(StorageError, match=r"s\.pt: not a readable supernet checkpoint"):
        train_supernet(net, data, TrainConfig(epochs=1, batch_size=64), "uniform", ckpt)


def test_bad_sampling_is_refused(data: DataBundle) -> None:
    net = NB201Supernet(NB201Space(), 10, 1, C=4, N=1)
    with pytest.raises(ValueError, match="one of uniform, fair, sandwich, got 'greedy'"):
        train_supernet(net, data, TrainConfig(epochs=1), "greedy")  # type: ignore[arg-type]
