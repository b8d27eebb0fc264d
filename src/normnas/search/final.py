"""After the search: retrain the chosen architecture on train+valid, test it once, save it.

The checkpoint is a plain dict loadable with `torch.load(..., weights_only=True)`:
`state_dict`, `arch` (the network space's string), `space` (spec to rebuild the space),
`recipe` (dict or None), `num_classes`, `in_channels`, `image_size`, `mean`, `std`
(the data normalization the model expects), `test_accuracy`, `study`, `trial`.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normnas.search.spaces import network_part, space_from_spec, space_spec
from normnas.spaces.base import Arch, SearchSpace


@dataclasses.dataclass
class FinalModel:
    model: nn.Module
    test_accuracy: float
    checkpoint: dict[str, Any]
    path: Path | None = None


def retrain(
    space: SearchSpace,
    arch: Arch,
    data: Any,
    train_config: Any,
    study: str = "",
    trial: int | None = None,
) -> FinalModel:
    """Train `arch` (with its recipe, for a joint space) on train+valid; score it on test."""
    from normnas.search.evaluators import TrainEvaluator
    from normnas.train import evaluate, fit

    evaluator = TrainEvaluator(space, data, train_config)
    config = evaluator.config_for(arch)
    model = evaluator.build(arch)
    result = fit(model, data, config, train_split=data.train_plus_valid())
    if result.status not in ("ok", "timeout"):  # a timeout keeps the model it reached
        raise RuntimeError(f"final retrain ended {result.status}: {result.error or ''}".strip())
    test = evaluate(model, data.test)
    net_space, net_arch, recipe = network_part(space, arch)
    model.eval()
    checkpoint = {
        "format": "normnas-checkpoint-1",
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "arch": net_space.to_str(net_arch),
        "space": space_spec(net_space),
        "recipe": recipe.as_dict() if hasattr(recipe, "as_dict") else None,
        "num_classes": int(data.num_classes),
        "in_channels": int(data.in_channels),
        "image_size": [int(s) for s in data.image_size],
        "mean": [float(m) for m in data.mean],
        "std": [float(s) for s in data.std],
        "test_accuracy": float(test.accuracy),
        "study": study,
        "trial": trial,
        "final_status": result.status,
        "epochs_run": int(result.epochs_run),
    }
    return FinalModel(model.cpu(), float(test.accuracy), checkpoint)


def save(final: FinalModel, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(final.checkpoint, path)
    final.path = path
    return path


def load(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The model (eval mode) and checkpoint dict of a saved normnas checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "space" not in ckpt:
        raise ValueError(f"{path}: not a normnas checkpoint")
    space = space_from_spec(ckpt["space"])
    model = space.build(space.from_str(ckpt["arch"]), ckpt["num_classes"], ckpt["in_channels"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def export(
    checkpoint: str | Path, out: str | Path, fold_bn: bool = False, fmt: str = "state_dict"
) -> Path:
    """Write the model of `checkpoint` as a state-dict file or TorchScript (`fmt`)."""
    model, ckpt = load(checkpoint)
    if fold_bn:
        from normnas.nn import fold_bn as fold

        model = fold(model).eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "state_dict":
        data = dict(ckpt)
        data["state_dict"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        data["folded_bn"] = bool(fold_bn)
        if fold_bn:
            # a folded network has another structure: keep the pickle-free TorchScript beside
            # the weights so it can be rebuilt without the space
            data["note"] = "folded: load the weights into fold_bn(space.build(arch))"
        torch.save(data, out)
    elif fmt == "torchscript":
        h, w = ckpt["image_size"]
        example = torch.randn(1, ckpt["in_channels"], h, w)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape checks; shapes are fixed
            scripted = torch.jit.trace(model, example)
            scripted.save(str(out))
    else:
        raise ValueError(f"unknown export format {fmt!r}; valid: state_dict, torchscript")
    return out
