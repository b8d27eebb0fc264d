"""After the search: retrain the chosen architecture on train+valid, test it once, save it.

The checkpoint is a plain dict loadable with `torch.load(..., weights_only=True)`:
`state_dict`, `arch` (the network space's string), `space` (spec to rebuild the space),
`recipe` (dict or None), `num_classes`, `in_channels`, `image_size`, `mean`, `std`
(the data normalization the model expects), `test_accuracy`, `study`, `trial`.

Files are written whole or not at all (a temporary file renamed over the target), into a
folder that is created when missing; a folder that cannot be written, or a checkpoint that
cannot be read, is a one-line ExportError naming it. When the best model must be retrained
but the data the study recorded has moved, `rebuild_config` says where it was recorded and
how to pass its new place.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from normnas.errors import DataError, ExportError, one_line
from normnas.search.checkpoints import make_checkpoint
from normnas.search.spaces import space_from_spec
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
    # the retrain saw the valid split, so this figure is optimistic: it is compared with the
    # trial's own valid accuracy only to catch a retrain that failed (cut, diverged, unlucky)
    valid = evaluate(model, data.valid) if len(data.valid) else None
    model.eval()
    checkpoint = make_checkpoint(
        space, arch, data, model,
        test_accuracy=float(test.accuracy),
        valid_accuracy=None if valid is None else float(valid.accuracy),
        study=study,
        trial=trial,
        final_status=result.status,
        epochs_run=int(result.epochs_run),
        epochs=int(config.epochs),
        source="retrain",
    )  # fmt: skip
    return FinalModel(model.cpu(), float(test.accuracy), checkpoint)


FORMATS = ("state_dict", "torchscript")
CHECKPOINT_KEYS = ("state_dict", "space", "arch", "num_classes", "in_channels", "image_size")


def prepare_out(path: str | Path, example: str = "model.pt") -> Path:
    """`path` as a file about to be written: a missing folder is created (with its parents).

    ExportError naming the folder when it cannot be created or written, or when `path` is a
    folder (the message suggests `path / example`, so give the name and suffix of what the
    caller writes) or a read-only file. Cheap: call it before a long retrain, not only after.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise ExportError(f"{path}: a folder; give a file name, e.g. {path / example}")
    from normnas.search.study import make_folder

    folder = make_folder(path, ExportError)
    if not _writable(folder):
        raise ExportError(f"{path}: cannot write into {folder} (read-only); choose another folder")
    if path.exists() and not _writable(path):
        raise ExportError(f"{path}: the file exists and is read-only; choose another file name")
    return path


def _writable(path: Path) -> bool:
    # effective ids: what open() will be allowed to do (read-only file systems included)
    return os.access(path, os.W_OK, effective_ids=os.access in os.supports_effective_ids)


