"""Adapting a fitted level probe to a new corpus from k labelled texts of it.

Why: without target labels, transfer stalls at about the level of text length
(docs/RESULTS.md); what differs between corpora is largely each one's rating scale and level
mix, which a few labelled texts reveal. Each adapter keeps a fitted *source* estimator (trained
on other corpora; only read, never refitted: pass it prefit, as ``CalibratedClassifierCV`` once
took ``cv="prefit"``) and fits a small correction on the k texts given to ``fit``, its strength
chosen on those k texts alone (leave-one-out or k-fold inside them), never on scored texts:

- :class:`ShiftAdapter`: the source's score plus one offset (intercept / level-prior shift);
- :class:`CutPointAdapter`: the source's score kept, the cut points mapping it to levels (and
  their sharpness) re-estimated by a penalised cumulative-logit fit pulled to the source's;
- :class:`PriorPullAdapter`: a ridge refit on the k texts pulled towards the source's weights
  (the correction of the source's score is ridge-penalised), the pull chosen by exact
  leave-one-out.

All share one output form: a continuous level score (the source's ``predict_score``, or the
expected level of its ``predict_proba``, plus the correction) and ascending cut points; the level
is the number of cut points below the score and probabilities are cumulative-logit differences
with a sharpness ``beta_``. With a linear ridge source (:class:`RidgeOrdinal`) that is exactly
the ``ordinal_at`` array form, so an adapted bundle applies without scikit-learn too
(:func:`export_ordinal_at`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from learnerprobe.estimators.probes.level_probes import RidgeOrdinal, encode_labels

#: offset shrinkage strengths (pseudo-texts at offset 0), strongest first: ties go to them
SHIFT_STRENGTHS: tuple[float, ...] = (30.0, 10.0, 3.0, 1.0, 0.3, 0.0)
#: ridge strengths of the correction, strongest first; inf = the offset alone
PULL_STRENGTHS: tuple[float, ...] = (float("inf"), *np.logspace(6, 0, 13).tolist())
#: prior precisions on the cut points (around the source's), strongest first
CUT_STRENGTHS: tuple[float, ...] = (100.0, 10.0, 1.0, 0.1)
_MIN_RMSE = 0.1  # floor of the residual scale that sets the sharpness (levels)


def source_score(source: Any, X: np.ndarray) -> np.ndarray:
    """The source's continuous level: ``predict_score`` when it has one, else the expected
    level of ``predict_proba`` (0..K-1)."""
    if hasattr(source, "predict_score"):
        return np.asarray(source.predict_score(X), dtype=np.float64).ravel()
    P = np.asarray(source.predict_proba(X), dtype=np.float64)
    return P @ np.arange(P.shape[1], dtype=np.float64)


def _scaler_of(source: Any) -> StandardScaler | None:
    """The source's own standardisation (a tuned probe's pipeline), or None."""
    model = getattr(source, "model_", None)
    if type(model) is Pipeline and type(model.steps[0][1]) is StandardScaler:
        return model.steps[0][1]
    return None


def _sharpness(resid: np.ndarray) -> float:
    """A logistic whose spread matches the residuals: beta = pi / (sqrt(3) rmse)."""
    rmse = max(float(np.sqrt(np.mean(np.square(resid)))) if resid.size else 1.0, _MIN_RMSE)
    return float(np.pi / (np.sqrt(3.0) * rmse))


def rounding_cuts(n_classes: int) -> np.ndarray:
    """The cut points of rounding a level score: 0.5, 1.5, ..., K-1.5."""
    return np.arange(1, n_classes, dtype=np.float64) - 0.5


def cumulative_proba(score: np.ndarray, cuts: np.ndarray, beta: float) -> np.ndarray:
    """Cumulative-logit level probabilities: P(level <= j) = expit(beta (cut_j - score))."""
    cdf = expit(beta * (cuts[None, :] - score[:, None]))
    cdf = np.hstack([np.zeros((score.size, 1)), cdf, np.ones((score.size, 1))])
    return np.clip(np.diff(cdf, axis=1), 0.0, 1.0)


# --------------------------------------------------------------------------- array form
def export_ordinal_at(est: Any, prefix: str, tensors: dict[str, np.ndarray]
                      ) -> dict[str, Any]:
    """The ``ordinal_at`` array form of an adapter over a linear ridge source (declared by each
    adapter class; ``learnerprobe.bundles.export``): score ``beta (scaler(x) . (w + v))`` and
    thresholds ``beta (cut - b0 - b)``. Any other source has no array form (TypeError: the
    exporter's signal for "none")."""
    src = est.source
    model = getattr(src, "model_", None)
    if type(src) is not RidgeOrdinal:
        raise TypeError("an adapter over a non-ridge source")
    scaler, last = (model.steps[0][1], model.steps[-1][1]) if type(model) is Pipeline else (
        None, model)
    if type(last) not in (Ridge, RidgeCV) or np.ndim(last.coef_) != 1 or (
            type(model) is Pipeline and (len(model.steps) != 2 or type(scaler) is not StandardScaler)):
        raise TypeError("a ridge source of another shape")
    w = np.asarray(last.coef_, dtype=np.float64) + est.coef_
    b = float(last.intercept_) + est.offset_
    tensors[prefix + "coef"] = est.beta_ * w
    tensors[prefix + "theta"] = est.beta_ * (est.cuts_ - b)
    if scaler is not None:
        tensors[prefix + "mean"] = np.asarray(scaler.mean_)
        tensors[prefix + "scale"] = np.asarray(scaler.scale_)
    K = len(est.classes_)
    return {"kind": "ordinal_at", "scaler": scaler is not None, "present": list(range(K)),
            "n_classes": K}


class _Adapter(ClassifierMixin, BaseEstimator):
    """Fitted state shared by the adapters (see the module docstring): ``coef_`` (the
    correction's weights on the source's standardised features; zeros for none), ``offset_``,
    ``cuts_``, ``beta_``, ``strength_`` (the chosen strength)."""

    min_texts = 2

    def _start(self, X, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.source is None:
            raise ValueError(f"{type(self).__name__} needs a fitted source estimator")
        X, y = validate_data(self, X, y)
        k = self.n_classes if self.n_classes is not None else len(self.source.classes_)
        self.classes_, yi = encode_labels(y, int(k))
        if len(yi) < self.min_texts:
            raise ValueError(f"{type(self).__name__} needs at least {self.min_texts} labelled "
                             f"texts, got {len(yi)}")
        self.coef_ = np.zeros(X.shape[1])
        self.offset_ = 0.0
        self.cuts_ = rounding_cuts(len(self.classes_))
        return X, yi.astype(np.float64), source_score(self.source, X)

    def _features(self, X: np.ndarray) -> np.ndarray:
        sc = _scaler_of(self.source)
        return np.asarray(X, dtype=np.float64) if sc is None else sc.transform(X)

    def level_score(self, X) -> np.ndarray:
        """The adapted continuous level (before the cut points). Not named ``predict_score``:
        the ``ordinal_at`` array form has none, and a bundle's two forms must agree."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        s = source_score(self.source, X) + self.offset_
        if np.any(self.coef_):
            s = s + self._features(X) @ self.coef_
        return s

    def predict_proba(self, X) -> np.ndarray:
        return cumulative_proba(self.level_score(X), self.cuts_, self.beta_)

    def predict(self, X) -> np.ndarray:
        idx = np.searchsorted(self.cuts_, self.level_score(X), side="left")
        return self.classes_[idx]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


class ShiftAdapter(_Adapter):
    """Source score + one offset: the mean residual on the k texts, shrunk towards 0 as if
    ``strength`` more texts had residual 0; the strength by leave-one-out squared error."""

    _bundleable = {"types": (), "arrays": export_ordinal_at}  # see learnerprobe.bundles.trust

    def __init__(self, source: Any = None, strengths: tuple[float, ...] = SHIFT_STRENGTHS,
                 n_classes: int | None = None):
        self.source = source
        self.strengths = strengths
        self.n_classes = n_classes

    def fit(self, X, y):
        X, y, s = self._start(X, y)
        r = y - s
        k, total = len(r), r.sum()
        errs = [np.mean((r - (total - r) / (k - 1 + lam)) ** 2) for lam in self.strengths]
        lam = float(self.strengths[int(np.argmin(errs))])  # earliest (strongest) among ties
        self.strength_ = lam
        self.offset_ = float(total / (k + lam))
        self.beta_ = _sharpness(r - self.offset_)
        return self


class PriorPullAdapter(_Adapter):
    """Ridge refit on the k texts pulled towards the source's weights: the source's score plus
    ``Z v + b`` (``Z`` the source's standardised features), ``v`` penalised by
    ``strength * |v|^2`` (inf: the offset ``b`` alone), the strength by exact leave-one-out
    squared error (closed form through the k x k Gram matrix). For a linear source this is
    ridge towards the source's weights; for any other, a ridge correction of its score."""

    _bundleable = {"types": (), "arrays": export_ordinal_at}
    min_texts = 3

    def __init__(self, source: Any = None, strengths: tuple[float, ...] = PULL_STRENGTHS,
                 n_classes: int | None = None):
        self.source = source
        self.strengths = strengths
        self.n_classes = n_classes

    def fit(self, X, y):
        X, y, s = self._start(X, y)
        self._fit_pull(X, y, s)
        return self

    def _fit_pull(self, X: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Fit the correction; the leave-one-out adapted scores of the k texts."""
        Z = self._features(X)
        r = y - s
        k = len(r)
        zm, rm = Z.mean(0), r.mean()
        Zc, rc = Z - zm, r - rm
        e, U = np.linalg.eigh(Zc @ Zc.T)
        e = np.clip(e, 0.0, None)
        Ur = U.T @ rc
        best = (np.inf, 0, rc)
        for i, lam in enumerate(self.strengths):
            f = np.zeros_like(e) if np.isinf(lam) else e / (e + lam)
            hat = (U * U) @ f + 1.0 / k
            loo_resid = (rc - U @ (f * Ur)) / np.maximum(1.0 - hat, 1e-9)
            loo = float(np.mean(loo_resid ** 2))
            if loo < best[0] - 1e-12:
                best = (loo, i, loo_resid)
        lam = float(self.strengths[best[1]])
        self.strength_ = lam
        if not np.isinf(lam):
            alpha = U @ (Ur / (e + lam))
            self.coef_ = Zc.T @ alpha
        self.offset_ = float(rm - zm @ self.coef_)
        self.beta_ = _sharpness(r - Z @ self.coef_ - self.offset_)
        return y - best[2]  # y minus the leave-one-out residual: the held-out adapted score


class PullCutAdapter(PriorPullAdapter):
    """:class:`PriorPullAdapter`, then the cut points of its adapted score re-estimated as
    :class:`CutPointAdapter` does, on the texts' *leave-one-out* adapted scores (in-sample ones
    would be overfitted to their own labels)."""

    _bundleable = {"types": (), "arrays": export_ordinal_at}
    min_texts = 4

    def __init__(self, source: Any = None, strengths: tuple[float, ...] = PULL_STRENGTHS,
                 cut_strengths: tuple[float, ...] = CUT_STRENGTHS, cv: int = 5,
                 n_classes: int | None = None, random_state: int = 0):
        self.source = source
        self.strengths = strengths
        self.cut_strengths = cut_strengths
        self.cv = cv
        self.n_classes = n_classes
        self.random_state = random_state

    def fit(self, X, y):
        X, y, s = self._start(X, y)
        loo = self._fit_pull(X, y, s)
        self.cuts_, self.beta_, self.cut_strength_ = fit_cut_model(
            loo, y.astype(int), len(self.classes_), self.cut_strengths, self.cv,
            self.random_state)
        return self


class CutPointAdapter(_Adapter):
    """The source's score kept; the cut points and their sharpness re-estimated on the k
    texts by a cumulative-logit (proportional odds) fit with a Gaussian prior pulling them to
    the source's rounding cut points (first cut point, log gaps, log sharpness). The prior's
    precision by ``cv``-fold held-out log-loss inside the k texts."""

    _bundleable = {"types": (), "arrays": export_ordinal_at}
    min_texts = 3

    def __init__(self, source: Any = None, strengths: tuple[float, ...] = CUT_STRENGTHS,
                 cv: int = 5, n_classes: int | None = None, random_state: int = 0):
        self.source = source
        self.strengths = strengths
        self.cv = cv
        self.n_classes = n_classes
        self.random_state = random_state

    def fit(self, X, y):
        X, y, s = self._start(X, y)
        self.cuts_, self.beta_, self.strength_ = fit_cut_model(
            s, y.astype(int), len(self.classes_), self.strengths, self.cv, self.random_state)
        return self


def fit_cut_model(s: np.ndarray, yi: np.ndarray, K: int, strengths: tuple[float, ...],
                  cv: int, seed: int) -> tuple[np.ndarray, float, float]:
    """(cut points, sharpness, chosen prior precision) of a cumulative-logit model of the
    levels ``yi`` on the score ``s``, the prior centred on the rounding cut points, its
    precision by ``cv``-fold held-out log-loss."""
    theta0 = np.concatenate([[0.5], np.zeros(K - 2), [np.log(_sharpness(yi - s))]])
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(len(yi)), min(cv, len(yi)))
    losses = []
    for lam in strengths:
        loss = 0.0
        for te in folds:
            tr = np.setdiff1d(np.arange(len(yi)), te)
            loss += _nll(_fit_cuts(s[tr], yi[tr], theta0, lam, K), s[te], yi[te], K)
        losses.append(loss)
    lam = float(strengths[int(np.argmin(losses))])
    cuts, beta = _unpack(_fit_cuts(s, yi, theta0, lam, K), K)
    return cuts, beta, lam


def _unpack(theta: np.ndarray, K: int) -> tuple[np.ndarray, float]:
    cuts = theta[0] + np.concatenate([[0.0], np.cumsum(np.exp(theta[1:K - 1]))])
    return cuts, float(np.exp(theta[-1]))


def _nll(theta: np.ndarray, s: np.ndarray, y: np.ndarray, K: int) -> float:
    """Negative log-likelihood of the cumulative-logit model (levels ``y`` in 0..K-1)."""
    return _nll_grad(theta, s, y, K)[0]


def _nll_grad(theta: np.ndarray, s: np.ndarray, y: np.ndarray, K: int
              ) -> tuple[float, np.ndarray]:
    """:func:`_nll` and its gradient in (first cut, log gaps, log sharpness)."""
    cuts, beta = _unpack(theta, K)
    z = np.clip(beta * (np.concatenate([[-np.inf], cuts, [np.inf]])[None, :] - s[:, None]),
                -30.0, 30.0)
    rows = np.arange(len(y))
    zu, zl = z[rows, y + 1], z[rows, y]
    su, sl = expit(zu), expit(zl)
    p = np.maximum(su - sl, 1e-12)
    du, dl = su * (1 - su) / p, sl * (1 - sl) / p  # d(-log p)/dz: -du (upper), +dl (lower)
    g_cut = np.zeros(K + 1)
    np.add.at(g_cut, y + 1, -du * beta)
    np.add.at(g_cut, y, dl * beta)
    g_cut = g_cut[1:K]  # the finite cut points
    g_t = float(np.sum(-du * zu + dl * zl))
    tail = np.cumsum(g_cut[::-1])[::-1]  # sum over j >= m
    grad = np.concatenate([[tail[0]], np.exp(theta[1:K - 1]) * tail[1:], [g_t]])
    return float(-np.sum(np.log(p))), grad


def _fit_cuts(s: np.ndarray, y: np.ndarray, theta0: np.ndarray, lam: float, K: int
              ) -> np.ndarray:
    # the sharpness keeps at least a unit prior: k separable texts would otherwise drive it
    # to infinity (hard cut points, probabilities of 0 and 1)
    w = np.full(len(theta0), lam)
    w[-1] = max(lam, 1.0)

    def obj(th: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = _nll_grad(th, s, y, K)
        d = th - theta0
        return f + float(w @ (d * d)), g + 2 * w * d

    res = minimize(obj, theta0, jac=True, method="BFGS")
    return np.asarray(res.x)
