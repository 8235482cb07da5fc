"""The five proficiency probes as scikit-learn classifiers over ordinal levels.

All share one label contract: with ``n_classes=K`` the labels are the ordinal indices ``0..K-1``
and ``predict_proba`` always has ``K`` columns, even when a level is absent from the training
data (its column is 0) -- out-of-distribution training sets often lack a level.  Without
``n_classes`` the sorted unique training labels are the classes (sklearn's usual behaviour).

``scale=True`` puts a StandardScaler in front of the model: decoder hidden states reach
magnitudes of several hundred, so tuned probes standardise inside the estimator (never on data
that includes the test set).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from learnerprobe.estimators.probes._sklearn_mlp import (
    sklearn_mlp_output,
    torch_threads,
    train_sklearn_mlp,
)
from learnerprobe.estimators.probes._torch_mlp import mlp_forward, train_mlp


def _scaled(model, scale: bool):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), model) if scale else model


def _inner_cv(y: np.ndarray, cv: int, seed) -> object:
    """Stratified folds, no more than the rarest training class allows (at least 2)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(np.asarray(y, dtype=int))
    smallest = counts[counts > 0].min()
    if smallest >= 2:
        return StratifiedKFold(n_splits=int(max(2, min(cv, smallest))), shuffle=True,
                               random_state=seed)
    return KFold(n_splits=int(cv), shuffle=True, random_state=seed)


