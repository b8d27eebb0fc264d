"""Export faults end in one ExportError (or DataError) line naming the folder, file or data.

A real checkpoint comes from a real 1-epoch search on a small .npz data set. Read-only
cases use chmod; as root (which chmod does not stop) the folder is also made immutable with
`chattr +i`, which binds root too; where that is unavailable the test is skipped.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from tests.support import invoke, read_only

import normnas
from normnas.assemble import build_parts
from normnas.config import parse_config
from normnas.errors import DataError, ExportError
from normnas.search import final
from normnas.search.study import study_meta
from normnas.spaces import MacroSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, normnas.SearchOutcome]:
    """A finished study searched on npz:d.npz, a path relative to its working folder."""
    work = tmp_path_factory.mktemp("searched")
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 40)
    x = (rng.random((160, 8, 8)) * 60 + y[:, None, None] * 45).astype(np.uint8)
    np.savez(work / "d.npz", x=x, y=y)
    space = MacroSpace(
        stages=[{"widths": [8], "min_blocks": 1, "max_blocks": 1, "stride": 1}],
        norms=["batchnorm"],
        dropout=[0.0],
    )
    old = Path.cwd()
    os.chdir(work)
    try:
        out = normnas.search(
            space=space, data="npz:d.npz", strategy="random", trials=1, epochs=1, study="e"
        )
    finally:
        os.chdir(old)
    assert out.model_path is not None and out.model_path.is_file()
    return work, out


def test_a_missing_output_folder_is_created_and_an_unwritable_one_named(searched, tmp_path):
    _, out = searched
    nested = tmp_path / "new" / "deeper" / "m.pt"
    assert final.export(out.model_path, nested) == nested
    assert final.load(nested)[1]["arch"] == final.load(out.model_path)[1]["arch"]
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked), pytest.raises(ExportError) as info:
        final.export(out.model_path, locked / "m.pt", fmt="torchscript")
    assert str(info.value) == (
        f"{locked / 'm.pt'}: cannot write into {locked} (read-only); choose another folder"
    )
    assert list(locked.iterdir()) == []  # no temporary file left behind


def test_save_into_a_read_only_folder_is_an_export_error(searched, tmp_path):
    _, out = searched
    model, ckpt = final.load(out.model_path)
    fm = final.FinalModel(model, ckpt["test_accuracy"], ckpt)
    with read_only(tmp_path), pytest.raises(ExportError, match=f"cannot write into {tmp_path}"):
        final.save(fm, tmp_path / "best.pt")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("plain/m.pt", "cannot create its folder {d}/plain ({d}/plain is a file)"),
        ("folder", "{d}/folder: a folder; give a file name, e.g. {d}/folder/model.pt"),
    ],
)
def test_an_output_path_through_a_file_or_onto_a_folder_is_named(
    searched, tmp_path, target, message
):
    _, out = searched
    (tmp_path / "plain").write_text("a file")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ExportError) as info:
        final.export(out.model_path, tmp_path / target)
    assert message.format(d=tmp_path) in str(info.value)


def test_report_onto_a_folder_suggests_an_html_name(tmp_path):
    optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'normnas.db'}")
    (tmp_path / "out").mkdir()
    result = invoke(["report", "--study", "s", "--out", "out"], tmp_path)
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: out: a folder; give a file name, e.g. {Path('out') / 's-report.html'}"
    ]
    assert list((tmp_path / "out").iterdir()) == []


def test_prepare_out_suggests_the_callers_file_name(tmp_path):
    with pytest.raises(ExportError, match=r"a folder; give a file name, e\.g\. .*/model\.onnx$"):
        final.prepare_out(tmp_path, "model.onnx")


def test_a_read_only_existing_output_file_is_kept(searched, tmp_path):
    _, out = searched
    target = tmp_path / "m.pt"
    target.write_bytes(b"precious")
    with read_only(target), pytest.raises(ExportError, match="exists and is read-only"):
        final.export(out.model_path, target)
    assert target.read_bytes() == b"precious"


def test_an_unknown_format_is_refused_before_any_work(tmp_path):
    with pytest.raises(ExportError, match="unknown export format 'onnx'; valid: state_dict"):
        final.export(tmp_path / "absent.pt", tmp_path / "out" / "m.onnx", fmt="onnx")
    assert not (tmp_path / "out").exists()


def test_unreadable_checkpoints_are_named(searched, tmp_path):
    _, out = searched
    garbage, half, foreign = tmp_path / "g.pt", tmp_path / "h.pt", tmp_path / "f.pt"
    garbage.write_bytes(random.Random(0).randbytes(2000))
    data = out.model_path.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    torch.save({"weights": torch.zeros(3)}, foreign)
    cases = [
        (garbage, "not a readable checkpoint, damaged or not written by torch.save ("),
        (half, "not a readable checkpoint, damaged or not written by torch.save ("),
        (foreign, "not a normnas checkpoint (no state_dict, space, arch, num_classes"),
        (tmp_path / "none.pt", "no such checkpoint file"),
    ]
    for path, why in cases:
        with pytest.raises(ExportError) as info:
            final.export(path, tmp_path / "out.pt")
        assert str(info.value).startswith(f"{path}: {why}")
        assert len(str(info.value).splitlines()) == 1


def test_moved_data_is_named_with_its_recorded_path_and_how_to_pass_it(searched, tmp_path):
    work, out = searched
    meta = study_meta(out.study)
    # from another working folder, the relative npz:d.npz is found at its recorded place
    config = final.rebuild_config("e", meta)
    assert config["data"] == f"npz:{work / 'd.npz'}"
    moved = tmp_path / "moved.npz"
    (work / "d.npz").rename(moved)
    try:
        with pytest.raises(DataError) as info:
            final.rebuild_config("e", meta)
        assert str(info.value) == (
            f"study 'e' was searched on --data npz:d.npz (recorded at {work / 'd.npz'}), which "
            "no longer exists; pass its new place with --data, e.g. --data npz:NEW/PATH"
        )
        config = final.rebuild_config("e", meta, data=f"npz:{moved}")
        parts = build_parts(parse_config(config))  # the retrain's inputs load from there
        assert parts.data.num_classes == 4
        bad = tmp_path / "bad.npz"
        bad.write_bytes(b"not an npz")
        config = final.rebuild_config("e", meta, data=f"npz:{bad}")
        with pytest.raises(DataError) as loading:
            build_parts(parse_config(config))
        assert str(final.data_error("e", config, loading.value)).startswith(
            f"cannot load the data to retrain the best model of study 'e': --data npz:{bad}: "
            f"{bad}: not a readable .npz file"
        )
    finally:
        moved.rename(work / "d.npz")


def test_a_best_model_moved_with_its_storage_is_found(searched, tmp_path):
    _, out = searched
    moved = tmp_path / "e-best.pt"
    moved.write_bytes(out.model_path.read_bytes())
    recorded = str(tmp_path / "gone" / "e-best.pt")
    assert final.find_checkpoint("e", recorded, tmp_path) == moved
    assert final.find_checkpoint("e", recorded, tmp_path / "gone") is None
