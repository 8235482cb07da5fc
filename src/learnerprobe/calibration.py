"""Class probabilities for ordinal regressors: an ordered-logit link fitted on validation scores.

A regression probe (ridge, MLP regressor) gives a continuous level score, not probabilities.
:class:`OrdinalCalibrated` turns it into a calibrated distribution over the levels with a
cumulative-link (proportional-odds, "ordered logit") model on the one-dimensional score::

    P(y <= j | s) = sigmoid(theta_j - beta * z),   z = (s - mean) / sd,   beta >= 0

fitted by maximum likelihood (tiny L2 penalty so levels absent from the calibration rows keep a
finite interval) on the scores of **held-out calibration rows** -- rows the regressor that scored
them never saw. The regressor is then refitted on all rows and the link is applied to its scores.
Probabilities sum to 1, the predicted label is their argmax (the mode), and because ``beta >= 0``
and the logistic density is log-concave, the distribution is stochastically increasing in the
score and its mode never decreases when the score grows.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted


def _cdf(z: np.ndarray, theta: np.ndarray, beta: float) -> np.ndarray:
    from scipy.special import expit

    return expit(theta[None, :] - beta * z[:, None])


def ordered_logit_proba(z: np.ndarray, theta: np.ndarray, beta: float) -> np.ndarray:
    """Level probabilities (n x K) of the cumulative-link model at standardised scores ``z``."""
    z = np.asarray(z, dtype=float).ravel()
    cdf = np.hstack([np.zeros((z.size, 1)), _cdf(z, theta, beta), np.ones((z.size, 1))])
    p = np.clip(np.diff(cdf, axis=1), 0.0, 1.0)
    return p / p.sum(axis=1, keepdims=True)


def _unpack(params: np.ndarray) -> tuple[np.ndarray, float]:
    beta, first, log_gaps = params[0], params[1], params[2:]
    theta = first + np.concatenate([[0.0], np.cumsum(np.exp(log_gaps))])
    return theta, float(beta)


def fit_ordered_logit(z: np.ndarray, y: np.ndarray, n_classes: int,
                      alpha: float = 1e-2) -> tuple[np.ndarray, float]:
    """Maximum-likelihood ``(theta, beta)`` of the ordered logit on scores ``z``, labels 0..K-1.

    Thresholds are parameterised as a first threshold plus positive gaps (exp of free values),
    so they stay ordered; ``beta`` is bounded below by 0 (probabilities monotone in the score).
    ``alpha`` is an L2 penalty on the log-gaps and the first threshold (not per row).
    """
    from scipy import optimize
    from scipy.special import logit

    z = np.asarray(z, dtype=float).ravel()
    y = np.asarray(y, dtype=int).ravel()
    k = int(n_classes)
    if k < 2:
        raise ValueError("an ordered logit needs at least two levels")
    counts = np.bincount(y, minlength=k).astype(float) + 0.5
    cum = np.clip(np.cumsum(counts)[:-1] / counts.sum(), 1e-3, 1 - 1e-3)
    theta0 = logit(cum)
    gaps0 = np.maximum(np.diff(theta0), 0.1)
    x0 = np.concatenate([[1.0, theta0[0]], np.log(gaps0)])
    rows = np.arange(z.size)

    def nll(params: np.ndarray) -> float:
        theta, beta = _unpack(params)
        p = ordered_logit_proba(z, theta, beta)[rows, y]
        return float(-np.sum(np.log(np.maximum(p, 1e-12)))
                     + alpha * (np.sum(params[2:] ** 2) + params[1] ** 2))

    bounds = [(0.0, None)] + [(None, None)] * (len(x0) - 1)
    sol = optimize.minimize(nll, x0, method="L-BFGS-B", bounds=bounds)
    return _unpack(sol.x)


class OrdinalCalibrated(ClassifierMixin, BaseEstimator):
    """A fitted ordinal regressor plus an ordered-logit link fitted on held-out scores.

    ``fit(X, y, cal_mask=...)``: a clone of ``estimator`` is fitted on the rows where ``cal_mask``
    is False, scores the calibration rows (True), and the link is fitted on those scores only;
    then ``estimator_`` (another clone) is refitted on all rows. Without ``cal_mask`` a grouped
    stratified holdout of ``cal_size`` (by ``groups``, else by row) is drawn with
    ``random_state``. Labels are level indices ``0..K-1`` (``n_classes=K``, as for the probes).
    ``predict_proba`` sums to 1, ``predict`` is its argmax, ``predict_score`` is the regressor's
    continuous score.
    """

    # see learnerprobe.bundles.trust (the wrapped probe declares its own)
    _bundleable = {"types": (), "arrays": "ordinal_calibrated"}

    def __init__(self, estimator=None, n_classes: int | None = None, cal_size: float = 0.2,
                 alpha: float = 1e-2, random_state: int = 0):
        self.estimator = estimator
        self.n_classes = n_classes
        self.cal_size = cal_size
        self.alpha = alpha
        self.random_state = random_state

    def fit(self, X, y, *, cal_mask=None, groups=None):
        if self.estimator is None:
            raise ValueError("OrdinalCalibrated needs an estimator with predict_score")
        X = np.asarray(X)
        y = np.asarray(y).astype(int)
        k = int(self.n_classes) if self.n_classes is not None else int(y.max()) + 1
        if y.min() < 0 or y.max() >= k:
            raise ValueError(f"labels must be integers 0..{k - 1}")
        if cal_mask is None:
            from learnerprobe.evaluation.splits import grouped_holdout

            g = np.arange(len(y)) if groups is None else np.asarray(groups)
            _, va = grouped_holdout(y, g, test_size=self.cal_size, seed=self.random_state)
            cal_mask = np.zeros(len(y), dtype=bool)
            cal_mask[va] = True
        cal_mask = np.asarray(cal_mask, dtype=bool)
        if cal_mask.shape != y.shape or cal_mask.all() or not cal_mask.any():
            raise ValueError("cal_mask must mark some, but not all, rows for calibration")
        first = clone(self.estimator).fit(X[~cal_mask], y[~cal_mask])
        s = np.asarray(first.predict_score(X[cal_mask]), dtype=float)
        self.score_mean_ = float(np.mean(s))
        self.score_scale_ = float(np.std(s)) or 1.0
        z = (s - self.score_mean_) / self.score_scale_
        self.theta_, self.beta_ = fit_ordered_logit(z, y[cal_mask], k, self.alpha)
        self.n_calibration_ = int(cal_mask.sum())
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = np.arange(k)
        self.n_features_in_ = int(X.shape[1])
        return self

    def predict_score(self, X) -> np.ndarray:
        """The regressor's continuous level score (before calibration)."""
        check_is_fitted(self)
        return np.asarray(self.estimator_.predict_score(X), dtype=float)

    def predict_proba(self, X) -> np.ndarray:
        z = (self.predict_score(X) - self.score_mean_) / self.score_scale_
        return ordered_logit_proba(z, self.theta_, self.beta_)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
