"""Stacking, as the best NLI shared-task systems did: a meta-classifier over base methods'
out-of-fold probabilities.

The meta-classifier's training features are produced by an *inner* author-grouped CV on the
training data handed to ``fit`` (each base predicts only texts it was not fitted on), so no
test text ever enters its training; the bases are then refitted on all of that training data
to produce test-time features.

How to combine is itself chosen on those out-of-fold features, never on test data: a second
grouped CV over the meta-features scores multinomial logistic regressions with several
regularisation strengths, weighted pools (one weight per base) and each base on its own. With a few hundred training texts a
stacker can easily do worse than its best base; selecting on held-out meta-features lets the
ensemble fall back to that base (and says so in ``meta_choice_``) instead of silently losing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from threadpoolctl import threadpool_limits

from learnerprobe.estimators.nli._base import align_proba
from learnerprobe.evaluation.splits import group_keys, grouped_stratified_kfold

SELECT_BY = ("accuracy", "macro_f1", "log_loss")


def _score(select_by: str, y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Higher is better (log-loss is negated)."""
    from sklearn.metrics import f1_score, log_loss

    pred = classes[np.argmax(proba, axis=1)]
    if select_by == "accuracy":
        return float(np.mean(pred == y))
    if select_by == "macro_f1":
        return float(f1_score(y, pred, labels=classes, average="macro", zero_division=0))
    p = np.clip(proba, 1e-9, None)
    return -float(log_loss(y, p / p.sum(axis=1, keepdims=True), labels=classes))


class WeightedPool(ClassifierMixin, BaseEstimator):
    """Low-variance meta-classifier: one weight per base plus one bias per class.

    ``score_k = sum_b w_b * F[:, b*K + k] + bias_k`` and a softmax over classes (a conditional
    logit). A multinomial logistic regression over all B*K features learns K*B*K weights, too
    many for a few hundred texts and nine L1s; this pool learns B + K, so it can still weigh a
    strong base against weaker ones where the full stacker overfits. L2 penalty ``alpha``.
    Columns of ``F`` are grouped by base: ``n_bases`` blocks of ``len(classes_)`` columns.
    """

    def __init__(self, alpha: float = 1e-2) -> None:
        self.alpha = alpha

    def _scores(self, F: np.ndarray, theta: np.ndarray) -> np.ndarray:
        B, K = self.n_bases_, len(self.classes_)
        return np.einsum("nbk,b->nk", F.reshape(len(F), B, K), theta[:B]) + theta[B:]

    def fit(self, F: np.ndarray, y: Sequence[Any]) -> WeightedPool:
        from scipy.optimize import minimize
        from scipy.special import log_softmax

        F = np.asarray(F, dtype=np.float64)
        self.classes_, yi = np.unique(np.asarray(y), return_inverse=True)
        K = len(self.classes_)
        if F.shape[1] % K:
            raise ValueError(f"{F.shape[1]} meta-features are not blocks of {K} classes")
        B = self.n_bases_ = F.shape[1] // K
        Fb = F.reshape(len(F), B, K)
        Y = np.eye(K)[yi]
        n = len(F)

        def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
            lp = log_softmax(self._scores(F, theta), axis=1)
            R = np.exp(lp) - Y  # d(-loglik)/d(score)
            grad = np.concatenate([np.einsum("nbk,nk->b", Fb, R), R.sum(axis=0)]) / n
            return (-(Y * lp).sum() / n + self.alpha * theta @ theta,
                    grad + 2 * self.alpha * theta)

        theta0 = np.concatenate([np.full(B, 1.0 / B), np.zeros(K)])
        res = minimize(nll, theta0, jac=True, method="L-BFGS-B")
        self.coef_, self.intercept_ = res.x[:B], res.x[B:]
        self.n_iter_ = int(res.nit)
        return self

    def predict_proba(self, F: np.ndarray) -> np.ndarray:
        from scipy.special import softmax

        theta = np.concatenate([self.coef_, self.intercept_])
        return softmax(self._scores(np.asarray(F, dtype=np.float64), theta), axis=1)

    def predict(self, F: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(F), axis=1)]


