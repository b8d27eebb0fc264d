"""Supernet training: SPOS uniform single-path sampling and FairNAS fair sampling.

One optimizer step per batch. `uniform` (SPOS, Guo et al. 2020): one architecture drawn
uniformly per step, forward/backward on its path only. `fair` (FairNAS, Chu et al. 2021):
the k = `fair_archs` architectures that together use every op of every edge once, each
run forward/backward on the same batch, their gradients summed (as FairNAS does; not
averaged), then one step. `sandwich` (slimmable networks, Yu & Huang 2019; BigNAS, Yu et
al. 2020): the largest, the smallest and two uniformly drawn sub-networks
(`sandwich_archs`, the macro supernet's), gradients summed, one step; without BigNAS's
in-place distillation (every path learns from the labels). Ops off the sampled paths get
no gradient (None), so SGD/AdamW leave them, their momentum and their weight decay alone
that step. A supernet with `sample_arch(rng)` (a few-shot sub-supernet, whose split edge
is fixed) draws its uniform architectures with it.

The recipe is the trainer's: `TrainConfig` (optimizer, lr, schedule by name with warm-up,
weight decay groups, label smoothing, grad clip, BN momentum, seed) through the same
factories `fit` uses, and AMP (bf16 where supported, else fp16 with a GradScaler) and
channels-last on CUDA as `fit` does them.

Checkpoint: after every epoch, the model, optimizer, scheduler, GradScaler, the
architecture sampler's and the batch order's RNG states, torch's global RNG states, the
epoch and the history are written atomically (temporary file, fsync, rename) and read back
with `torch.load(weights_only=True)`. A run given an existing checkpoint resumes after its
epoch; on CPU the resumed run ends bit-identical to an uninterrupted one.

Warm start (`warm_start=`, a finished checkpoint of the same supernet): a fresh run starts
from its weights, BN statistics, optimizer state (momentum) and RNG states, with a new LR
schedule over this run's epochs: a warm restart (SGDR), which is how
`normnas.oneshot.curve` trains a supernet 20, 50, 100, 200 epochs for the cost of 200.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from normnas.data.split import DataBundle, Split
from normnas.errors import StorageError
from normnas.nn.batchnorm import is_batchnorm
from normnas.oneshot.base import Supernet
from normnas.train.config import TrainConfig
from normnas.train.fit import seed_everything, setup_training
from normnas.train.threads import cpu_threads, run_threads

Sampling = Literal["uniform", "fair", "sandwich"]
Trainable = Literal["all", "bn"]
SAMPLINGS: tuple[str, ...] = ("uniform", "fair", "sandwich")
CHECKPOINT_VERSION = 1
CUDA_CHECK_EVERY = 8


@dataclass
class SupernetEpoch:
    """One epoch: mean training loss and accuracy over every sampled path's forward."""

    epoch: int
    train_loss: float
    train_acc: float
    lr: float
    time_s: float  # training time since the first epoch, summed over resumed runs


@dataclass
class SupernetTrainResult:
    status: Literal["ok", "diverged", "timeout", "stopped"]
    history: list[SupernetEpoch] = field(default_factory=list)
    epochs_run: int = 0
    time_s: float = 0.0  # training time of all epochs, including those before a resume
    resumed_from: int = 0  # the checkpoint's epoch this run started after (0: fresh)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bn_affine_parameters(model: nn.Module) -> list[nn.Parameter]:
    """gamma and beta of every BN of `model` (those that have them)."""
    return [
        p
        for m in model.modules()
        if is_batchnorm(m) and getattr(m, "affine", False)
        for p in (m.weight, m.bias)
        if p is not None
    ]


@contextlib.contextmanager
def _only_trainable(model: nn.Module, trainable: Trainable) -> Iterator[None]:
    """With "bn", only BN affine parameters require grad inside the block (restored after)."""
    if trainable == "all":
        yield
        return
    flags = {p: p.requires_grad for p in model.parameters()}
    keep = {id(p) for p in bn_affine_parameters(model)}
    if not keep:
        raise ValueError("trainable='bn' needs a supernet with BN affine parameters (affine=True)")
    try:
        for p in model.parameters():
            p.requires_grad_(id(p) in keep)
        yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)


