"""Numerical pieces of the transfer methods: erasure, adaptation, label shift, decoding.

Plain numpy functions over arrays, so each can be tested on its defining property:

- :func:`leace_fit` -- LEACE (Belrose et al. 2023, "LEACE: Perfect linear concept erasure in
  closed form"): the least-squares-optimal affine map after which no linear classifier can
  recover the concept (here corpus identity): the cross-covariance of the erased features with
  the one-hot domain is exactly zero. Written in closed form (whitening, projection, unwhitening)
  instead of the ``concept-erasure`` package: 20 lines of numpy, no torch at fit time, no new
  dependency;
- :func:`mean_erasure_fit` -- the simple variant: project out the span of the domain-mean
  differences (orthogonal, no whitening);
- :func:`standardize_by_domain` -- per-domain z-scoring (each corpus, the target included, by its
  own mean and spread: unlabeled target rows only);
- :func:`em_prior` -- Saerens, Latinne & Decaestecker (2002): EM re-estimation of the target
  label prior from unlabeled predictions, and the re-weighted posteriors;
- :func:`bbse_weights` -- black-box shift estimation (Lipton, Wang & Smola 2018): importance
  weights ``q(y)/p(y)`` from the confusion matrix of held-out source predictions and the
  target's predicted-label marginal;
- :func:`fit_thresholds` / :func:`apply_thresholds` -- cut points on a continuous score chosen
  for QWK (coordinate ascent), and :func:`expected_value` decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learnerprobe.evaluation.metrics import confusion, qwk_from_confusion

_EPS = 1e-8


@dataclass(frozen=True)
class Eraser:
    """An affine eraser ``x -> x - (x - mean) @ proj.T`` (``proj``: d x d)."""

    mean: np.ndarray
    proj: np.ndarray

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return X - (X - self.mean) @ self.proj.T


def _onehot(domains: np.ndarray) -> np.ndarray:
    uniq = np.unique(domains)
    return (np.asarray(domains)[:, None] == uniq[None, :]).astype(float)


def leace_fit(X: np.ndarray, domains: np.ndarray, *, tol: float = 1e-6) -> Eraser:
    """Closed-form LEACE eraser of the concept "which domain" (one-hot) from ``X``.

    ``P = W^+ U U^T W`` with ``W`` the (pseudo-)whitening of ``Cov(X)`` and ``U`` an orthonormal
    basis of ``W Cov(X, Z)``; after ``x - P (x - mean)`` the features' covariance with every
    domain indicator is zero (on the fitting data), with the smallest mean squared change.
    """
    X = np.asarray(X, dtype=float)
    mu = X.mean(0)
    Xc = X - mu
    Z = _onehot(domains)
    Z -= Z.mean(0)
    n = len(X)
    sxz = Xc.T @ Z / n
    w, V = np.linalg.eigh(Xc.T @ Xc / n)
    keep = w > tol * max(float(w.max()), _EPS)
    Vk, wk = V[:, keep], w[keep]
    W = (Vk / np.sqrt(wk)) @ Vk.T  # Cov^{-1/2} on the support
    Winv = (Vk * np.sqrt(wk)) @ Vk.T  # Cov^{1/2}
    U, s, _ = np.linalg.svd(W @ sxz, full_matrices=False)
    U = U[:, s > tol * max(float(s.max(initial=0.0)), _EPS)]
    return Eraser(mu, Winv @ U @ U.T @ W)


def mean_erasure_fit(X: np.ndarray, domains: np.ndarray) -> Eraser:
    """Project out the directions between domain means (their span, orthonormalised)."""
    X = np.asarray(X, dtype=float)
    mu = X.mean(0)
    doms = np.asarray(domains)
    diffs = np.stack([X[doms == d].mean(0) - mu for d in np.unique(doms)], axis=1)
    U, s, _ = np.linalg.svd(diffs, full_matrices=False)
    U = U[:, s > 1e-8 * max(float(s.max(initial=0.0)), _EPS)]
    return Eraser(mu, U @ U.T)


def standardize_by_domain(X: np.ndarray, domains: np.ndarray | None) -> np.ndarray:
    """Each domain's rows z-scored by that domain's own mean and standard deviation."""
    X = np.asarray(X, dtype=float)
    doms = np.zeros(len(X)) if domains is None else np.asarray(domains)
    out = np.empty_like(X)
    for d in np.unique(doms):
        m = doms == d
        sd = X[m].std(0)
        out[m] = (X[m] - X[m].mean(0)) / np.where(sd > _EPS, sd, 1.0)
    return out


def em_prior(proba: np.ndarray, source_prior: np.ndarray, *, max_iter: int = 200,
             tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Saerens et al. (2002): ``(adjusted posteriors, estimated target prior)``.

    Classes with zero source prior keep zero probability."""
    P = np.asarray(proba, dtype=float)
    ps = np.asarray(source_prior, dtype=float)
    live = ps > _EPS
    pt = ps.copy()
    Q = P
    for _ in range(max_iter):
        ratio = np.where(live, pt / np.where(live, ps, 1.0), 0.0)
        Q = P * ratio
        Q /= np.maximum(Q.sum(1, keepdims=True), _EPS)
        new = Q.mean(0)
        if np.abs(new - pt).max() < tol:
            pt = new
            break
        pt = new
    return Q, pt


