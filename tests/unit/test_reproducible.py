"""A config plus its seeds gives the same results.csv, byte for byte, whatever the run's history.

The issue: the reference-mode MLP regressor (sklearn's MLP: unscaled inputs, 200 Adam epochs,
unconverged) turns last-bit differences of its inputs into different predictions, and the layer
chosen on validation then flips (LOCO QWK 0.519 vs 0.361). Its inputs differed between runs
because a text's activations depended on the texts it was batched with (the batch was padded to
its longest text) -- so on batch_tokens, on which texts a call extracted, on which rows an
earlier or crashed run had cached -- and the MLP's own output changed with the BLAS thread count.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from learnerprobe.estimators.probes import make_probe


def test_reference_mlp_does_not_depend_on_blas_threads():
    """OpenBLAS's results change with its thread count and the unconverged sklearn MLP carries
    that through every epoch; the probe pins BLAS to one thread, so the study's ``threads``
    (not part of the results' digest or cell key) cannot change its predictions."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 96)).astype(np.float32)
    y = np.clip(np.rint(X[:, :4].sum(1) / 2 + 2), 0, 4).astype(int)
    for probe in ("mlp_reg", "mlp_clf"):
        outs = []
        for threads in (1, 2):
            with threadpool_limits(threads):
                est = make_probe(probe, mode="reference", n_classes=5, width=128, seed=0)
                est.fit(X[:200], y[:200])
                outs.append(est._output(X[200:]))
        np.testing.assert_array_equal(outs[0], outs[1])
