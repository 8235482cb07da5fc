"""Stacking, as the best NLI shared-task systems did: a meta-classifier over base methods'
out-of-fold probabilities.

The meta-classifier's training features are produced by an *inner* author-grouped CV on the
training data handed to ``fit`` (each base predicts only texts it was not fitted on), so no
test text ever enters its training; the bases are then refitted on all of that training data
to produce test-time features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from learnerprobe.nli._base import align_proba
from learnerprobe.nli.data import grouped_folds
from learnerprobe.records import LearnerText


def default_groups(X: Sequence[Any]) -> np.ndarray:
    """Author ids of records (text id where unknown); position for plain strings."""
    return np.array(
        [(x.author_id or x.id) if isinstance(x, LearnerText) else f"#{i}" for i, x in enumerate(X)],
        dtype=object,
    )


class StackingL1Classifier(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression over the concatenated class probabilities of the bases."""

    def __init__(
        self,
        estimators: Sequence[tuple[str, Any]],
        final_estimator: Any = None,
        cv: int = 5,
        groups_of: Callable[[Sequence[Any]], np.ndarray] | None = None,
        log_proba: bool = True,
        class_weight: str | None = None,
        seed: int = 0,
    ) -> None:
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.cv = cv
        self.groups_of = groups_of
        self.log_proba = log_proba
        self.class_weight = class_weight
        self.seed = seed

    def _meta_features(self, probas: list[np.ndarray]) -> np.ndarray:
        F = np.hstack(probas)
        return np.log(np.clip(F, 1e-6, 1.0)) if self.log_proba else F

    def fit(self, X: Sequence[Any], y: Sequence[Any]) -> StackingL1Classifier:
        from sklearn.linear_model import LogisticRegression

        X = list(X)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        groups = (self.groups_of or default_groups)(X)
        oof = [np.zeros((len(X), len(self.classes_))) for _ in self.estimators]
        for tr, va in grouped_folds(y, groups, self.cv, self.seed):
            X_tr, X_va = [X[i] for i in tr], [X[i] for i in va]
            for k, (_, est) in enumerate(self.estimators):
                m = clone(est).fit(X_tr, y[tr])
                oof[k][va] = align_proba(m.predict_proba(X_va), m.classes_, self.classes_)
        self.oof_proba_ = {name: p for (name, _), p in zip(self.estimators, oof, strict=True)}
        meta = self.final_estimator if self.final_estimator is not None else LogisticRegression(
            C=1.0, max_iter=5000, class_weight=self.class_weight)
        self.final_estimator_ = clone(meta).fit(self._meta_features(oof), y)
        self.estimators_ = [(name, clone(est).fit(X, y)) for name, est in self.estimators]
        return self

    def base_proba(self, X: Sequence[Any]) -> dict[str, np.ndarray]:
        """Each fitted base's probabilities on X (columns in ``classes_`` order)."""
        X = list(X)
        return {name: align_proba(m.predict_proba(X), m.classes_, self.classes_)
                for name, m in self.estimators_}

    def predict_proba(self, X: Sequence[Any]) -> np.ndarray:
        probas = list(self.base_proba(X).values())
        p = self.final_estimator_.predict_proba(self._meta_features(probas))
        return align_proba(p, self.final_estimator_.classes_, self.classes_)

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
