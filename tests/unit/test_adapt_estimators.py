"""Few-shot adapters (estimators/fewshot): each corrects a source probe towards a new corpus
from k texts only, chooses its strength inside those k texts, and refuses too few texts."""

from __future__ import annotations

import numpy as np
import pytest

from learnerprobe.estimators.fewshot import (
    CutPointAdapter,
    PriorPullAdapter,
    PullCutAdapter,
    ShiftAdapter,
    _nll_grad,
)
from learnerprobe.estimators.probes import make_probe
from learnerprobe.evaluation.metrics import qwk

ADAPTERS = [ShiftAdapter, PriorPullAdapter, CutPointAdapter, PullCutAdapter]


def _corpus(n, shift, seed, d=8):
    """Level = round(x . w) + shift clipped: a new corpus rates ``shift`` levels higher."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = np.linspace(1.0, 0.2, d)
    latent = X @ w / np.linalg.norm(w) * 1.1 + 2.0
    y = np.clip(np.rint(latent + shift + rng.normal(0, 0.3, n)), 0, 4).astype(int)
    return X, y


@pytest.fixture(scope="module")
def source():
    X, y = _corpus(400, 0.0, 0)
    return make_probe("ridge", n_classes=5).fit(X, y)


@pytest.mark.parametrize("cls", ADAPTERS)
def test_adapter_recovers_a_shifted_scale_from_k_texts(cls, source):
    Xk, yk = _corpus(25, 1.0, 1)
    Xt, yt = _corpus(400, 1.0, 2)
    before = qwk(yt, source.predict(Xt), labels=5)
    est = cls(source=source, n_classes=5).fit(Xk, yk)
    after = qwk(yt, est.predict(Xt), labels=5)
    assert after > before + 0.05, (before, after)
    P = est.predict_proba(Xt)
    assert P.shape == (400, 5) and np.allclose(P.sum(1), 1.0)


@pytest.mark.parametrize("cls", ADAPTERS)
def test_adapter_reads_only_the_k_texts_and_keeps_the_source(cls, source):
    """A spy source records every row it is asked about during fit: only the k texts."""
    seen: list[np.ndarray] = []

    class Spy:
        classes_ = source.classes_
        model_ = source.model_

        def predict_score(self, X):
            seen.append(np.asarray(X).copy())
            return source.predict_score(X)

    Xk, yk = _corpus(12, 1.0, 3)
    coef = source.model_[-1].coef_.copy()
    cls(source=Spy(), n_classes=5).fit(Xk, yk)
    assert seen and all(np.array_equal(s, Xk) for s in seen)
    assert np.array_equal(source.model_[-1].coef_, coef)  # never refitted


@pytest.mark.parametrize("cls", ADAPTERS)
def test_too_few_texts_refused(cls, source):
    Xk, yk = _corpus(cls.min_texts - 1, 0.0, 4)
    with pytest.raises(ValueError, match="at least"):
        cls(source=source, n_classes=5).fit(Xk, yk)


def test_strength_is_chosen_inside_the_k_texts(source):
    """Same k texts -> same fit, whatever the scored texts are (nothing else is read)."""
    Xk, yk = _corpus(30, 1.0, 5)
    a = PriorPullAdapter(source=source, n_classes=5).fit(Xk, yk)
    b = PriorPullAdapter(source=source, n_classes=5).fit(Xk, yk)
    assert a.strength_ == b.strength_ and np.array_equal(a.coef_, b.coef_)
    # the new corpus rates one level higher: the learnt correction is about +1 level
    Xt, _ = _corpus(300, 1.0, 6)
    gain = a.level_score(Xt) - source.predict_score(Xt)
    assert 0.6 < float(np.mean(gain)) < 1.4


def test_cut_point_gradient():
    from scipy.optimize import check_grad

    rng = np.random.default_rng(0)
    s, y = rng.normal(2, 1, 40), rng.integers(0, 5, 40)
    th = np.array([0.3, 0.1, -0.2, 0.4, 1.0])
    assert check_grad(lambda t: _nll_grad(t, s, y, 5)[0], lambda t: _nll_grad(t, s, y, 5)[1],
                      th) < 1e-4