def bbse_weights(y_source: np.ndarray, pred_source: np.ndarray, pred_target: np.ndarray,
                 n_classes: int) -> np.ndarray:
    """Lipton et al. (2018): ``w[j] = q(y=j) / p(y=j)`` from held-out source predictions.

    Solves ``C w = mu`` (``C[i, j]`` = joint frequency of predicting ``i`` when the truth is
    ``j`` on source data, ``mu[i]`` = frequency of predicting ``i`` on the target) by least
    squares; negative weights are clipped to 0 and the implied target prior is normalised.
    """
    k = int(n_classes)
    C = np.zeros((k, k))
    np.add.at(C, (np.asarray(pred_source, int), np.asarray(y_source, int)), 1.0)
    C /= max(len(y_source), 1)
    mu = np.bincount(np.asarray(pred_target, int), minlength=k)[:k] / max(len(pred_target), 1)
    w = np.clip(np.linalg.lstsq(C, mu, rcond=None)[0], 0.0, None)
    p = C.sum(0)  # source prior
    q = w * p
    if q.sum() <= _EPS:
        return np.ones(k)
    q /= q.sum()
    return np.where(p > _EPS, q / np.where(p > _EPS, p, 1.0), 0.0)


def reweight(proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Posteriors re-weighted by ``w`` per class and renormalised (label-shift correction)."""
    Q = np.asarray(proba, dtype=float) * np.asarray(w, dtype=float)[None]
    s = Q.sum(1, keepdims=True)
    return np.where(s > _EPS, Q / np.where(s > _EPS, s, 1.0), proba)


def expected_value(proba: np.ndarray) -> np.ndarray:
    """The expected level ``sum_k k p_k`` (a continuous score on the 0..K-1 scale)."""
    P = np.asarray(proba, dtype=float)
    return P @ np.arange(P.shape[1], dtype=float)


def apply_thresholds(score: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Level = number of thresholds below the score (thresholds sorted ascending)."""
    return np.searchsorted(np.sort(np.asarray(thresholds)), np.asarray(score), side="right")


def fit_thresholds(score: np.ndarray, y: np.ndarray, n_classes: int, *, n_grid: int = 60,
                   sweeps: int = 3) -> np.ndarray:
    """K-1 ascending cut points on ``score`` that maximise QWK against ``y`` (coordinate
    ascent from the rounding cut points ``k - 0.5`` over a quantile grid of the scores)."""
    k = int(n_classes)
    s = np.asarray(score, dtype=float)
    y = np.asarray(y, dtype=int)

    def qwk(y, pred, labels):  # the shared QWK, without label re-encoding (hot loop)
        return float(qwk_from_confusion(confusion(y, np.minimum(pred, k - 1), k)))

    t = np.arange(1, k) - 0.5
    grid = np.unique(np.quantile(s, np.linspace(0, 1, n_grid)))
    best = qwk(y, apply_thresholds(s, t), labels=k)
    for _ in range(sweeps):
        improved = False
        for j in range(k - 1):
            lo = t[j - 1] if j > 0 else -np.inf
            hi = t[j + 1] if j < k - 2 else np.inf
            for c in grid[(grid > lo) & (grid < hi)]:
                cand = t.copy()
                cand[j] = c
                v = qwk(y, apply_thresholds(s, cand), labels=k)
                if v > best + 1e-12:
                    best, t, improved = v, cand, True
        if not improved:
            break
    return t