def _fingerprint(supernet: nn.Module, config: TrainConfig, sampling: str, trainable: str) -> dict:
    """What a checkpoint must match to be resumed (plain data, safe for weights_only)."""
    conf = {k: v for k, v in config.to_dict().items() if k not in ("max_time_s", "device")}
    return {
        "version": CHECKPOINT_VERSION,
        "supernet": type(supernet).__name__,
        "space": getattr(supernet.space, "name", "?"),
        "shapes": [[k, list(v.shape)] for k, v in supernet.state_dict().items()],
        "config": repr(sorted(conf.items())),
        "sampling": sampling,
        "trainable": trainable,
        # a few-shot sub-supernet's fixed edge; absent for a whole supernet, so the
        # checkpoints written before this key existed still resume
        **({"fixed_ops": repr(sorted(fixed.items()))} if (fixed := _fixed_ops(supernet)) else {}),
    }


def _fixed_ops(supernet: nn.Module) -> dict[int, str]:
    return dict(getattr(supernet, "fixed_ops", None) or {})


def draw_archs(supernet: Supernet, sampling: str, rng: np.random.Generator) -> list[Any]:
    """The architectures one training step runs under `sampling` (see the module docstring)."""
    if sampling == "uniform":
        sample = getattr(supernet, "sample_arch", None)
        return [sample(rng) if sample is not None else supernet.space.sample(rng)]
    if sampling == "fair":
        return list(supernet.fair_archs(rng))
    return list(supernet.sandwich_archs(rng))  # type: ignore[attr-defined]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` atomically: a reader sees the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{path}: cannot write the checkpoint ({exc.strerror})") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (tensors and plain data only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StorageError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # unpickling errors of a damaged or foreign file
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"{path}: not a readable supernet checkpoint ({first})") from None


def _rng_states(arch_rng: np.random.Generator, batch_gen: torch.Generator) -> dict[str, Any]:
    states: dict[str, Any] = {
        "arch_rng": arch_rng.bit_generator.state,
        "batch_gen": batch_gen.get_state(),
        "torch": torch.get_rng_state(),
        "numpy": list(np.random.get_state(legacy=True)[1:]),  # type: ignore[index]
        "python": repr(random.getstate()),
    }
    states["numpy"][0] = torch.from_numpy(np.asarray(states["numpy"][0]).copy())
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(
    states: dict[str, Any], arch_rng: np.random.Generator, batch_gen: torch.Generator
) -> None:
    arch_rng.bit_generator.state = states["arch_rng"]
    batch_gen.set_state(states["batch_gen"])
    torch.set_rng_state(states["torch"])
    keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state(("MT19937", keys.numpy(), pos, has_gauss, cached))
    version, internal, gauss = _literal_tuple(states["python"])
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _literal_tuple(text: str) -> Any:
    import ast

    return ast.literal_eval(text)


