"""Gradient-based NAS on a relaxed supernet: DARTS (first/second order), GDAS and DrNAS.

Each step updates the architecture weights on a validation batch, then the network weights
on a training batch (the bilevel alternation of DARTS). What differs is how the
architecture parameters `alpha` (one vector per decision, kept outside the network and
trained by their own Adam) become the mixing weights of a forward:

- `darts`: softmax(alpha); `order=2` uses the unrolled gradient of
  L_val(w - xi * grad_w L_train(w, alpha), alpha) with the paper's finite-difference
  Hessian-vector product (xi = the network's current learning rate; the virtual step is
  plain gradient descent, without momentum or weight decay).
- `gdas`: a Gumbel-softmax sample at temperature tau (linear from tau_max to tau_min over
  the epochs), made hard (one-hot) with a straight-through gradient; only the sampled op of
  each decision runs (`active`).
- `drnas`: Dirichlet concentration elu(alpha) + 1, mixing weights drawn by the
  reparameterised `rsample`, plus drnas_reg * KL(Dir(concentration) || Dir(1)).

The current weights that derivation and entropy read are softmax(alpha) (darts, gdas) and
the Dirichlet mean (drnas). The loop with checkpoints lives in `search_gradient` below; the
derivation (argmax, DARTS-PT) in `normnas.oneshot.gradient_select`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from normnas.errors import ConfigError
from normnas.oneshot.gradient_options import METHODS, SELECTIONS, GradientOptions  # noqa: F401 (re-exported)
from normnas.oneshot.gradient_select import _accuracy_loss, derive_choice, select
from normnas.train.threads import cpu_threads, run_threads

CHECKPOINT_VERSION = 1


@dataclass
class GradientEpoch:
    """What one epoch of a gradient search did (plain data: goes to the study as is)."""

    epoch: int
    train_loss: float
    train_acc: float
    valid_loss: float
    valid_acc: float
    derived: str
    entropy: float
    weights: list[list[float]]
    seconds: float
    tau: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GradientResult:
    arch: Any
    arch_str: str
    history: list[GradientEpoch]
    seconds: float
    selection: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch_str,
            "history": [e.to_dict() for e in self.history],
            "seconds": self.seconds,
            "selection": self.selection,
        }


# -- architecture weights -------------------------------------------------------------------
def init_alphas(relaxed: Any, seed: int, device: str | torch.device = "cpu") -> list[nn.Parameter]:
    """One vector per decision, 1e-3 * N(0, 1) as DARTS initialises them."""
    g = torch.Generator().manual_seed(seed)
    return [
        nn.Parameter(1e-3 * torch.randn(len(d.options), generator=g).to(device))
        for d in relaxed.decisions
    ]


def current_weights(method: str, alphas: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The weights derivation and entropy read: softmax, or the Dirichlet mean for drnas."""
    if method == "drnas":
        conc = [F.elu(a) + 1 for a in alphas]
        return [c / c.sum() for c in conc]
    return [torch.softmax(a, 0) for a in alphas]


def entropy(weights: Sequence[torch.Tensor]) -> float:
    """Mean over decisions of -sum w log w (0 when every decision is one-hot)."""
    return float(torch.stack([-(w * torch.log(w.clamp_min(1e-12))).sum() for w in weights]).mean())


def gumbel_hard(alpha: torch.Tensor, tau: float) -> tuple[torch.Tensor, int]:
    """A straight-through one-hot sample of Gumbel-softmax(alpha, tau) and its index."""
    logp = torch.log_softmax(alpha, 0)
    while True:  # as NB201's GDAS: redraw the rare sample with an inf or nan
        gumbel = -torch.empty_like(alpha).exponential_().log()
        soft = torch.softmax((logp + gumbel) / tau, 0)
        if torch.isfinite(soft).all():
            break
    index = int(soft.argmax())
    hard = F.one_hot(torch.tensor(index), len(alpha)).to(soft) - soft.detach() + soft
    return hard, index