class StackingL1Classifier(ClassifierMixin, BaseEstimator):
    """Meta-classifier over the concatenated (log-)probabilities of the bases.

    ``final_estimator`` fixes the meta-classifier; left as None, the combiner is selected by a
    grouped CV over the out-of-fold meta-features among multinomial logistic regressions with
    ``C in meta_C``, weighted pools (:class:`WeightedPool`, one weight per base) with
    ``alpha in pool_alpha`` and (with ``include_single``) each base alone, by ``select_by``.
    """

    def __init__(
        self,
        estimators: Sequence[tuple[str, Any]],
        final_estimator: Any = None,
        cv: int = 5,
        groups_of: Callable[[Sequence[Any]], np.ndarray] | None = None,
        log_proba: bool = True,
        class_weight: str | None = None,
        meta_C: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
        pool_alpha: Sequence[float] = (1e-4, 1e-3, 1e-2),
        include_single: bool = True,
        select_by: str = "accuracy",
        seed: int = 0,
    ) -> None:
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.cv = cv
        self.groups_of = groups_of
        self.log_proba = log_proba
        self.class_weight = class_weight
        self.meta_C = meta_C
        self.pool_alpha = pool_alpha
        self.include_single = include_single
        self.select_by = select_by
        self.seed = seed

    def _meta_features(self, probas: list[np.ndarray]) -> np.ndarray:
        F = np.hstack(probas)
        return np.log(np.clip(F, 1e-6, 1.0)) if self.log_proba else F

    def _meta_lr(self, C: float) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, max_iter=5000, class_weight=self.class_weight)

    def _combiners(self) -> dict[str, Callable[[], Any]]:
        """Candidate meta-classifiers by name (the name is what ``meta_choice_`` reports)."""
        out: dict[str, Callable[[], Any]] = {
            f"logreg:C={C:g}": (lambda C=C: self._meta_lr(C)) for C in self.meta_C}
        out.update({f"pool:alpha={a:g}": (lambda a=a: WeightedPool(alpha=a))
                    for a in self.pool_alpha})
        return out

    def _select(self, F: np.ndarray, oof: list[np.ndarray], y: np.ndarray,
                groups: np.ndarray) -> tuple[str, dict[str, float]]:
        """Score every combiner on held-out meta-features; return the best and all scores."""
        folds = grouped_stratified_kfold(y, groups, self.cv, self.seed + 1)
        scores: dict[str, float] = {}
        for name, make in self._combiners().items():
            p = np.zeros((len(y), len(self.classes_)))
            for tr, va in folds:
                m = make().fit(F[tr], y[tr])
                p[va] = align_proba(m.predict_proba(F[va]), m.classes_, self.classes_)
            scores[name] = _score(self.select_by, y, p, self.classes_)
        if self.include_single:
            for (name, _), p in zip(self.estimators, oof, strict=True):
                scores[f"single:{name}"] = _score(self.select_by, y, p, self.classes_)
        best = max(scores, key=lambda k: scores[k])  # first of equals: stacked before single
        return best, scores

    def fit(self, X: Sequence[Any], y: Sequence[Any]) -> StackingL1Classifier:
        if self.select_by not in SELECT_BY:  # before any base is fitted
            raise ValueError(f"select_by must be one of {SELECT_BY}, not {self.select_by!r}")
        X = list(X)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        groups = (self.groups_of or group_keys)(X)
        oof = [np.zeros((len(X), len(self.classes_))) for _ in self.estimators]
        for tr, va in grouped_stratified_kfold(y, groups, self.cv, self.seed):
            X_tr, X_va = [X[i] for i in tr], [X[i] for i in va]
            for k, (_, est) in enumerate(self.estimators):
                m = clone(est).fit(X_tr, y[tr])
                oof[k][va] = align_proba(m.predict_proba(X_va), m.classes_, self.classes_)
        self.fit_meta(oof, y, groups)
        keep = self.kept_base()
        self.estimators_ = [(name, clone(est).fit(X, y)) for name, est in self.estimators
                            if keep in (None, name)]
        return self

    def fit_meta(self, oof: Sequence[np.ndarray], y: Sequence[Any], groups: np.ndarray,
                 classes: Sequence[Any] | None = None) -> StackingL1Classifier:
        """Choose and fit the combiner on out-of-fold base probabilities (one array per base,
        in ``estimators`` order, columns ``classes`` -- default the sorted labels of ``y``),
        however they were produced: :meth:`fit` makes them by an inner CV, the NLI run can
        hand in ones it already has (:mod:`learnerprobe.nli.stacking`)."""
        if self.select_by not in SELECT_BY:
            raise ValueError(f"select_by must be one of {SELECT_BY}, not {self.select_by!r}")
        y = np.asarray(y)
        self.classes_ = np.unique(y) if classes is None else np.asarray(classes)
        oof = [np.asarray(p, dtype=np.float64) for p in oof]
        self.oof_proba_ = {name: p for (name, _), p in zip(self.estimators, oof, strict=True)}
        F = self._meta_features(oof)
        with threadpool_limits(1, user_api="blas"):  # small problems: BLAS threads only cost
            self._fit_combiner(F, oof, y, np.asarray(groups))
        return self

    def _fit_combiner(self, F: np.ndarray, oof: list[np.ndarray], y: np.ndarray,
                      groups: np.ndarray) -> None:
        if self.final_estimator is not None:
            self.meta_choice_, self.meta_scores_ = "final_estimator", {}
            self.final_estimator_ = clone(self.final_estimator).fit(F, y)
        else:
            self.meta_choice_, self.meta_scores_ = self._select(F, oof, y, groups)
            self.final_estimator_ = (None if self.meta_choice_.startswith("single:")
                                     else self._combiners()[self.meta_choice_]().fit(F, y))

    def kept_base(self) -> str | None:
        """The one base the combiner needs when a single base won the selection, else None."""
        if self.meta_choice_.startswith("single:"):
            return self.meta_choice_.split(":", 1)[1]
        return None

    def combine(self, probas: dict[str, np.ndarray]) -> np.ndarray:
        """The ensemble's probabilities from its bases' (name -> texts x ``classes_``)."""
        if self.final_estimator_ is None:  # a single base won the selection
            return probas[self.meta_choice_.split(":", 1)[1]]
        names = [name for name, _ in self.estimators]
        p = self.final_estimator_.predict_proba(
            self._meta_features([probas[n] for n in names]))
        return align_proba(p, self.final_estimator_.classes_, self.classes_)

    def base_proba(self, X: Sequence[Any]) -> dict[str, np.ndarray]:
        """Each fitted base's probabilities on X (columns in ``classes_`` order)."""
        X = list(X)
        return {name: align_proba(m.predict_proba(X), m.classes_, self.classes_)
                for name, m in self.estimators_}

    def predict_proba(self, X: Sequence[Any]) -> np.ndarray:
        return self.combine(self.base_proba(X))

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
