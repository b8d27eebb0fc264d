"""scikit-learn's 8x8 handwritten digits: embedded in sklearn, no download."""

from __future__ import annotations

from normnas.data.common import make_bundle, to_nchw_float
from normnas.data.split import DataBundle


def load_digits_bundle(valid_fraction: float = 0.1, seed: int = 0) -> DataBundle:
    """1,797 grey 8x8 images, 10 classes; test = fixed stratified 20%, valid from the rest."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = to_nchw_float(d.images.reshape(-1, 8, 8), scale=16.0)  # pixel values are 0..16
    return make_bundle(
        "digits",
        x,
        d.target,
        None,
        None,
        num_classes=10,
        valid_fraction=valid_fraction,
        seed=seed,
        augment=False,
        classes=[str(i) for i in range(10)],
    )