def sample_weights(
    options: GradientOptions, alphas: Sequence[torch.Tensor], tau: float
) -> tuple[list[torch.Tensor], list[int] | None, torch.Tensor]:
    """Mixing weights of one forward, the GDAS `active` indices, and the regulariser."""
    zero = alphas[0].new_zeros(())
    if options.method == "darts":
        return [torch.softmax(a, 0) for a in alphas], None, zero
    if options.method == "gdas":
        pairs = [gumbel_hard(a, tau) for a in alphas]
        return [h for h, _ in pairs], [i for _, i in pairs], zero
    conc = [F.elu(a) + 1 for a in alphas]
    weights = [torch.distributions.Dirichlet(c).rsample() for c in conc]
    prior = [torch.distributions.Dirichlet(torch.ones_like(c)) for c in conc]
    kl = sum(
        torch.distributions.kl_divergence(torch.distributions.Dirichlet(c), p)
        for c, p in zip(conc, prior, strict=True)
    )
    return weights, None, options.drnas_reg * kl  # type: ignore[return-value]


# -- the DARTS second-order gradient ---------------------------------------------------------
LossFn = Callable[[Sequence[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], torch.Tensor]


def darts_loss(relaxed: nn.Module) -> LossFn:
    """Cross-entropy of the relaxed network with softmax(alpha) weights on a batch."""

    def loss(alphas: Sequence[torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor]):
        x, y = batch
        return F.cross_entropy(relaxed(x, [torch.softmax(a, 0) for a in alphas]), y)

    return loss


def unrolled_arch_grads(
    relaxed: nn.Module,
    alphas: Sequence[torch.Tensor],
    train_batch: tuple[torch.Tensor, torch.Tensor],
    valid_batch: tuple[torch.Tensor, torch.Tensor],
    xi: float,
    loss: LossFn | None = None,
    eps_scale: float = 0.01,
) -> list[torch.Tensor]:
    """DARTS's second-order architecture gradient (paper eq. 7 with its eq. 8 finite
    difference): grad_a L_val(w', a) - xi * (grad_a L_train(w+, a) - grad_a L_train(w-, a))
    / (2 eps), w' = w - xi grad_w L_train(w, a), w± = w ± eps grad_w' L_val(w', a),
    eps = eps_scale / ||grad_w' L_val|| (DARTS: 0.01; that is a step of 0.01 in weight space,
    across which ReLUs switch, so it approximates the Hessian-vector product coarsely; a
    smaller eps_scale converges to the exact one in float64). The network's weights are
    restored afterwards."""
    loss = loss or darts_loss(relaxed)
    params = [p for p in relaxed.parameters() if p.requires_grad]
    backup = [p.detach().clone() for p in params]
    g_train = torch.autograd.grad(loss(alphas, train_batch), params, allow_unused=True)
    with torch.no_grad():
        for p, g in zip(params, g_train, strict=True):
            if g is not None:
                p.sub_(xi * g)
    grads = torch.autograd.grad(loss(alphas, valid_batch), [*alphas, *params], allow_unused=True)
    d_alpha = [
        g if g is not None else torch.zeros_like(a)
        for g, a in zip(grads[: len(alphas)], alphas, strict=True)
    ]
    d_w = [g if g is not None else torch.zeros_like(p) for g, p in
           zip(grads[len(alphas):], params, strict=True)]  # fmt: skip
    eps = eps_scale / float(torch.sqrt(sum((g * g).sum() for g in d_w)).clamp_min(1e-12))
    hessian: list[list[torch.Tensor]] = []
    try:
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for p, w, g in zip(params, backup, d_w, strict=True):
                    p.copy_(w + sign * eps * g)
            gs = torch.autograd.grad(loss(alphas, train_batch), list(alphas), allow_unused=True)
            hessian.append([g if g is not None else torch.zeros_like(a)
                            for g, a in zip(gs, alphas, strict=True)])  # fmt: skip
    finally:
        with torch.no_grad():
            for p, w in zip(params, backup, strict=True):
                p.copy_(w)
    return [
        da - xi * (hp - hm) / (2 * eps)
        for da, hp, hm in zip(d_alpha, hessian[0], hessian[1], strict=True)
    ]


# -- the search loop --------------------------------------------------------------------------
def _epoch_seed(seed: int, epoch: int) -> int:
    # each epoch's randomness from (seed, epoch) alone: a resumed run repeats it exactly
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**63)


