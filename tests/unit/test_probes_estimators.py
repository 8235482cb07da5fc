"""Probe estimators: the scikit-learn contract, label handling, and the two modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from learnerprobe.estimators.probes import PROBES, SurfaceBaseline, make_probe
from learnerprobe.estimators.probes.surface import mtld, surface_features


@pytest.fixture(autouse=True)
def _one_thread():
    """Small fits: extra BLAS/torch threads only add contention on a shared 2-core machine."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(prev)


# The sklearn checks use unordered blobs; the all-threshold model assumes ordered classes and
# cannot reach the accuracy check_classifiers_train demands there (not a contract violation).
# Ridge and the MLP regressor pass it with the `poor_score` tag, which they declare.
_ORDINAL_REASON = "ordinal model: sklearn's blob data has unordered classes"


def _expected_failed(est) -> dict[str, str]:
    name = type(est).__name__
    if name == "OrdinalLogisticAT":
        return {"check_classifiers_train": _ORDINAL_REASON}
    return {}


_ESTIMATORS = [make_probe(p, mode=m, width=16) for p in PROBES for m in ("tuned", "reference")]
_ESTIMATORS.append(SurfaceBaseline(max_iter=20))


def _without_array_api(mark):
    """Drop sklearn's array-API checks: they need SCIPY_ARRAY_API and would only be skipped."""

    def name(p):
        check = (p.values if hasattr(p, "values") else p)[1]
        return getattr(getattr(check, "func", check), "__name__", "")

    params = [p for p in mark.args[1] if "array_api" not in name(p)]
    return pytest.mark.parametrize(mark.args[0], params, **mark.kwargs)


@_without_array_api(parametrize_with_checks(_ESTIMATORS, expected_failed_checks=_expected_failed))
def test_sklearn_contract(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def ordinal_data():
    rng = np.random.default_rng(0)
    n, d = 300, 12
    X = rng.normal(size=(n, d))
    y = np.digitize(X[:, 0] + 0.3 * rng.normal(size=n), [-1.0, -0.3, 0.3, 1.0])
    return X, y


@pytest.mark.parametrize("probe", PROBES)
@pytest.mark.parametrize("mode", ["tuned", "reference"])
def test_probe_learns_planted_level_and_handles_absent_levels(ordinal_data, probe, mode):
    X, y = ordinal_data
    keep = y != 2  # a level in the middle of the scale is missing from training
    est = make_probe(probe, mode=mode, n_classes=5, width=16, seed=1).fit(X[keep], y[keep])
    pred = est.predict(X)
    assert pred.dtype.kind == "i" and pred.min() >= 0 and pred.max() <= 4
    assert np.mean(np.abs(pred - y) <= 1) > 0.8
    if hasattr(est, "predict_proba"):
        proba = est.predict_proba(X)
        assert proba.shape == (len(X), 5)
        assert np.allclose(proba.sum(1), 1.0)
        assert np.all(proba[:, 2] == 0)
    else:
        assert probe in ("ridge", "mlp_reg")
    clone(est)  # params round-trip


def test_modes_differ_as_documented():
    ridge_ref, ridge_tuned = make_probe("ridge", mode="reference"), make_probe("ridge")
    assert ridge_ref.alphas is None and not ridge_ref.scale
    assert ridge_tuned.alphas is not None and ridge_tuned.scale
    assert make_probe("mlp_clf", mode="reference", width=384).hidden_layer_size == 384
    assert make_probe("mlp_clf", mode="reference", width=384).backend == "sklearn_torch"
    assert make_probe("mlp_reg").backend == "torch"
    with pytest.raises(ValueError, match="unknown probe"):
        make_probe("svm")
    with pytest.raises(ValueError, match="mode"):
        make_probe("ridge", mode="fast")


def test_tuned_scaling_handles_huge_activations(ordinal_data):
    X, y = ordinal_data
    X_big = X * 500.0 + 300.0  # decoder-like magnitudes
    a = make_probe("logistic", n_classes=5).fit(X, y).predict_proba(X)
    b = make_probe("logistic", n_classes=5).fit(X_big, y).predict_proba(X_big)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_ordinal_probabilities_are_threshold_differences(ordinal_data):
    X, y = ordinal_data
    est = make_probe("ordinal", mode="reference", n_classes=5).fit(X, y)
    from scipy.special import expit

    cdf = expit(est.theta_[None, :] - (X @ est.coef_)[:, None])
    np.testing.assert_allclose(np.cumsum(est.predict_proba(X), 1)[:, :4], cdf, atol=1e-12)
    assert np.all(np.diff(est.theta_) >= 0)


def test_labels_must_fit_n_classes(ordinal_data):
    X, y = ordinal_data
    with pytest.raises(ValueError, match="0..2"):
        make_probe("ridge", n_classes=3).fit(X, y)


def test_surface_features_hand_checked():
    text = "Ich bin Anna. Ich wohne in Berlin!\nDas ist gut"
    f = surface_features([text, ""], extended=True)
    words = ["Ich", "bin", "Anna", "Ich", "wohne", "in", "Berlin", "Das", "ist", "gut"]
    assert f.shape == (2, 6)
    assert f[0, 0] == len(text)
    assert f[0, 1] == pytest.approx(np.mean([len(w) for w in words]))
    assert f[0, 2] == pytest.approx(10 / 3)  # three sentences
    assert f[0, 3] == pytest.approx(9 / 10)  # "ich" twice
    assert f[0, 5] == pytest.approx(2 / 10)  # "." and "!"
    assert np.all(f[1] == 0)
    assert surface_features(["a b"]).shape == (1, 3)


def test_mtld_known_values():
    assert mtld(["a"] * 50) == pytest.approx(2.0)  # no diversity: a factor every two words
    diverse = [f"w{i}" for i in range(100)]
    assert mtld(diverse) == pytest.approx(100.0)  # TTR never drops: one (partial) factor
    assert mtld(["a", "b"] * 50) < mtld([f"w{i % 40}" for i in range(100)])


def test_surface_baseline_uses_length():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    texts = [" ".join(["wort"] * int(20 + 30 * lvl + rng.integers(0, 20))) + "." for lvl in y]
    est = SurfaceBaseline(n_classes=5).fit(surface_features(texts[:200]), y[:200])
    assert np.mean(est.predict(surface_features(texts[200:])) == y[200:]) > 0.9
    assert est.predict_proba(surface_features(texts[:3])).shape == (3, 5)
