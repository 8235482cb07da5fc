"""``SGDClassifier(loss="log_loss")``'s model, fitted to convergence in one batched L-BFGS.

Per class ``k`` (one-vs-rest, as SGD): minimise
``mean_i c_ik * log(1 + exp(-s_ik * (x_i . w_k + b_k))) + alpha / 2 * ||w_k||^2`` with
``s_ik = +1`` for the class and ``-1`` otherwise, ``c_ik`` the class weight of ``k`` on its
positives and 1 on the rest (SGD's ``pos_weight`` / ``neg_weight``), the intercept unpenalised.
The classes' problems are independent, so their sum is minimised at once: one matrix product per
iteration for all classes. Probabilities as SGD gives them: each class's sigmoid, normalised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight
from threadpoolctl import threadpool_limits


class OvrLogistic(ClassifierMixin, BaseEstimator):
    """One-vs-rest L2 logistic regression with SGDClassifier's objective (see module doc)."""

    def __init__(self, alpha: float = 1e-4, class_weight: str | dict | None = None,
                 max_iter: int = 2000, gtol: float = 1e-6) -> None:
        self.alpha = alpha
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.gtol = gtol

    def fit(self, X: Any, y: Any) -> OvrLogistic:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        K = len(self.classes_)
        n, d = X.shape
        cw = (compute_class_weight(self.class_weight, classes=self.classes_, y=y)
              if self.class_weight is not None else np.ones(K))
        S = np.where(np.arange(K)[None, :] == yi[:, None], 1.0, -1.0)  # n x K signs
        C = np.where(S > 0, cw[None, :], 1.0) / n  # per-sample weight of each class's problem
        if K == 2:  # binary: SGD fits one problem (the second class positive)
            S, C = S[:, 1:], np.where(S[:, 1:] > 0, cw[1], cw[0]) / n
        k = S.shape[1]
        alpha = float(self.alpha)

        def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W, b = theta[: d * k].reshape(d, k), theta[d * k:]
            m = S * (X @ W + b)
            loss = -(C * log_expit(m)).sum() + 0.5 * alpha * (W * W).sum()
            G = -C * S * expit(-m)  # d loss / d z
            return loss, np.concatenate([(X.T @ G + alpha * W).ravel(), G.sum(0)])

        with threadpool_limits(1, user_api="blas"):  # thin products: threads only cost
            res = minimize(f, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                           options={"maxiter": self.max_iter, "gtol": self.gtol})
        self.coef_ = res.x[: d * k].reshape(d, k).T.copy()
        self.intercept_ = res.x[d * k:].copy()
        self.n_iter_ = int(res.nit)
        self.converged_ = bool(res.success)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        z = np.asarray(X, dtype=np.float64) @ self.coef_.T + self.intercept_
        return z[:, 0] if z.shape[1] == 1 else z

    def predict_proba(self, X: Any) -> np.ndarray:
        z = self.decision_function(X)
        if z.ndim == 1:
            p = expit(z)
            return np.column_stack([1 - p, p])
        p = expit(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