def _fingerprint(relaxed: nn.Module, options: GradientOptions) -> dict[str, Any]:
    opts = {k: v for k, v in asdict(options).items() if k != "device"}
    return {
        "version": CHECKPOINT_VERSION,
        "supernet": type(relaxed).__name__,
        "space": str(getattr(relaxed.space, "name", "?")),
        "decisions": [[d.name, list(d.options)] for d in relaxed.decisions],  # type: ignore[attr-defined]
        "shapes": [[k, list(v.shape)] for k, v in relaxed.state_dict().items()],
        "options": repr(sorted(opts.items())),
    }


def search_gradient(
    relaxed: Any,
    data: Any,
    options: GradientOptions,
    checkpoint: str | Path | None = None,
    on_epoch: Callable[[GradientEpoch], None] | None = None,
    max_time_s: float | None = None,
) -> GradientResult:
    """Train `relaxed` and its architecture weights on `data` (train split: network, valid
    split: architecture), derive the architecture, return it with the history.

    With `checkpoint`, the state is saved after every epoch; a rerun resumes after the last
    finished epoch (a finished search returns its result without training), and a run
    with other options or another network is refused. `max_time_s` stops after the epoch
    that crosses it (`selection["stopped"] == "time"`); the next run goes on from there.
    """
    device = torch.device(options.device)
    threads = run_threads() if device.type == "cpu" else None
    with cpu_threads(threads):  # the cores other processes leave: see train.threads
        return _search_gradient(relaxed, data, options, checkpoint, on_epoch, max_time_s)


