"""The all-layer sweep gives the predictions of per-layer make_probe fits (planted signal data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from learnerprobe.estimators.probes import make_probe
from learnerprobe.estimators.probes.all_layers import (
    fit_predict_layers,
    standardize_layers,
    sweep_reference,
)
from learnerprobe.evaluation.metrics import qwk

K = 5


@pytest.fixture(autouse=True)
def _one_thread():
    """Small fits: extra BLAS/torch threads only add contention on a shared 2-core machine."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def planted():
    """3 layers; only layer 1 carries the level (on a scale of several hundred, like decoders)."""
    rng = np.random.default_rng(0)
    n, m, d = 400, 150, 24
    w = rng.normal(size=d) / np.sqrt(d)
    X = rng.normal(size=(3, n + m, d)) * np.array([1.0, 300.0, 5.0])[:, None, None]
    latent = X[1] @ w / 300.0
    y = np.digitize(latent + rng.normal(scale=0.25, size=n + m), [-1.0, -0.35, 0.35, 1.0])
    return X[:, :n], y[:n], X[:, n:], y[n:]


def _per_layer(probe, Xtr, ytr, Xte, mode="tuned"):
    preds, probas, ests = [], [], []
    for layer in range(Xtr.shape[0]):
        est = make_probe(probe, mode=mode, n_classes=K, width=32).fit(Xtr[layer], ytr)
        preds.append(est.predict(Xte[layer]))
        probas.append(est.predict_proba(Xte[layer]) if hasattr(est, "predict_proba") else None)
        ests.append(est)
    return np.array(preds), probas, ests


@pytest.mark.parametrize("probe", ["ridge", "logistic", "ordinal"])
def test_sweep_equals_per_layer_linear(planted, probe):
    Xtr, ytr, Xte, yte = planted
    out = fit_predict_layers(Xtr, ytr, Xte, probe, n_classes=K, n_jobs=1)
    preds, probas, ests = _per_layer(probe, Xtr, ytr, Xte)
    assert out["pred"].shape == (3, Xte.shape[1])
    assert np.mean(out["pred"] == preds) >= 0.99
    if probe == "ridge":
        assert out["proba"] is None
        assert [i["alpha"] for i in out["info"]] == pytest.approx([e.alpha_ for e in ests])
    else:
        assert out["proba"].shape == (3, Xte.shape[1], K)
        # the batched solve converges further than sklearn (gtol 1e-4) and mord (tol 1e-6) stop:
        # it equals tightly converged fits to ~1e-5 (tests/unit/test_batched_linear.py), so here
        # the tolerance is the per-layer estimators' own stopping error
        np.testing.assert_allclose(out["proba"], np.stack(probas), atol=5e-3)
        assert [i["C_" if probe == "logistic" else "alpha_"] for i in out["info"]] == \
            pytest.approx([e.C_ if probe == "logistic" else e.alpha_ for e in ests])
    scores = [qwk(yte, p, labels=K) for p in out["pred"]]
    assert scores[1] > 0.8 and scores[1] > max(scores[0], scores[2]) + 0.4


@pytest.mark.parametrize("probe", ["mlp_reg", "mlp_clf"])
def test_sweep_mlp_comparable_to_per_layer(planted, probe):
    Xtr, ytr, Xte, yte = planted
    out = fit_predict_layers(Xtr, ytr, Xte, probe, n_classes=K, width=32)
    preds, _, _ = _per_layer(probe, Xtr, ytr, Xte)
    sweep_scores = np.array([qwk(yte, p, labels=K) for p in out["pred"]])
    loop_scores = np.array([qwk(yte, p, labels=K) for p in preds])
    assert abs(sweep_scores[1] - loop_scores[1]) < 0.05
    assert sweep_scores[1] > 0.7 and sweep_scores[1] > max(sweep_scores[[0, 2]]) + 0.3
    if probe == "mlp_clf":
        assert np.allclose(out["proba"].sum(-1), 1.0)


def test_sweep_reference_is_the_plain_loop(planted):
    Xtr, ytr, Xte, _ = planted
    out = sweep_reference(Xtr, ytr, Xte, "ordinal", n_classes=K)
    preds, probas, _ = _per_layer("ordinal", Xtr, ytr, Xte, mode="reference")
    np.testing.assert_array_equal(out["pred"], preds)
    np.testing.assert_allclose(out["proba"], np.stack(probas))
    assert out["seconds"] > 0


def test_sweep_handles_levels_absent_from_training(planted):
    Xtr, ytr, Xte, _ = planted
    keep = ytr < 4  # the top level is missing from the training corpora
    for probe in ("logistic", "ordinal", "mlp_clf"):
        out = fit_predict_layers(Xtr[:, keep], ytr[keep], Xte, probe, n_classes=K, width=16,
                                 n_jobs=1)
        assert out["proba"].shape[-1] == K
        assert np.all(out["proba"][..., 4] == 0)
        assert out["pred"].max() <= 3


def test_standardize_uses_training_statistics_only():
    rng = np.random.default_rng(1)
    Xtr = rng.normal(5.0, 3.0, size=(2, 100, 4))
    Xte = Xtr[:, :10] + 1000.0
    a, b = standardize_layers(Xtr, Xte)
    assert np.allclose(a.mean(1), 0) and np.allclose(a.std(1), 1)
    assert b.mean() > 100  # test data did not influence the scaling


def test_sweep_input_errors(planted):
    Xtr, ytr, Xte, _ = planted
    with pytest.raises(ValueError, match="unknown probe"):
        fit_predict_layers(Xtr, ytr, Xte, "svm", n_classes=K)
    with pytest.raises(ValueError, match="labels"):
        fit_predict_layers(Xtr, ytr[:-1], Xte, "ridge", n_classes=K)
    with pytest.raises(ValueError, match="0..2"):
        fit_predict_layers(Xtr, ytr, Xte, "ridge", n_classes=3)
