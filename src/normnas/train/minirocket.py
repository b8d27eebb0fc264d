"""The non-neural reference of a `ucr:` data set: aeon's MiniRocket on the same split.

MiniRocket (Dempster et al. 2021: 10,000 random dilated convolution features and a ridge
classifier with cross-validated regularization) is trained on the whole official train
split (the search's final model trains on train + valid, the same series) and scored on
the official test split, from the raw series (its features are scale-free). `seed` seeds
its random kernels. The first call in a process compiles aeon's numba kernels (seconds to a
minute); `fit_s` includes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from normnas.errors import DataError


@dataclass(frozen=True)
class BaselineResult:
    data: str
    method: str
    test_accuracy: float
    fit_s: float
    n_train: int
    n_test: int

    def line(self) -> str:
        return (
            f"{self.method} on {self.data}: test accuracy {100 * self.test_accuracy:.2f}% "
            f"({self.n_train} train / {self.n_test} test series, {self.fit_s:.0f}s)"
        )


def minirocket_baseline(data: str, seed: int = 0) -> BaselineResult:
    """MiniRocket's test accuracy on `ucr:NAME` (`data` with or without the prefix)."""
    from normnas.data.ucr import SEQ_EXTRA, load_ucr_arrays

    name = data[4:] if data.lower().startswith("ucr:") else data
    arrays = load_ucr_arrays(name)  # DataError for a missing aeon or an unbundled name
    try:
        from aeon.classification.convolution_based import MiniRocketClassifier
    except ImportError:
        raise DataError(f"the MiniRocket baseline needs aeon; {SEQ_EXTRA}") from None
    start = time.perf_counter()
    model = MiniRocketClassifier(random_state=seed, n_jobs=1)
    model.fit(arrays.x_train.astype(np.float64), arrays.y_train)
    pred = model.predict(arrays.x_test.astype(np.float64))
    fit_s = time.perf_counter() - start
    accuracy = float(np.mean(np.asarray(pred, np.int64) == arrays.y_test))
    return BaselineResult(
        f"ucr:{arrays.name}", "MiniRocket", accuracy, fit_s, len(arrays.y_train),
        len(arrays.y_test),
    )  # fmt: skip