def _search_gradient(
    relaxed: Any,
    data: Any,
    options: GradientOptions,
    checkpoint: str | Path | None,
    on_epoch: Callable[[GradientEpoch], None] | None,
    max_time_s: float | None,
) -> GradientResult:
    from normnas.oneshot.training import load_checkpoint, save_checkpoint

    device = torch.device(options.device)
    relaxed.to(device).train()
    alphas = init_alphas(relaxed, options.seed, device)
    w_params = list(relaxed.parameters())
    w_opt = torch.optim.SGD(
        w_params, lr=options.w_lr, momentum=options.w_momentum, weight_decay=options.w_wd
    )
    a_opt = torch.optim.Adam(
        alphas, lr=options.arch_lr, betas=options.arch_betas, weight_decay=options.arch_wd
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, options.epochs, options.w_lr_min)
    print_ = _fingerprint(relaxed, options)
    history: list[GradientEpoch] = []
    seconds, start_epoch = 0.0, 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        state = load_checkpoint(path)
        if state.get("fingerprint") != print_:
            raise ConfigError(
                f"{path}: this checkpoint is of another gradient search (other options, "
                "space or network); delete it or use another study"
            )
        relaxed.load_state_dict(state["network"])
        with torch.no_grad():
            for a, saved in zip(alphas, state["alphas"], strict=True):
                a.copy_(saved.to(device))
        w_opt.load_state_dict(state["w_opt"])
        a_opt.load_state_dict(state["a_opt"])
        sched.load_state_dict(state["sched"])
        history = [GradientEpoch(**h) for h in state["history"]]
        seconds, start_epoch = float(state["seconds"]), int(state["epoch"])
        if state.get("result") is not None:
            r = state["result"]
            arch = relaxed.arch_of(r["choice"])
            return GradientResult(arch, relaxed.space.to_str(arch), history, seconds,
                                  dict(r["selection"]))  # fmt: skip

    def save(epoch: int, result: dict[str, Any] | None = None) -> None:
        if path is None:
            return
        save_checkpoint(path, {
            "fingerprint": print_, "network": relaxed.state_dict(),
            "alphas": [a.detach().cpu() for a in alphas], "w_opt": w_opt.state_dict(),
            "a_opt": a_opt.state_dict(), "sched": sched.state_dict(),
            "history": [h.to_dict() for h in history], "seconds": seconds, "epoch": epoch,
            "result": result,
        })  # fmt: skip

    stopped = None
    t_run = time.perf_counter()
    for epoch in range(start_epoch, options.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(_epoch_seed(options.seed, epoch))
        gen_t = torch.Generator().manual_seed(_epoch_seed(options.seed, epoch) + 1)
        gen_v = torch.Generator().manual_seed(_epoch_seed(options.seed, epoch) + 2)
        tau = options.tau(epoch)
        xi = w_opt.param_groups[0]["lr"]
        loss_sum, correct, seen = 0.0, 0, 0
        bs = options.batch_size
        train_iter = data.train.batches(bs, True, gen_t, device, drop_last=True)
        valid_iter = data.valid.batches(bs, True, gen_v, device, drop_last=True)
        for (xt, yt), (xv, yv) in zip(train_iter, valid_iter, strict=False):
            # architecture step on a validation batch
            a_opt.zero_grad(set_to_none=True)
            if options.order == 2:
                grads = unrolled_arch_grads(relaxed, alphas, (xt, yt), (xv, yv), xi)
                for a, g in zip(alphas, grads, strict=True):
                    a.grad = g.detach()
            else:
                weights, active, reg = sample_weights(options, alphas, tau)
                arch_loss = F.cross_entropy(relaxed(xv, weights, active), yv) + reg
                g_a = torch.autograd.grad(arch_loss, alphas, allow_unused=True)
                for a, g in zip(alphas, g_a, strict=True):
                    a.grad = torch.zeros_like(a) if g is None else g
            a_opt.step()
            # network step on a training batch
            w_opt.zero_grad(set_to_none=True)
            weights, active, _ = sample_weights(options, [a.detach() for a in alphas], tau)
            out = relaxed(xt, weights, active)
            loss = F.cross_entropy(out, yt)
            loss.backward()
            nn.utils.clip_grad_norm_(w_params, options.grad_clip)
            w_opt.step()
            loss_sum += float(loss.detach()) * len(yt)
            correct += int((out.argmax(1) == yt).sum())
            seen += len(yt)
        sched.step()
        now = current_weights(options.method, [a.detach() for a in alphas])
        choice = derive_choice(relaxed, now, options.excludes_none)
        valid_acc, valid_loss = _accuracy_loss(relaxed, data.valid, now, bs, device)
        elapsed = time.perf_counter() - t0
        seconds += elapsed
        history.append(GradientEpoch(
            epoch, loss_sum / max(seen, 1), correct / max(seen, 1), valid_loss, valid_acc,
            relaxed.space.to_str(relaxed.arch_of(choice)), entropy(now),
            [[float(v) for v in w] for w in now], elapsed,
            tau if options.method == "gdas" else None,
        ))  # fmt: skip
        save(epoch + 1)
        if on_epoch is not None:
            on_epoch(history[-1])
        over = max_time_s is not None and time.perf_counter() - t_run >= max_time_s
        if over and epoch + 1 < options.epochs:
            stopped = "time"
            break
    now = current_weights(options.method, [a.detach() for a in alphas])
    t0 = time.perf_counter()
    choice, selection = select(relaxed, data, now, options, w_opt)
    seconds += time.perf_counter() - t0
    selection = {"method": options.method, "order": options.order, **selection,
                 "epochs_run": len(history)}  # fmt: skip
    if stopped:
        selection["stopped"] = stopped
    else:
        save(options.epochs, {"choice": choice, "selection": selection})
    arch = relaxed.arch_of(choice)
    return GradientResult(arch, relaxed.space.to_str(arch), history, seconds, selection)