def _reason(e: BaseException) -> str:
    """An OS error's own words ('Permission denied'), else the first sentence of the error."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    if isinstance(e, pickle.UnpicklingError):  # torch's text is a page about weights_only
        return "objects other than tensors and plain data"
    text = one_line(e).split(". ")[0]
    return f"{type(e).__name__}: {text[:160]}"


def _write_whole(path: Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write `path` through a temporary file renamed over it: a failure keeps the old file."""
    path = prepare_out(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"{path}: cannot write the file ({_reason(e)})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save(final: FinalModel, path: str | Path) -> Path:
    """Write the checkpoint of `final` to `path` (see the module doc); sets `final.path`."""
    final.path = _write_whole(Path(path), lambda f: torch.save(final.checkpoint, f))
    return final.path



def rebuild_network(path: str | Path, ckpt: dict[str, Any]) -> nn.Module:
    """The untrained network a checkpoint's weights belong to: its space's architecture,
    with a pruned network's channel counts (`normnas slim`) applied; ExportError if not."""
    try:
        space = space_from_spec(ckpt["space"])
        model = space.build(space.from_str(ckpt["arch"]), ckpt["num_classes"], ckpt["in_channels"])
        if ckpt.get("layer_shapes"):  # a pruned network (normnas slim): its channel counts
            from normnas.nn.structure import apply_layer_shapes

            apply_layer_shapes(model, ckpt["layer_shapes"])
    except (ValueError, KeyError) as e:
        raise ExportError(f"{path}: its architecture cannot be rebuilt ({_reason(e)})") from None
    return model

def load(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The model (eval mode) and checkpoint dict of a saved normnas checkpoint.

    ExportError naming `path` when it is missing, unreadable or not a normnas checkpoint.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        what = "a folder, not a checkpoint file" if path.is_dir() else "no such checkpoint file"
        raise ExportError(f"{path}: {what}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # reading arbitrary bytes can raise nearly any type (IndexError, KeyError for an
        # unknown magic, UnpicklingError…); weights_only keeps it from running anything
        raise ExportError(
            f"{path}: not a readable checkpoint, damaged or not written by torch.save "
            f"({_reason(e)})"
        ) from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ExportError(f"{path}: not a normnas checkpoint (no {', '.join(missing)})")
    model = rebuild_network(path, ckpt)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ExportError(
            f"{path}: its weights do not fit its architecture ({_reason(e)})"
        ) from None
    return model.eval(), ckpt


def export(
    checkpoint: str | Path, out: str | Path, fold_bn: bool = False, fmt: str = "state_dict"
) -> Path:
    """Write the model of `checkpoint` as a state-dict file or TorchScript (`fmt`).

    `out`'s missing folders are created; ExportError for an unknown `fmt`, an `out` that
    cannot be written (checked before any work) or an unreadable checkpoint.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    out = prepare_out(out)
    model, ckpt = load(checkpoint)
    if fold_bn:
        from normnas.nn import fold_bn as fold

        model = fold(model).eval()
    if fmt == "state_dict":
        data = dict(ckpt)
        data["state_dict"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        data["folded_bn"] = bool(fold_bn)
        if fold_bn:
            # a folded network has another structure: keep the pickle-free TorchScript beside
            # the weights so it can be rebuilt without the space
            data["note"] = "folded: load the weights into fold_bn(space.build(arch))"
        return _write_whole(out, lambda f: torch.save(data, f))
    example = torch.randn(1, ckpt["in_channels"], *ckpt["image_size"])  # (H, W) or (T,)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks; shapes are fixed
        scripted = torch.jit.trace(model, example)
    return _write_whole(out, lambda f: torch.jit.save(scripted, f))


def find_checkpoint(study_name: str, recorded: str | None, folder: Path) -> Path | None:
    """A study's saved best model: where the study recorded it, else `folder`/NAME-best.pt.

    The second place finds a model moved together with its storage file (`folder` is the
    storage's folder now), which spares a retrain.
    """
    from normnas.search.study import safe_file_stem

    beside = folder / f"{safe_file_stem(study_name)}-best.pt"
    for path in (Path(recorded) if recorded else None, beside):
        if path is not None and path.is_file():
            return path
    return None


def rebuild_config(
    study_name: str,
    meta: Mapping[str, Any],
    data: str | None = None,
    data_root: str | None = None,
) -> dict[str, Any]:
    """The run config to retrain a study's best model from, with `data`/`data_root` moved.

    `meta` is the study's normnas attribute (`study_meta(study)`). Without `data`, a data
    file or folder is taken at the absolute path the study recorded (the search may have
    run in another working directory); DataError naming that path and --data when it no
    longer exists. A named data set (digits, cifar10, ...) is left to the loader, whose
    errors `data_error` explains. ExportError when the study holds no normnas config.
    """
    config = copy.deepcopy(dict(meta.get("config") or {}))
    if not config:
        raise ExportError(
            f"study {study_name!r} holds no normnas run config to retrain from (it was not "
            "made by normnas search), and no saved model was found"
        )
    if data_root is not None:
        config["data_root"] = data_root
    if data is not None:
        config["data"] = data
        return config
    spec = str(config.get("data", ""))
    parsed = _data_path(spec)
    if parsed is None:
        return config
    prefix, raw = parsed
    recorded = ((meta.get("fingerprint") or {}).get("data") or {}).get("path")
    if recorded and Path(recorded).exists():
        config["data"] = f"{prefix}{recorded}"
        return config
    if not recorded and Path(raw).expanduser().exists():
        return config
    where = f"recorded at {recorded}" if recorded else "a path relative to where it ran"
    raise DataError(
        f"study {study_name!r} was searched on --data {spec} ({where}), which no longer "
        f"exists; pass its new place with --data, e.g. --data {prefix}NEW/PATH"
    )


def _data_path(spec: str) -> tuple[str, str] | None:
    """('npz:' | 'folder:' | '', path) of a data spec naming a file or folder; None for a name."""
    from normnas.data.loaders import IDX_NAMES

    key = spec.strip()
    lower = key.lower()
    for prefix in ("npz:", "folder:"):
        if lower.startswith(prefix):
            return key[: len(prefix)], key[len(prefix) :]
    if lower in ("digits", "cifar10", "cifar-10", *IDX_NAMES):
        return None
    return "", key


def data_error(study_name: str, config: Mapping[str, Any], error: BaseException) -> DataError:
    """The DataError for data that fails to load when a study's best model is retrained.

    `config` is what `rebuild_config` returned (the recorded data, or the one passed);
    the message names it and how to pass another. Raise it `from None` in place of `error`.
    """
    root = config.get("data_root")
    at = f" (--data-root {root})" if root else ""
    return DataError(
        f"cannot load the data to retrain the best model of study {study_name!r}: --data "
        f"{config.get('data')}{at}: {one_line(error)}; pass --data (and --data-root) with "
        "where the data is now"
    )


def choose_final(
    retrained: FinalModel,
    data: Any,
    trial_checkpoint: Path | None,
    trial_number: int | None,
) -> tuple[FinalModel, str | None]:
    """The model a search hands back, and a line for the user when it is not a plain retrain.

    The retrained model is kept unless it was cut by the time budget or ended below the
    trial's own validation accuracy; then the better of the two by validation accuracy is
    kept (the retrain's figure is optimistic: it trained on the valid split, so this only
    catches a retrain that failed). The line says which model it is and why.
    """
    ck = retrained.checkpoint
    cut = ck.get("final_status") == "timeout"
    how = (
        f"the final retrain was cut by --time after {ck.get('epochs_run')} of "
        f"{ck.get('epochs')} epochs"
        if cut
        else "the final retrain"
    )
    retrain_valid = ck.get("valid_accuracy")
    if trial_checkpoint is None:
        if not cut:
            return retrained, None
        return retrained, (
            f"{how}; no trained trial weights were kept to fall back on, so the model saved "
            "is that shorter training"
        )
    trial_valid = float(_read(trial_checkpoint).get("valid_accuracy") or 0.0)
    worse = retrain_valid is not None and retrain_valid < trial_valid
    if not cut and not worse:
        return retrained, None
    theirs = "-" if retrain_valid is None else _pct(retrain_valid)
    if not worse:
        return retrained, (
            f"{how}; it still scores {theirs} on valid (trial #{trial_number}'s own network: "
            f"{_pct(trial_valid)}), so it is the model saved: its test accuracy "
            "is of that shorter training"
        )
    retrain = {
        k: ck.get(k)
        for k in ("final_status", "epochs_run", "epochs", "valid_accuracy", "test_accuracy")
    }
    return from_trial(
        trial_checkpoint, data, trial_number, ck.get("study", ""),
        f"{how} ended at {theirs} on valid, below trial #{trial_number}'s own network",
        retrain,
    )  # fmt: skip


def from_trial(
    trial_checkpoint: Path,
    data: Any,
    trial_number: int | None,
    study: str,
    reason: str,
    retrain: dict[str, Any] | None = None,
) -> tuple[FinalModel, str]:
    """The best trial's own trained network as the search's model, tested once, with the
    line that says so (`reason` first)."""
    from normnas.train import evaluate

    model, trial_ck = load(trial_checkpoint)
    test = float(evaluate(model, data.test).accuracy)
    valid = float(trial_ck.get("valid_accuracy") or 0.0)
    also = "" if not retrain else f", the retrain's {_pct(retrain.get('test_accuracy') or 0)}"
    note = (
        f"{reason} ({_pct(valid)} on valid): the model saved is that trial's own network "
        f"(trained on the train split only; test {_pct(test)}{also})"
    )
    checkpoint = dict(trial_ck)
    checkpoint.update(
        test_accuracy=test, study=study, trial=trial_number, source="trial",
        final_status="trial-weights", note=note, retrain=retrain,
    )  # fmt: skip
    return FinalModel(model, test, checkpoint), note


def checkpoint_note(path: str | Path) -> str | None:
    """The line a checkpoint carries when its model is not a plain final retrain."""
    try:
        note = _read(Path(path)).get("note")
    except Exception:  # export already read it; a note is never a reason to fail
        return None
    return str(note) if note else None


def _read(path: Path) -> dict[str, Any]:
    return dict(torch.load(path, map_location="cpu", weights_only=True))


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"
