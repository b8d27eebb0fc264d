"""What `normnas export --fold-bn` says it folded: the count, as the ONNX export says it."""

from __future__ import annotations

from pathlib import Path

from normnas.data import DataBundle
from normnas.export import export
from normnas.spaces import MacroSpace

from .helpers import write_checkpoint

NO_BN = MacroSpace(
    stages=[{"widths": [8], "min_blocks": 1, "max_blocks": 1, "stride": 1}],
    norms=["none", "layernorm"],
    dropout=[0.0],
)


def test_fold_bn_says_how_many_batchnorms_it_folded(
    macro_checkpoint: Path, digits: DataBundle, tmp_path: Path
) -> None:
    # the macro model's BNs: conv → BN → act folds; BN → act → conv and conv → act → BN don't
    done = export(macro_checkpoint, tmp_path / "m.pt", fmt="torchscript", fold_bn=True)
    assert done.note == "torchscript, 1 of 3 BatchNorm folded"
    plain = write_checkpoint(
        tmp_path / "plain.pt", NO_BN, "[w8-k3-none-conv_norm_act-relu-plain] dropout=0.0", digits
    )
    assert export(plain, tmp_path / "p.pt", fold_bn=True).note == (
        "state_dict, 0 of 0 BatchNorm folded"  # not "BN folded": there was none
    )
    assert export(plain, tmp_path / "q.pt").note == "state_dict"
