"""Streaming probes: statistics accumulated batch by batch give the in-memory estimators."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from learnerprobe.estimators.probes.online import (
    LayerStats,
    MinibatchLayerProbes,
    lda_predict_proba,
)


def _data(n=300, layers=3, d=8, k=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(size=(layers, n, d)) * rng.uniform(0.5, 3, size=(1, 1, d)) + 2.0
    X[1, :, 0] += 3.0 * y  # layer 1 carries the label
    X[:, :, 3] = 7.0  # a constant feature (centred, not scaled)
    return X, y


def _stream(X, y, sizes=(1, 17, 64, 100)):
    st = LayerStats(X.shape[0], X.shape[2], int(y.max()) + 1)
    i, j = 0, 0
    while i < len(y):
        b = sizes[j % len(sizes)]
        st.update(X[:, i : i + b], y[i : i + b])
        i, j = i + b, j + 1
    return st


def test_streaming_ridge_equals_in_memory_ridge_for_every_alpha():
    X, y = _data()
    alphas = [0.01, 1.0, 100.0, 1e4]
    path = _stream(X, y).ridge_path(alphas)
    Xt, _ = _data(n=50, seed=1)
    got = path.predict(Xt)
    for li in range(X.shape[0]):
        sc = StandardScaler().fit(X[li])
        for ai, a in enumerate(alphas):
            ref = Ridge(alpha=a, solver="cholesky").fit(sc.transform(X[li]), y)
            want = ref.predict(sc.transform(Xt[li]))
            np.testing.assert_allclose(got[li, ai], want, rtol=1e-6, atol=1e-6)


def test_split_streams_merge_exactly_and_validation_mse_is_exact():
    X, y = _data()
    whole = _stream(X, y)
    parts = _stream(X[:, :120], y[:120]).merge(_stream(X[:, 120:], y[120:]))
    np.testing.assert_allclose(parts.sxx, whole.sxx, rtol=1e-12)
    path = whole.ridge_path([0.1, 10.0])
    Xv, yv = _data(n=80, seed=2)
    want = ((path.predict(Xv) - yv[None, None]) ** 2).mean(-1)
    np.testing.assert_allclose(_stream(Xv, yv).mse(path), want, rtol=1e-6, atol=1e-9)
    assert want[1].min() < want[0].min()  # the label layer wins on validation


def test_streaming_lda_equals_sklearn_lda():
    X, y = _data()
    X = X[:, :, [0, 1, 2, 4, 5, 6, 7]]  # no constant column (singular covariance)
    coef, icpt = _stream(X, y).lda()
    Xt, _ = _data(n=40, seed=3)
    Xt = Xt[:, :, [0, 1, 2, 4, 5, 6, 7]]
    proba = lda_predict_proba(coef, icpt, Xt)
    for li in range(X.shape[0]):
        ref = LinearDiscriminantAnalysis(solver="lsqr").fit(X[li], y)
        np.testing.assert_allclose(coef[li], ref.coef_, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(proba[li], ref.predict_proba(Xt[li]), rtol=1e-6, atol=1e-8)


@pytest.fixture
def one_torch_thread():
    """Tiny minibatches: one thread (on a busy 2-core machine two threads made each step 40x
    slower, 100 ms instead of 2.4 ms)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_minibatch_probes_learn_every_layer_at_once(kind, one_torch_thread):
    X, y = _data(n=600)
    st = _stream(X, y)
    probes = MinibatchLayerProbes(kind, n_classes=4, mean=st.mean, scale=st.scale(), seed=0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        for b in np.array_split(rng.permutation(600), 20):
            probes.partial_fit(X[:, b], y[b])
    Xt, yt = _data(n=300, seed=4)
    acc = (probes.predict(Xt) == yt[None]).mean(1)
    sc = StandardScaler().fit(X[1])
    ref = LogisticRegression(max_iter=2000).fit(sc.transform(X[1]), y)
    ref_acc = (ref.predict(sc.transform(Xt[1])) == yt).mean()
    if kind == "logistic":  # as good as the in-memory fit on the label layer
        assert acc[1] > ref_acc - 0.05
    else:  # an MLP overfits 600 rows somewhat; it must still learn the label layer
        assert acc[1] > 0.5
    assert acc[0] < 0.45 and acc[2] < 0.45  # noise layers stay near chance (0.25)