def train_supernet(
    supernet: Supernet,
    data: DataBundle,
    config: TrainConfig | None = None,
    sampling: Sampling = "uniform",
    checkpoint: str | Path | None = None,
    trainable: Trainable = "all",
    train_split: Split | None = None,
    callback: Callable[[SupernetEpoch], bool | None] | None = None,
    warm_start: str | Path | None = None,
) -> SupernetTrainResult:
    """Train `supernet` in place for `config.epochs` epochs on `data.train` (or `train_split`).

    `trainable="bn"` trains only the BN affine parameters (BN-NAS); the rest stays frozen.
    With `checkpoint`, an existing file is resumed (it must come from the same supernet
    shape, config, sampling and trainable, else StorageError) and the file is rewritten
    after every epoch; a finished checkpoint returns at once with the model loaded.
    `callback(epoch_record)` runs after each epoch's checkpoint; True stops ("stopped").
    `warm_start`: a finished checkpoint of this supernet's shape to start a fresh run from
    (weights, BN statistics, optimizer state, RNG states; a new LR schedule over
    `config.epochs`); ignored when `checkpoint` exists (that run resumes instead).
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    if sampling == "sandwich" and not hasattr(supernet, "sandwich_archs"):
        raise ValueError(
            f"sampling='sandwich' needs a supernet whose sub-networks have sizes to order "
            f"(the macro space's); {type(supernet).__name__} has no sandwich_archs"
        )
    if trainable not in ("all", "bn"):
        raise ValueError(f"trainable must be 'all' or 'bn', got {trainable!r}")
    config = config or TrainConfig()
    model: nn.Module = supernet  # type: ignore[assignment]
    train = data.train if train_split is None else train_split
    if len(train) < 2:
        raise ValueError(f"train_supernet: the training split needs >= 2 samples, got {len(train)}")
    threads = run_threads(config.threads) if torch.device(config.device).type == "cpu" else None
    with _only_trainable(model, trainable), cpu_threads(threads):  # see train.threads
        return _train(
            supernet, model, train, config, sampling, checkpoint, trainable, callback, warm_start
        )


def _train(
    supernet: Supernet,
    model: nn.Module,
    train: Split,
    config: TrainConfig,
    sampling: str,
    checkpoint: str | Path | None,
    trainable: str,
    callback: Callable[[SupernetEpoch], bool | None] | None,
    warm_start: str | Path | None = None,
) -> SupernetTrainResult:
    device = torch.device(config.device)
    seed_everything(config.seed)
    batch_gen = torch.Generator().manual_seed(config.seed)
    arch_rng = np.random.default_rng(config.seed)
    setup = setup_training(model, train, config)
    bs, drop_last = config.batch_size, setup.drop_last
    optimizer, scheduler, loss_fn = setup.optimizer, setup.scheduler, setup.loss_fn
    use_amp, amp_dtype, scaler = setup.use_amp, setup.amp_dtype, setup.scaler

    result = SupernetTrainResult(status="ok")
    fingerprint = _fingerprint(model, config, sampling, trainable)
    start_epoch, elapsed = 0, 0.0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        _check_fingerprint(checkpoint, state, fingerprint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_states(state["rng"], arch_rng, batch_gen)
        start_epoch, elapsed = int(state["epoch"]), float(state["time_s"])
        result.history = [SupernetEpoch(**h) for h in state["history"]]
        result.resumed_from = result.epochs_run = start_epoch
        result.time_s = elapsed
    elif warm_start is not None:
        _warm_start(warm_start, model, optimizer, fingerprint, arch_rng, batch_gen)

    step_fn = _Stepper(supernet, model, optimizer, loss_fn, config, use_amp, amp_dtype, scaler)
    check_every = 1 if device.type == "cpu" else CUDA_CHECK_EVERY
    begun = time.perf_counter()
    deadline = math.inf if config.max_time_s is None else begun + config.max_time_s
    for epoch in range(start_epoch + 1, config.epochs + 1):
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen, step, lr_used, timed_out = 0, 0, optimizer.param_groups[0]["lr"], False
        for step, (x, y) in enumerate(train.batches(bs, True, batch_gen, device, drop_last), 1):
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            archs = draw_archs(supernet, sampling, arch_rng)
            batch_loss, batch_correct = step_fn(archs, x, y)
            lr_used = optimizer.param_groups[0]["lr"]
            scheduler.step()
            loss_sum.add_(batch_loss, alpha=y.shape[0])
            correct.add_(batch_correct)
            seen += y.shape[0] * len(archs)
            if step % check_every == 0 and not torch.isfinite(loss_sum):
                break
            if time.perf_counter() > deadline:
                timed_out = True
                break
        train_loss = float(loss_sum) / max(seen, 1)
        if not math.isfinite(train_loss):
            result.status = "diverged"
            result.error = f"non-finite training loss in epoch {epoch} (step {step})"
            break
        if timed_out:
            # a partial epoch is not checkpointed: a rerun redoes it from the last checkpoint
            result.status = "timeout"
            result.error = f"max_time_s={config.max_time_s} reached in epoch {epoch}"
            break
        record = SupernetEpoch(
            epoch=epoch,
            train_loss=train_loss,
            train_acc=int(correct) / max(seen, 1),
            lr=float(lr_used),
            time_s=elapsed + time.perf_counter() - begun,
        )
        result.history.append(record)
        result.epochs_run = epoch
        result.time_s = record.time_s
        if checkpoint is not None:
            state = {
                "fingerprint": fingerprint,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {},
                "rng": _rng_states(arch_rng, batch_gen),
                "epoch": epoch,
                "epochs": config.epochs,
                "time_s": record.time_s,
                "history": [asdict(h) for h in result.history],
            }
            save_checkpoint(checkpoint, state)
        if callback is not None and callback(record) is True:
            result.status = "stopped"
            break
    return result


def _warm_start(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    fingerprint: dict[str, Any],
    arch_rng: np.random.Generator,
    batch_gen: torch.Generator,
) -> None:
    """Start from a finished checkpoint: weights, BN statistics, the optimizer's per-parameter
    state and the RNG states (so the batch order and the sampled paths go on, rather than
    replay the first run's); this run's own LR schedule (a warm restart)."""
    state = load_checkpoint(path)
    found = state.get("fingerprint") if isinstance(state, dict) else None
    if not isinstance(found, dict):
        raise StorageError(f"{path}: not a supernet checkpoint (no fingerprint)")
    for key in ("version", "supernet", "space", "shapes", "trainable"):
        if found.get(key) != fingerprint[key]:
            raise StorageError(f"{path}: a warm start needs a checkpoint of the same {key}")
    if int(state["epoch"]) != int(state["epochs"]):
        raise StorageError(
            f"{path}: the warm start's training is unfinished "
            f"(epoch {state['epoch']} of {state['epochs']}); finish it first"
        )
    model.load_state_dict(state["model"])
    # the momentum buffers only: lr and the schedule's initial_lr are this run's
    own = optimizer.state_dict()
    own["state"] = state["optimizer"]["state"]
    optimizer.load_state_dict(own)
    _set_rng_states(state["rng"], arch_rng, batch_gen)


def _check_fingerprint(path: str | Path, state: dict[str, Any], expected: dict) -> None:
    found = state.get("fingerprint") if isinstance(state, dict) else None
    if not isinstance(found, dict):
        raise StorageError(f"{path}: not a supernet checkpoint (no fingerprint)")
    for key, value in expected.items():
        if found.get(key) != value:
            raise StorageError(
                f"{path}: the checkpoint was made with another {key} than this run's; "
                "delete it or pass another checkpoint path"
            )


class _Stepper:
    """One optimizer step on a batch: forward/backward each arch (grads summed), then step."""

    def __init__(
        self,
        supernet: Supernet,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: nn.Module,
        config: TrainConfig,
        use_amp: bool,
        amp_dtype: torch.dtype,
        scaler: torch.amp.GradScaler | None,
    ) -> None:
        self.supernet, self.model, self.optimizer = supernet, model, optimizer
        self.loss_fn, self.config, self.scaler = loss_fn, config, scaler
        self.use_amp, self.amp_dtype = use_amp, amp_dtype
        self.params = [p for g in optimizer.param_groups for p in g["params"]]

    def __call__(
        self, archs: list[Any], x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        loss_total = torch.zeros((), dtype=torch.float64, device=x.device)
        correct = torch.zeros((), dtype=torch.long, device=x.device)
        stepped = False
        for arch in archs:
            self.supernet.set_arch(arch)
            autocast: contextlib.AbstractContextManager = (
                torch.autocast("cuda", dtype=self.amp_dtype)
                if self.use_amp
                else contextlib.nullcontext()
            )
            with autocast:
                out = self.model(x)
                loss = self.loss_fn(out, y)
            if loss.requires_grad:  # BN-only training: a macro path without BN trains nothing
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
                stepped = True
            loss_total += loss.detach().double()
            correct += (out.detach().argmax(1) == y).sum()
        if not stepped:  # no gradient anywhere: a step (and the AMP scaler) would fail
            return loss_total, correct
        clip = self.config.grad_clip
        if self.scaler is None:
            if clip is not None:
                nn.utils.clip_grad_norm_(self.params, clip)
            self.optimizer.step()
        else:
            if clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.params, clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return loss_total, correct
