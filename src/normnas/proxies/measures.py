"""Zero-cost proxies: `score(model, batch, seed=0) -> float`, higher meaning better.

Each is written from its paper's definition and, where the paper leaves a choice open, from
the authors' released code (named in each docstring). Every proxy works on a deep copy of
the model (`working_copy`), so the caller's weights, BN running statistics, gradients and
train/eval flags never change; randomness (dropout, Zen's Gaussian weights and inputs) is
drawn under `seed` with the caller's RNG state restored, so a fixed batch and seed give a
fixed score. A score that is undefined for a network (NaN: e.g. the correlation of the
Jacobians of a network whose output does not depend on its input) is returned as -inf,
the worst score. `batch` is `(x, y)`; the proxies that need no labels ignore `y`.

BN: unless a docstring says otherwise the network runs in train mode, so BatchNorm
normalizes with the batch's own statistics, as in every reference implementation (the
models are freshly initialized; their running statistics mean nothing yet).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from normnas.proxies._common import (
    BATCH_NORMS,
    RELU_LIKE,
    Batch,
    finite,
    prunable,
    remove_batch_norm,
    seeded,
    working_copy,
)


def _weight_grads(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[nn.Module]:
    """Backpropagate the cross-entropy of one batch; the prunable layers, grads filled."""
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    return prunable(net)


def grad_norm(model: nn.Module, batch: Batch, seed: int = 0) -> float:
    """Sum over conv/linear layers of the L2 norm of the loss gradient of its weight.

    Abdelfattah et al. 2021 (zero-cost-nas `grad_norm`): one cross-entropy backward pass on
    the batch, BN in train mode (batch statistics).
    """
    net, x, y = working_copy(model, batch)
    with seeded(seed, x.device):
        layers = _weight_grads(net, x, y)
    total = sum(float(m.weight.grad.norm()) for m in layers if m.weight.grad is not None)
    return finite(total)


def snip(model: nn.Module, batch: Batch, seed: int = 0) -> float:
    """SNIP connection sensitivity summed: sum over conv/linear weights of |dL/dw * w|.

    Lee et al. 2019, as Abdelfattah et al. 2021 sum it; BN in train mode (batch statistics).
    """
    net, x, y = working_copy(model, batch)
    with seeded(seed, x.device):
        layers = _weight_grads(net, x, y)
    total = sum(
        float((m.weight.grad * m.weight).detach().abs().sum())
        for m in layers
        if m.weight.grad is not None
    )
    return finite(total)


def grasp(model: nn.Module, batch: Batch, seed: int = 0) -> float:
    """GraSP: sum over conv/linear weights of -w * (H g), H the Hessian of the loss, g = dL/dw.

    Wang et al. 2020, summed as Abdelfattah et al. 2021 do (temperature 1, one batch): the
    Hessian-gradient product is the gradient of g_const . g. BN in train mode.
    """
    net, x, y = working_copy(model, batch)
    layers = prunable(net)
    weights = [m.weight for m in layers]
    with seeded(seed, x.device):
        loss = F.cross_entropy(net(x), y)
        grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        used = [(w, g) for w, g in zip(weights, grads, strict=True) if g is not None]
        if not used:
            return 0.0
        z = sum((g.detach() * g).sum() for _, g in used)
        hg = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
    total = sum(
        float((-w.detach() * h).sum()) for (w, _), h in zip(used, hg, strict=True) if h is not None
    )
    return finite(total)


def fisher(model: nn.Module, batch: Batch, seed: int = 0) -> float:
    """Fisher channel saliency summed over the output channels of every conv/linear layer.

    Theis et al. 2018 / Turner et al. 2020, as in zero-cost-nas: for an activation a (the
    layer's output) with loss gradient g, channel k scores 0.5 * mean_n (sum_hw a*g)^2.
    BN in train mode.
    """
    net, x, y = working_copy(model, batch)
    acts: list[torch.Tensor] = []

    def keep(module: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
        acts.append(out)
        return out.clone()  # an in-place op downstream (ReLU) must not rewrite `out`

    handles = [m.register_forward_hook(keep) for m in prunable(net)]
    try:
        with seeded(seed, x.device):
            loss = F.cross_entropy(net(x), y)
            grads = torch.autograd.grad(loss, acts, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    total = 0.0
    for a, g in zip(acts, grads, strict=True):
        if g is None:
            continue
        per_channel = (a.detach() * g).sum(dim=tuple(range(2, a.dim()))) if a.dim() > 2 else a * g
        total += float(per_channel.detach().pow(2).mean(0).mul(0.5).sum())
    return finite(total)


def synflow(model: nn.Module, batch: Batch, seed: int = 0) -> float:
    """SynFlow: sum over conv/linear weights of w * dR/dw, R = 1^T f(1) of the |w| network.

    Tanaka et al. 2020 (data-free): every parameter and buffer replaced by its absolute
    value, an all-ones input of one sample, float64. BN is removed (replaced by the
    identity), as zero-cost-nas's `synflow` (bn=False) does: BN's division by the batch
    statistics would undo the data-free product of |w| the score is built on (and a batch
    of one has no statistics). Eval mode, so dropout is off.
    """
    net, x, _ = working_copy(model, batch)
    remove_batch_norm(net).double().eval()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    with seeded(seed, x.device):
        net(ones).sum().backward()
    total = sum(
        float((m.weight.grad * m.weight).detach().sum())
        for m in prunable(net)
        if m.weight.grad is not None
    )
    return finite(total)


def _input_jacobians(net: nn.Module, x: torch.Tensor, seed: int) -> np.ndarray:
    """Per sample, d(sum of the outputs)/d(input), flattened: an N x D float64 array."""
    x = x.detach().clone().requires_grad_(True)
    with seeded(seed, x.device):
        out = net(x)
        (jac,) = torch.autograd.grad(out, x, torch.ones_like(out), allow_unused=True)
    if jac is None:
        jac = torch.zeros_like(x)
    return jac.reshape(len(x), -1).detach().cpu().double().numpy()


def jacov(model: nn.Module, batch: Batch, seed: int = 0) -> float:
    """Jacobian covariance: -sum_i log(v_i + k) + 1/(v_i + k), v the eigenvalues of corr(J).

    Mellor et al. 2020 (NASWOT v1), k = 1e-5; J holds one row per sample, the gradient of
    the sum of the outputs w.r.t. the input. BN in train mode. A network whose Jacobian
    rows are constant has no correlation: -inf.
    """
    net, x, _ = working_copy(model, batch)
    jac = _input_jacobians(net, x, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(jac)
    if not np.all(np.isfinite(corr)):
        return -math.inf
    v = np.linalg.eigvalsh(corr)
    k = 1e-5
    with np.errstate(divide="ignore", invalid="ignore"):
        return finite(float(-np.sum(np.log(v + k) + 1.0 / (v + k))))


def _relu_hooks(
    net: nn.Module, on_code: Callable[[torch.Tensor], None]
) -> list[torch.utils.hooks.RemovableHandle]:
    """Call `on_code(c)` with the N x units binary code (input > 0) of every ReLU-like layer."""

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        inp = args[0]
        on_code((inp.detach() > 0).reshape(len(inp), -1))

    return [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, RELU_LIKE)]


def naswot(model: nn.Module, batch: Batch, seed: int = 0) -> float:
    """NASWOT: log|K_H|, K_H[i, j] = units where samples i and j have the same ReLU code.

    Mellor et al. 2021: c = 1[input of each ReLU > 0], K = sum over ReLUs of
    c c^T + (1 - c)(1 - c)^T (units minus Hamming distance). BN in train mode, as in the
    authors' code. A singular K (two samples with identical codes everywhere) is -inf.
    """
    net, x, _ = working_copy(model, batch)
    kernel = torch.zeros((len(x), len(x)), dtype=torch.float64, device=x.device)

    def add(code: torch.Tensor) -> None:
        nonlocal kernel
        c = code.double()
        kernel = kernel + c @ c.T + (1.0 - c) @ (1.0 - c).T

    handles = _relu_hooks(net, add)
    try:
        with torch.no_grad(), seeded(seed, x.device):
            net(x)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = np.linalg.slogdet(kernel.cpu().numpy())
    return finite(float(logdet)) if sign > 0 else -math.inf


def _pre_gap_hook(net: nn.Module, sink: list[torch.Tensor]) -> torch.utils.hooks.RemovableHandle:
    """Capture the feature map before global pooling (else the input of the last linear)."""
    pools = [
        m for m in net.modules() if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool1d))
    ]
    target = pools[-1] if pools else [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    return target.register_forward_pre_hook(lambda m, args: sink.append(args[0]))


def zen(model: nn.Module, batch: Batch, seed: int = 0, alpha: float = 0.01) -> float:
    """Zen-score: log E|f(x) - f(x + alpha e)| + sum over BN layers of log sqrt(mean var).

    Lin et al. 2021. f is the feature map before global pooling of the network with every
    conv/linear weight drawn from N(0, 1) (BN affine 1/0), x and e are N(0, 1) inputs of the
    batch's shape (the real images only give the shape), alpha = 0.01. The difference is
    summed |.| per sample and averaged over the batch, as the authors' code does. BN runs in
    train mode; its sigma is the batch standard deviation of its input on x (the paper's
    definition; the authors' code reads running_var after the passes instead). BN layers
    whose input is identically zero (dead branches) are left out of the sum.
    """
    net, x, _ = working_copy(model, batch)
    feats: list[torch.Tensor] = []
    variances: list[torch.Tensor] = []

    def bn_var(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        inp = args[0]
        dims = [d for d in range(inp.dim()) if d != 1]
        variances.append(inp.detach().var(dim=dims, unbiased=False).mean())

    with torch.no_grad(), seeded(seed, x.device):
        for m in net.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, BATCH_NORMS) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        x1 = torch.randn(x.shape, device=x.device)
        x2 = x1 + alpha * torch.randn(x.shape, device=x.device)
        handle = _pre_gap_hook(net, feats)
        bn_handles = [
            m.register_forward_pre_hook(bn_var) for m in net.modules() if isinstance(m, BATCH_NORMS)
        ]
        try:
            net(x1)
            for h in bn_handles:
                h.remove()
            net(x2)
        finally:
            handle.remove()
            for h in bn_handles:
                h.remove()
    diff = (feats[0] - feats[1]).abs().reshape(len(x), -1).sum(1).mean()
    # a BN whose input is identically zero sits on a dead branch (a conv fed by a node with
    # no input), which computes nothing and which the canonical form counts as 'none'
    log_bn = sum(0.5 * math.log(float(v)) for v in variances if float(v) > 0)
    with np.errstate(divide="ignore"):
        return finite(float(np.log(float(diff))) + log_bn)


def zico(model: nn.Module, batch: Batch, seed: int = 0, splits: int = 2) -> float:
    """ZiCo: sum over conv/linear layers of log sum_w mean_b|g_w| / std_b(g_w).

    Li et al. 2023: the gradients g of the cross-entropy over `splits` equal parts of the
    batch (the authors use two batches); weights with zero std are left out, as are layers
    whose sum is zero. BN in train mode (per part).
    """
    net, x, y = working_copy(model, batch)
    layers = prunable(net)
    per_layer: list[list[np.ndarray]] = [[] for _ in layers]
    bounds = np.linspace(0, len(x), splits + 1).astype(int)
    with seeded(seed, x.device):
        for lo, hi in itertools.pairwise(bounds):
            net.zero_grad(set_to_none=True)
            F.cross_entropy(net(x[lo:hi]), y[lo:hi]).backward()
            for k, m in enumerate(layers):
                g = m.weight.grad
                grad = np.zeros(m.weight.numel()) if g is None else g.detach().cpu().double()
                per_layer[k].append(np.asarray(grad).reshape(-1))
    total = 0.0
    for grads in per_layer:
        g = np.stack(grads)
        std = g.std(axis=0)
        keep = std != 0
        s = float(np.sum(np.abs(g).mean(axis=0)[keep] / std[keep]))
        if s > 0:
            total += math.log(s)
    return finite(total)


def meco(model: nn.Module, batch: Batch, seed: int = 0) -> float:
    """MeCo: sum over every module's output of the minimum eigenvalue of its channel correlation.

    Jiang et al. 2023: for each module (containers included, as the authors' hooks are on
    every module) whose output is a feature map, the Pearson correlation between the
    channels of the first sample's map (C x HW); NaN entries (constant channels) count 0.
    Outputs that are not feature maps contribute 0 in the authors' code and are skipped.
    The whole batch runs, BN in train mode.
    """
    net, x, _ = working_copy(model, batch)
    mins: list[float] = []

    def hook(module: nn.Module, args: Any, out: Any) -> None:
        if not isinstance(out, torch.Tensor) or out.dim() < 3 or out[0, 0].numel() < 2:
            return  # one value per channel: an all-NaN correlation, 0 in the authors' code
        fea = out[0].detach().double().reshape(out.shape[1], -1)
        corr = torch.corrcoef(fea)
        corr = torch.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0)
        mins.append(float(torch.linalg.eigvalsh(corr).min()))

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    try:
        with torch.no_grad(), seeded(seed, x.device):
            net(x)
    finally:
        for h in handles:
            h.remove()
    return finite(sum(mins))


def swap(model: nn.Module, batch: Batch, seed: int = 0) -> float:
    """SWAP: the number of distinct sample-wise activation patterns of the ReLU units.

    Peng et al. 2024: each unit of every ReLU with a feature-map input has a pattern, its
    on/off code over the N samples of the batch; the score counts the distinct patterns
    over all units. BN in train mode. The paper's regularized form is `regularized_swap`
    (the `swap_reg` proxy of the registry).
    """
    net, x, _ = working_copy(model, batch)
    codes: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if args[0].dim() >= 3:  # feature maps and sequences; not a vector per sample
            codes.append((args[0].detach() > 0).reshape(len(args[0]), -1))

    handles = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad(), seeded(seed, x.device):
            net(x)
    finally:
        for h in handles:
            h.remove()
    if not codes:
        return 0.0
    return float(_distinct_columns(torch.cat(codes, dim=1)))


def _distinct_columns(bits: torch.Tensor) -> int:
    """How many distinct columns a (samples x units) boolean matrix has.

    Each column is packed 8 samples to a byte and 64 to an int64 word, so the count is a
    `unique` on one word per unit (or on rows of a few words past 64 samples): exact, and
    far faster than `unique(dim=0)` on the boolean rows (4.3 s vs 0.2 s on an NB201 network).
    """
    n, units = bits.shape
    padded = -(-n // 64) * 64
    if padded != n:
        bits = torch.cat([bits, bits.new_zeros(padded - n, units)])
    shifts = torch.arange(8, device=bits.device, dtype=torch.uint8)[None, :, None]
    packed = (bits.reshape(padded // 8, 8, units).to(torch.uint8) << shifts).sum(
        dim=1, dtype=torch.uint8
    )  # (padded/8, units) bytes
    words = packed.T.contiguous().view(torch.int64)  # (units, padded/64)
    if words.shape[1] == 1:
        return int(torch.unique(words[:, 0]).numel())
    return int(torch.unique(words, dim=0).shape[0])


def regularized_swap(swap_score: float, n_params: float, mu_k: float, sigma: float) -> float:
    """The regularized SWAP score of Peng et al. 2024: SWAP x exp(-(theta - mu)^2 / sigma).

    theta is the network's parameter count in thousands (the authors' code counts
    parameters in MB x 1e3), mu the model size the search aims at (thousands) and sigma the
    width of the preference (thousands squared), both chosen by the user in the paper;
    `normnas.proxies.registry.SizePrior` derives them from the space when none are given.
    """
    if sigma <= 0:
        raise ValueError(f"sigma: expected a positive width, got {sigma}")
    return swap_score * math.exp(-((n_params / 1e3 - mu_k) ** 2) / sigma)


def params(model: nn.Module, batch: Batch, seed: int = 0) -> float:
    """Baseline: the number of trainable parameters (no data; nothing runs)."""
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


def flops(model: nn.Module, batch: Batch, seed: int = 0) -> float:
    """Baseline: operations of one forward pass on one sample (`normnas.train.count_ops`).

    Counted in eval mode on a zero input of the batch's sample shape, on a copy: count_ops
    restores only the top module's train flag, which would reset submodules' own flags.
    """
    from normnas.train.cost import count_ops

    net, x, _ = working_copy(model, batch)
    return float(count_ops(net, tuple(x.shape[1:])).flops)
