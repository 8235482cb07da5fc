"""The reference-mode MLP (sklearn's MLPClassifier/MLPRegressor re-implemented in torch, all
layers at once) is sklearn's estimator: same weights in float64, same scores in float32."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.neural_network import MLPClassifier, MLPRegressor
from threadpoolctl import threadpool_limits

from learnerprobe.estimators.probes import make_probe
from learnerprobe.estimators.probes._sklearn_mlp import sklearn_mlp_output, train_sklearn_mlp
from learnerprobe.estimators.probes.all_layers import fit_predict_layers
from learnerprobe.evaluation.metrics import qwk

K = 5


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning after max_iter
        yield
    torch.set_num_threads(prev)


def _levels(rng, n, d, scale=1.0):
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d) / np.sqrt(d)
    y = np.digitize(X @ w + rng.normal(scale=0.3, size=n), [-1.0, -0.35, 0.35, 1.0])
    return X * scale, y


@pytest.mark.parametrize(("task", "n_classes", "max_iter", "tol"), [
    ("clf", 4, 30, 1e-4), ("clf", 2, 30, 1e-4), ("reg", 1, 30, 1e-4),
    ("clf", 4, 200, 2e-2), ("reg", 1, 200, 2e-2),  # sklearn's tol rule stops these early
])
def test_float64_weights_are_sklearns(task, n_classes, max_iter, tol):
    rng = np.random.default_rng(1)
    X, y = _levels(rng, 330, 12)
    if task == "clf":
        y = np.minimum(y, n_classes - 1)
        sk = MLPClassifier(hidden_layer_sizes=(16,), max_iter=max_iter, tol=tol, random_state=7)
    else:
        y = y.astype(float)
        sk = MLPRegressor(hidden_layer_sizes=(16,), max_iter=max_iter, tol=tol, random_state=7)
    sk.fit(X, y)
    w = train_sklearn_mlp(np.stack([X, 3 * X]), y, task=task, n_out=n_classes, hidden=16,
                          max_iter=max_iter, tol=tol, seed=7)
    assert w["n_iter"][0] == sk.n_iter_
    if tol > 1e-3:
        assert sk.n_iter_ < max_iter and w["converged"][0]
    np.testing.assert_allclose(w["W1"][0], sk.coefs_[0], atol=1e-10)
    np.testing.assert_allclose(w["b2"][0, 0], sk.intercepts_[1], atol=1e-10)
    assert w["loss"][0] == pytest.approx(sk.loss_, rel=1e-9)
    ref = sk.predict_proba(X) if task == "clf" else sk.predict(X)[:, None]
    np.testing.assert_allclose(sklearn_mlp_output(w, X[None])[0], ref, atol=1e-9)
    # layer 1 trained alongside is its own fit (its own stopping epoch)
    alone = train_sklearn_mlp(3 * X[None], y, task=task, n_out=n_classes, hidden=16,
                              max_iter=max_iter, tol=tol, seed=7)
    assert alone["n_iter"][0] == w["n_iter"][1]
    np.testing.assert_allclose(alone["W1"][0], w["W1"][1], atol=1e-10)


@pytest.mark.parametrize("probe", ["mlp_reg", "mlp_clf"])
def test_float32_scores_match_sklearn_within_seed_spread(probe):
    """On float32 activations sklearn and ours differ by rounding only; over five seeds the
    test QWKs agree within the seed-to-seed spread of sklearn's own."""
    rng = np.random.default_rng(2)
    X, y = _levels(rng, 500, 16, scale=4.0)
    X = X.astype(np.float32)
    tr, te = slice(0, 300), slice(300, None)
    ours, theirs = [], []
    for seed in range(5):
        a = make_probe(probe, mode="reference", n_classes=K, width=16, seed=seed)
        b = make_probe(probe, mode="reference", n_classes=K, width=16, seed=seed)
        b.set_params(backend="sklearn")
        ours.append(qwk(y[te], a.fit(X[tr], y[tr]).predict(X[te]), labels=K))
        theirs.append(qwk(y[te], b.fit(X[tr], y[tr]).predict(X[te]), labels=K))
    spread = max(np.ptp(theirs), 0.01)
    assert abs(np.mean(ours) - np.mean(theirs)) <= spread
    assert np.max(np.abs(np.subtract(ours, theirs))) <= spread
    assert np.mean(ours) > 0.6


@pytest.mark.parametrize("probe", ["mlp_reg", "mlp_clf"])
def test_reference_sweep_is_the_per_layer_estimator(probe):
    rng = np.random.default_rng(3)
    X, y = _levels(rng, 400, 16)
    XL = np.stack([X, 2 * X + 1, rng.normal(size=X.shape)]).astype(np.float32)
    out = fit_predict_layers(XL[:, :300], y[:300], XL[:, 300:], probe, mode="reference",
                             n_classes=K, width=24, seed=4)
    for layer in range(3):
        est = make_probe(probe, mode="reference", n_classes=K, width=24, seed=4)
        est.fit(XL[layer, :300], y[:300])
        np.testing.assert_array_equal(out["pred"][layer], est.predict(XL[layer, 300:]))
        if probe == "mlp_clf":
            np.testing.assert_allclose(out["proba"][layer], est.predict_proba(XL[layer, 300:]),
                                       atol=1e-5)
        assert out["info"][layer]["n_iter_"] == est.n_iter_


def test_reference_mlp_handles_absent_levels_and_one_class():
    rng = np.random.default_rng(4)
    X, y = _levels(rng, 300, 8)
    keep = y < 4
    out = fit_predict_layers(X[None, keep], y[keep], X[None], "mlp_clf", mode="reference",
                             n_classes=K, width=8)
    assert out["proba"].shape == (1, 300, K) and np.all(out["proba"][..., 4] == 0)
    assert np.allclose(out["proba"].sum(-1), 1.0)
    est = make_probe("mlp_clf", mode="reference", n_classes=K, width=8).fit(X[:20], np.full(20, 2))
    assert np.all(est.predict(X) == 2)
