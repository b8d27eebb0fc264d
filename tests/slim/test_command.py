"""`normnas slim` on a study searched on digits: the rows, checkpoints that export and load
back to the same network, the report's section, and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests import support

from normnas.search import final

BN_STUDY = """\
space:
  name: macro
  options:
    stages:
      - {widths: [16], min_blocks: 2, max_blocks: 2, stride: 1}
      - {widths: [24], min_blocks: 1, max_blocks: 1, stride: 2}
    norms: [%s]
    placements: [conv_norm_act]
    residual: [true]
    dropout: [0.0]
train: {epochs: 1, batch_size: 64}
strategy: random
"""


@pytest.fixture(scope="module")
def slimmed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("slim")
    (folder / "bn.yaml").write_text(BN_STUDY % "batchnorm")
    searched = support.invoke(["search", "-c", "bn.yaml", "--trials", "1", "--study", "s",
                               "--no-final", "-q"], folder)  # fmt: skip
    assert searched.exit_code == 0, searched.output
    result = support.invoke(["slim", "--study", "s", "--epochs", "1", "--ratios", "0.5",
                             "--criterion", "bn,random"], folder)  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder


def test_slim_writes_a_row_per_criterion_and_ratio_with_exact_channel_counts(slimmed):
    results = json.loads((slimmed / "s.slim" / "results.json").read_text())
    rows = {(r["criterion"], r["ratio"]): r for r in results["rows"]}
    assert set(rows) == {("bn", 0.5), ("random", 0.5)}
    base = results["unpruned"]
    for r in rows.values():
        assert r["removed"] == round(0.5 * r["candidates"])
        assert r["params"] < base["params"] and r["flops"] < base["flops"]
        assert r["speedup"] == pytest.approx(r["latency_unpruned_ms"] / r["latency_ms"])
        assert 0 <= r["test_accuracy"] <= 1 and (slimmed / "s.slim" / r["checkpoint"]).is_file()
    # a rerun finds every row done: nothing is trained again
    again = support.invoke(["slim", "--study", "s", "--epochs", "1", "--ratios", "0.5",
                            "--criterion", "bn"], slimmed)  # fmt: skip
    assert again.exit_code == 0 and "fine-tuning" not in again.output, again.output


@pytest.mark.parametrize("fmt", ["state_dict", "pt2", "onnx"])
def test_a_pruned_checkpoint_exports_and_comes_back_as_the_same_network(slimmed, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    checkpoint = slimmed / "s.slim" / "bn-0.5.pt"
    model, ckpt = final.load(checkpoint)
    assert ckpt["layer_shapes"]  # it is not space.build(arch)
    suffix = {"onnx": "onnx", "pt2": "pt2"}.get(fmt, "pt")
    out = slimmed / f"exported-{fmt}.{suffix}"
    result = support.invoke(["export", "--checkpoint", str(checkpoint), "--out", str(out),
                             "--format", fmt, "--fold-bn"], slimmed)  # fmt: skip
    assert result.exit_code == 0, result.output
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x)
        if fmt == "state_dict":
            import normnas

            got = normnas.load_model(out)(x)
        elif fmt == "pt2":
            got = torch.export.load(out).module()(x)
        else:
            import onnxruntime

            sess = onnxruntime.InferenceSession(str(out))
            got = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    assert torch.allclose(got, want, atol=1e-4)


def test_the_report_has_a_slimming_section(slimmed):
    result = support.invoke(["report", "--study", "s"], slimmed)
    assert result.exit_code == 0, result.output
    html = (slimmed / "s-report.html").read_text()
    assert '<section id="slimming">' in html and "BN |γ|" in html and 'href="#slimming"' in html


def test_bn_on_a_network_without_batchnorm_is_one_line(tmp_path):
    (tmp_path / "gn.yaml").write_text(BN_STUDY % "groupnorm")
    searched = support.invoke(["search", "-c", "gn.yaml", "--trials", "1", "--study", "g",
                               "--no-final", "-q"], tmp_path)  # fmt: skip
    assert searched.exit_code == 0, searched.output
    result = support.invoke(["slim", "--study", "g", "--epochs", "1"], tmp_path)
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--criterion bn needs BatchNorm scales" in lines[0]
    assert "--criterion l1" in lines[0]


def test_bad_ratios_are_one_line(slimmed):
    result = support.invoke(["slim", "--study", "s", "--ratios", "0.5,1.2"], slimmed)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --ratios: each ratio must be in (0, 1), got 1.2"
    ]
