"""`fit(model, data, config) -> TrainResult`: a lean training loop with per-epoch history.

Hot loop: batches are slices of in-memory tensors (already on the device), the loss and
correct counts are summed as tensors, and nothing is synchronized per step except the
divergence check. Divergence: the running loss sum is checked for inf/NaN every step on
CPU (free there) and every `CUDA_CHECK_EVERY` steps on CUDA (each check is a device
sync), and always at the end of an epoch; a non-finite loss ends the run at once with
status "diverged", no exception, and the partial epoch is not recorded.
Time limit: checked after every step; when `max_time_s` is passed mid-epoch, training
stops there, the partial epoch is validated and recorded, and the status is "timeout".
Other errors (a shape mismatch, out of memory) propagate: they are bugs or resource
limits, not outcomes of training.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from normnas.data.split import DataBundle, Split
from normnas.nn import set_bn_momentum
from normnas.train.config import TrainConfig
from normnas.train.metrics import predict
from normnas.train.schedules import make_scheduler
from normnas.train.threads import cpu_threads, run_threads

Status = Literal["ok", "diverged", "timeout", "stopped"]
CUDA_CHECK_EVERY = 8


@dataclass
class EpochRecord:
    """One epoch: losses are means, accuracies fractions; `lr` is the lr of its last step;
    `time_s` is the time since `fit` started, at the end of the epoch."""

    epoch: int
    train_loss: float
    train_acc: float
    valid_loss: float | None
    valid_acc: float | None
    lr: float
    time_s: float


@dataclass
class TrainResult:
    status: Status
    history: list[EpochRecord] = field(default_factory=list)
    epochs_run: int = 0
    time_s: float = 0.0
    best_valid_acc: float | None = None
    final_valid_acc: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def valid_curve(self) -> list[float]:
        return [r.valid_acc for r in self.history if r.valid_acc is not None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def param_groups(model: nn.Module, weight_decay: float, on_norm_and_bias: bool) -> list[dict]:
    """Weight decay on weights; biases and norm scales (every 0-/1-d parameter) get none
    unless `on_norm_and_bias`."""
    params = [p for p in model.parameters() if p.requires_grad]
    if on_norm_and_bias or weight_decay == 0:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, config.weight_decay, config.wd_on_norm_and_bias)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr)


def _validate(
    model: nn.Module, split: Split | None, batch_size: int, device: torch.device
) -> tuple[float | None, float | None]:
    if split is None or len(split) == 0:
        return None, None
    loss_sum, pred, _ = predict(model, split, max(batch_size, 512), device)
    correct = (pred == split.on(device)[1]).sum()
    return float(loss_sum) / len(split), int(correct) / len(split)


@dataclass
class TrainingSetup:
    """What one training run needs besides its loop (shared by fit and supernet training)."""

    device: torch.device
    drop_last: bool
    steps_per_epoch: int
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: nn.Module
    use_amp: bool
    amp_dtype: torch.dtype
    scaler: torch.amp.GradScaler | None


def setup_training(model: nn.Module, train: Split, config: TrainConfig) -> TrainingSetup:
    """Move `model` to the device (channels-last if asked), set its BN momentum, and make the
    optimizer, the per-step schedule, the loss and the AMP settings of `config`."""
    device = torch.device(config.device)
    memory_format = torch.channels_last if config.channels_last else torch.preserve_format
    model.to(device=device, memory_format=memory_format)
    if config.bn_momentum is not None:
        set_bn_momentum(model, config.bn_momentum)
    drop_last = len(train) % config.batch_size == 1  # a 1-sample batch breaks BatchNorm
    steps_per_epoch = train.num_batches(config.batch_size, drop_last)
    optimizer = make_optimizer(model, config)
    options = dict(config.schedule_options)
    if config.warmup_epochs:
        options["warmup_steps"] = round(config.warmup_epochs * steps_per_epoch)
    scheduler = make_scheduler(
        config.schedule, optimizer, config.epochs * steps_per_epoch, **options
    )
    use_amp = config.amp and device.type == "cuda"
    amp_dtype = torch.float16
    if use_amp and torch.cuda.is_bf16_supported():
        amp_dtype = torch.bfloat16  # no loss scaling needed
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    return TrainingSetup(
        device, drop_last, steps_per_epoch, optimizer, scheduler, loss_fn, use_amp, amp_dtype,
        scaler,
    )  # fmt: skip


def fit(
    model: nn.Module,
    data: DataBundle,
    config: TrainConfig | None = None,
    callback: Callable[[EpochRecord], bool | None] | None = None,
    train_split: Split | None = None,
    valid_split: Split | None = None,
) -> TrainResult:
    """Train `model` in place and validate after every epoch.

    With neither split given it trains on data.train and validates on data.valid. Once
    `train_split` is given (e.g. data.train_plus_valid() for the final retrain), it
    validates only on a `valid_split` passed explicitly: None means no validation.
    `callback(record)` returning True stops the run (status "stopped"). The model must
    be built (and seeded) by the caller; `config.seed` seeds torch/numpy/random (global
    state) and the batch order and augmentation.
    """
    config = config or TrainConfig()
    if torch.device(config.device).type != "cpu":
        return _fit(model, data, config, callback, train_split, valid_split)
    with cpu_threads(run_threads(config.threads)):  # the free cores only: see train.threads
        return _fit(model, data, config, callback, train_split, valid_split)


def _fit(
    model: nn.Module,
    data: DataBundle,
    config: TrainConfig,
    callback: Callable[[EpochRecord], bool | None] | None,
    train_split: Split | None,
    valid_split: Split | None,
) -> TrainResult:
    train = data.train if train_split is None else train_split
    valid = data.valid if valid_split is None and train_split is None else valid_split
    if len(train) < 2:
        raise ValueError(f"fit: the training split needs >= 2 samples, got {len(train)}")
    device = torch.device(config.device)
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    setup = setup_training(model, train, config)
    bs, drop_last, steps_per_epoch = config.batch_size, setup.drop_last, setup.steps_per_epoch
    optimizer, scheduler, loss_fn = setup.optimizer, setup.scheduler, setup.loss_fn
    use_amp, amp_dtype, scaler = setup.use_amp, setup.amp_dtype, setup.scaler
    autocast: contextlib.AbstractContextManager = (
        torch.autocast("cuda", dtype=amp_dtype) if use_amp else contextlib.nullcontext()
    )
    check_every = 1 if device.type == "cpu" else CUDA_CHECK_EVERY
    params = [p for g in optimizer.param_groups for p in g["params"]]
    group0 = optimizer.param_groups[0]

    result = TrainResult(status="ok")
    start = time.perf_counter()
    deadline = math.inf if config.max_time_s is None else start + config.max_time_s
    for epoch in range(1, config.epochs + 1):
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        lr_used = group0["lr"]
        batches: Iterator = train.batches(bs, True, generator, device, drop_last)
        step = 0
        for step, (x, y) in enumerate(batches, 1):
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                out = model(x)
                loss = loss_fn(out, y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                if config.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(params, config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
            lr_used = group0["lr"]
            scheduler.step()
            n = y.shape[0]
            loss_sum.add_(loss.detach().float(), alpha=n)
            correct.add_((out.detach().argmax(1) == y).sum())
            seen += n
            if step % check_every == 0 and not torch.isfinite(loss_sum):
                break
            if time.perf_counter() > deadline:
                break
        train_loss = float(loss_sum) / max(seen, 1)
        if not math.isfinite(train_loss):
            result.status = "diverged"
            result.error = (
                f"non-finite training loss in epoch {epoch} (step {step} of {steps_per_epoch})"
            )
            break
        valid_loss, valid_acc = _validate(model, valid, bs, device)
        if valid_loss is not None and not math.isfinite(valid_loss):
            result.status = "diverged"
            result.error = f"non-finite validation loss after epoch {epoch}"
            break
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            train_acc=int(correct) / max(seen, 1),
            valid_loss=valid_loss,
            valid_acc=valid_acc,
            lr=float(lr_used),
            time_s=time.perf_counter() - start,
        )
        result.history.append(record)
        result.epochs_run = epoch
        if time.perf_counter() > deadline:
            result.status = "timeout"
            result.error = f"max_time_s={config.max_time_s} reached in epoch {epoch}"
            if callback is not None:
                callback(record)
            break
        if callback is not None and callback(record) is True:
            result.status = "stopped"
            break

    result.time_s = time.perf_counter() - start
    accs = [r.valid_acc for r in result.history if r.valid_acc is not None]
    result.best_valid_acc = max(accs) if accs else None
    result.final_valid_acc = accs[-1] if accs else None
    return result