def encode_labels(y, n_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(classes_, indices)`` under the probes' label contract: with ``n_classes`` the labels
    must be the integers 0..K-1 (levels absent from the training data keep their column);
    without it, the sorted distinct labels (sklearn's usual behaviour). Shared with the
    transfer probes."""
    y = np.asarray(y)
    if n_classes is not None:
        k = int(n_classes)
        yi = y.astype(int)
        if not np.array_equal(yi, y) or yi.min() < 0 or yi.max() >= k:
            raise ValueError(f"with n_classes={k}, labels must be integers 0..{k - 1}")
        return np.arange(k), yi
    check_classification_targets(y)
    classes, yi = np.unique(y, return_inverse=True)
    return classes, yi


class _OrdinalProbe(ClassifierMixin, BaseEstimator):
    """Label handling shared by the probes (see module docstring)."""

    def _encode_y(self, y) -> np.ndarray:
        self.classes_, yi = encode_labels(y, getattr(self, "n_classes", None))
        self.present_ = np.unique(yi)
        return yi

    def _compact(self, yi: np.ndarray) -> np.ndarray:
        """Indices among the classes present in training (0..C-1)."""
        return np.searchsorted(self.present_, yi)

    def _expand(self, proba_present: np.ndarray) -> np.ndarray:
        out = np.zeros((proba_present.shape[0], len(self.classes_)))
        out[:, self.present_] = proba_present
        return out

    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, reset=False)

    def _round(self, score: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(score), 0, len(self.classes_) - 1).astype(int)


class _RegressionMixin:
    """Ordinal regressors: the continuous score is rounded and clipped to the scale."""

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[self._round(self.predict_score(X))]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True  # ordinal regression on non-ordinal check data
        return tags


class RidgeOrdinal(_RegressionMixin, _OrdinalProbe):
    """Ridge regression on the level index; ``alphas`` selects alpha by efficient leave-one-out
    (RidgeCV), otherwise ``alpha`` is fixed (reference: sklearn default 1.0). No predict_proba:
    a regression gives no class probabilities and we do not invent them."""

    _bundleable = {"types": (), "arrays": "ridge"}  # see learnerprobe.bundles.trust

    def __init__(self, alpha: float = 1.0, alphas=None, scale: bool = False,
                 n_classes: int | None = None):
        self.alpha = alpha
        self.alphas = alphas
        self.scale = scale
        self.n_classes = n_classes

    def fit(self, X, y):
        from sklearn.linear_model import Ridge, RidgeCV

        X, y = validate_data(self, X, y)
        yi = self._encode_y(y).astype(float)
        model = RidgeCV(alphas=self.alphas) if self.alphas is not None else Ridge(alpha=self.alpha)
        self.model_ = _scaled(model, self.scale).fit(X, yi)
        last = self.model_[-1] if self.scale else self.model_
        self.alpha_ = float(getattr(last, "alpha_", self.alpha))
        return self

    def predict_score(self, X) -> np.ndarray:
        """The continuous predicted level (before rounding)."""
        return self.model_.predict(self._check_X(X))


class LogisticProbe(_OrdinalProbe):
    """Multinomial logistic regression; ``Cs`` selects C by inner stratified CV on the training
    data (log-loss), otherwise ``C`` is fixed (reference: sklearn defaults)."""

    # see learnerprobe.bundles.trust; types: the splitter of the inner CV (tuned mode)
    _bundleable = {"types": ("sklearn.model_selection._split.StratifiedKFold",),
                   "arrays": "logistic"}

    def __init__(self, C: float = 1.0, Cs=None, cv: int = 3, scale: bool = False,
                 max_iter: int = 100, tol: float = 1e-4, n_classes: int | None = None,
                 random_state=None):
        self.C = C
        self.Cs = Cs
        self.cv = cv
        self.scale = scale
        self.max_iter = max_iter
        self.tol = tol
        self.n_classes = n_classes
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

        X, y = validate_data(self, X, y)
        yc = self._compact(self._encode_y(y))
        self.converged_ = True
        self.n_iter_ = 1
        if len(self.present_) == 1:
            self.model_ = None
            self.C_ = float(self.C)
            return self
        if self.Cs is not None:
            model = LogisticRegressionCV(
                Cs=self.Cs, cv=_inner_cv(yc, self.cv, self.random_state), l1_ratios=(0.0,),
                scoring="neg_log_loss", max_iter=self.max_iter, tol=self.tol,
                use_legacy_attributes=False,
            )
        else:
            model = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol,
                                       random_state=self.random_state)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            self.model_ = _scaled(model, self.scale).fit(X, yc)
        self.converged_ = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        last = self.model_[-1] if self.scale else self.model_
        self.C_ = float(np.ravel(getattr(last, "C_", self.C))[0])
        self.n_iter_ = int(np.max(last.n_iter_))
        return self

    def predict_proba(self, X) -> np.ndarray:
        X = self._check_X(X)
        if self.model_ is None:
            return self._expand(np.ones((X.shape[0], 1)))
        return self._expand(self.model_.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _at_fit(X: np.ndarray, y: np.ndarray, alpha: float, n_class: int, x0=None,
            max_iter: int = 1000, tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """All-threshold logistic fit with mord's objective and gradient, warm-startable.

    ``y`` in 0..n_class-1; returns ``(coef, theta, x, n_iter)``; ``x`` warm-starts the next fit.
    """
    from mord.threshold_based import grad_margin, obj_margin
    from scipy import optimize

    d = X.shape[1]
    L = np.tril(np.ones((n_class - 1, n_class - 1)))
    loss_fd = np.ones((n_class, n_class - 1))
    if x0 is None:
        x0 = np.zeros(d + n_class - 1)
        x0[d:] = np.arange(n_class - 1)
    bounds = [(None, None)] * (d + 1) + [(0, None)] * (n_class - 2) if n_class > 2 else None
    sol = optimize.minimize(obj_margin, x0, method="L-BFGS-B", jac=grad_margin, bounds=bounds,
                            args=(X, y, alpha, n_class, loss_fd, L, None), tol=tol,
                            options={"maxiter": max_iter})
    return sol.x[:d], L.dot(sol.x[d:]), sol.x, int(sol.nit)


class OrdinalLogisticAT(_OrdinalProbe):
    """All-threshold ordinal logistic regression (mord ``LogisticAT``, Rennie & Srebro 2005).

    ``P(y <= j) = sigmoid(theta_j - x.w)``; class probabilities are successive differences.
    ``alphas`` selects the L2 strength by inner CV (log-loss) along a warm-started path from the
    strongest penalty down; otherwise mord's ``LogisticAT(alpha)`` is fitted as is (reference).
    Levels absent from training get no threshold and probability 0.
    """

    _bundleable = {"types": (), "arrays": "ordinal_at"}  # see learnerprobe.bundles.trust

    def __init__(self, alpha: float = 1.0, alphas=None, cv: int = 3, scale: bool = False,
                 max_iter: int = 1000, tol: float = 1e-8, n_classes: int | None = None,
                 random_state=None):
        self.alpha = alpha
        self.alphas = alphas
        self.cv = cv
        self.scale = scale
        self.max_iter = max_iter
        self.tol = tol
        self.n_classes = n_classes
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.preprocessing import StandardScaler

        X, y = validate_data(self, X, y)
        yc = self._compact(self._encode_y(y))
        self.scaler_ = StandardScaler().fit(X) if self.scale else None
        Xs = self.scaler_.transform(X) if self.scale else X
        c = len(self.present_)
        self.alpha_ = float(self.alpha)
        self.n_iter_ = 1
        if c == 1:
            self.coef_, self.theta_ = np.zeros(X.shape[1]), np.zeros(0)
            return self
        if self.alphas is None:
            import mord

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # mord passes scipy `disp`
                m = mord.LogisticAT(alpha=self.alpha, max_iter=self.max_iter).fit(Xs, yc)
            self.coef_, self.theta_ = m.coef_, m.theta_
            return self
        alphas = sorted((float(a) for a in self.alphas), reverse=True)
        losses = np.zeros(len(alphas))
        for tr, va in _inner_cv(yc, self.cv, self.random_state).split(Xs, yc):
            present = np.unique(yc[tr])
            ytr = np.searchsorted(present, yc[tr])
            x0 = None
            for i, a in enumerate(alphas):
                w, theta, x0, _ = _at_fit(Xs[tr], ytr, a, len(present), x0, self.max_iter, self.tol)
                p = np.full((va.size, c), 1e-12)
                p[:, present] = np.maximum(_at_proba(Xs[va] @ w, theta), 1e-12)
                losses[i] += -np.mean(np.log(p[np.arange(va.size), yc[va]]))
        self.alpha_ = alphas[int(np.argmin(losses))]
        self.cv_loss_ = dict(zip(alphas, losses.tolist(), strict=True))
        self.coef_, self.theta_, _, self.n_iter_ = _at_fit(Xs, yc, self.alpha_, c, None,
                                                          self.max_iter, self.tol)
        return self

    def _score(self, X) -> np.ndarray:
        X = self._check_X(X)
        return (self.scaler_.transform(X) if self.scaler_ is not None else X) @ self.coef_

    def predict_proba(self, X) -> np.ndarray:
        return self._expand(_at_proba(self._score(X), self.theta_))

    def predict(self, X) -> np.ndarray:
        # mord's rule: the level whose threshold interval holds the score (median of P(y<=j)).
        check_is_fitted(self)
        idx = (self.theta_[None, :] < self._score(X)[:, None]).sum(1)
        return self.classes_[self.present_[idx]]


def _at_proba(score: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Class probabilities of the all-threshold model: differences of sigmoid(theta - score)."""
    from scipy.special import expit

    cdf = expit(theta[None, :] - score[:, None])
    cdf = np.hstack([np.zeros((score.size, 1)), cdf, np.ones((score.size, 1))])
    return np.clip(np.diff(cdf, axis=1), 0.0, 1.0)


def _one_blas_thread():
    """BLAS pinned to one thread: OpenBLAS's results change with its thread count, and sklearn's
    MLP (200 Adam epochs, unscaled inputs in the reference protocol, usually unconverged) carries
    a last-bit difference through every step (measured on MERLIN, e5-small layer 6, LOCO
    merlin-de: 1 vs 2 threads gave training loss 0.006157 vs 0.006129 and different
    predictions). Pinned, the reference MLP depends on its inputs and seed only, not on the
    study's ``threads`` or the machine's core count."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


class _MLPProbe(_OrdinalProbe):
    """One hidden layer. ``backend="torch"``: our trainer with early stopping on an internal
    validation split (tuned); ``backend="sklearn_torch"``: scikit-learn's MLP with its defaults
    (adam, lr 1e-3, batches of min(200, n), 200 epochs, its tol stopping rule) re-implemented in
    torch (:mod:`learnerprobe.estimators.probes._sklearn_mlp`; the reference protocol);
    ``backend="sklearn"``: scikit-learn's own MLP, fitted and applied with one BLAS thread so that
    it is reproducible. The two sklearn backends use only ``hidden_layer_size``, ``alpha`` and
    ``random_state``."""

    _task = "clf"

    def __init__(self, hidden_layer_size: int = 100, backend: str = "torch", scale: bool = True,
                 alpha: float = 1e-4, learning_rate_init: float = 2e-3, batch_size: int = 128,
                 max_epochs: int = 150, patience: int = 6, validation_fraction: float = 0.15,
                 n_classes: int | None = None, random_state=0):
        self.hidden_layer_size = hidden_layer_size
        self.backend = backend
        self.scale = scale
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.n_classes = n_classes
        self.random_state = random_state

    def _target(self, yi: np.ndarray) -> np.ndarray:
        return self._compact(yi) if self._task == "clf" else yi.astype(float)

    def fit(self, X, y):
        from sklearn.preprocessing import StandardScaler

        X, y = validate_data(self, X, y)
        target = self._target(self._encode_y(y))
        self.scaler_ = StandardScaler().fit(X) if self.scale else None
        Xs = self.scaler_.transform(X) if self.scale else X
        self.converged_ = True
        self.weights_ = self.model_ = None
        if self._task == "clf" and len(self.present_) == 1:
            return self
        n_out = len(self.present_) if self._task == "clf" else 1
        if self.backend == "sklearn":
            self._fit_sklearn(Xs, target)
        elif self.backend == "sklearn_torch":
            with torch_threads(1), _one_blas_thread():
                self.weights_ = train_sklearn_mlp(
                    Xs[None], target, task=self._task, n_out=n_out,
                    hidden=int(self.hidden_layer_size), alpha=self.alpha,
                    seed=int(self.random_state or 0))
            self.n_iter_ = int(self.weights_["n_iter"][0])
            self.converged_ = bool(self.weights_["converged"][0])
        elif self.backend == "torch":
            self.weights_ = train_mlp(
                Xs[None], target, task=self._task, n_out=n_out,
                hidden=int(self.hidden_layer_size), lr=self.learning_rate_init,
                weight_decay=self.alpha, batch_size=self.batch_size, max_epochs=self.max_epochs,
                patience=self.patience, val_fraction=self.validation_fraction,
                seed=int(self.random_state or 0),
            )
            self.n_epochs_ = int(self.weights_["epochs"][0])
        else:
            raise ValueError("backend must be 'torch', 'sklearn_torch' or 'sklearn', not "
                             f"{self.backend!r}")
        return self

    def _fit_sklearn(self, Xs: np.ndarray, target: np.ndarray) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        cls = MLPClassifier if self._task == "clf" else MLPRegressor
        model = cls(hidden_layer_sizes=(int(self.hidden_layer_size),), alpha=self.alpha,
                    random_state=self.random_state)
        with warnings.catch_warnings(record=True) as caught, _one_blas_thread():
            warnings.simplefilter("always", ConvergenceWarning)
            self.model_ = model.fit(Xs, target)
        self.converged_ = not any(issubclass(w.category, ConvergenceWarning) for w in caught)

    def _output(self, X) -> np.ndarray:
        """Class probabilities (classifier) or the ``n x 1`` regression value."""
        X = self._check_X(X)
        Xs = self.scaler_.transform(X) if self.scaler_ is not None else X
        if self.model_ is not None:
            with _one_blas_thread():
                if self._task == "clf":
                    return self.model_.predict_proba(Xs)
                return self.model_.predict(Xs)[:, None]
        if self.backend == "sklearn_torch":
            with _one_blas_thread():  # the reference MLP's outputs must not depend on threads
                return sklearn_mlp_output(self.weights_, Xs[None])[0]
        out = mlp_forward(self.weights_, Xs[None])[0]
        if self._task == "clf":
            from scipy.special import softmax

            return softmax(out, axis=1)
        return out


class MLPRegProbe(_RegressionMixin, _MLPProbe):
    """MLP regression on the level index, rounded and clipped; no predict_proba."""

    _bundleable = {"types": (), "arrays": "mlp_reg"}  # see learnerprobe.bundles.trust

    _task = "reg"

    def predict_score(self, X) -> np.ndarray:
        """The continuous predicted level (before rounding)."""
        return self._output(X)[:, 0]


class MLPClfProbe(_MLPProbe):
    """MLP classifier over levels (softmax over the levels seen in training)."""

    _bundleable = {"types": (), "arrays": "mlp_clf"}  # see learnerprobe.bundles.trust

    _task = "clf"

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        if self.weights_ is None and self.model_ is None:
            return self._expand(np.ones((self._check_X(X).shape[0], 1)))
        return self._expand(self._output(X))

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
