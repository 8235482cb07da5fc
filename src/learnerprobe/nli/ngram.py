"""The classic NLI system: character 1-5 and word 1-2 grams, TF-IDF, linear SVM.

This is the number every other method must be compared with (it won or came close in the
NLI shared tasks). ``LinearSVC`` has no probabilities; ``probability="softmax"`` (default)
applies a softmax to its decision margins, which keeps the ranking (so top-k is right) and is
cheap; ``"calibrated"`` wraps the SVM in ``CalibratedClassifierCV`` (sigmoid, 3-fold) for
calibrated probabilities at three times the cost. ``classifier="logreg"`` uses a
multinomial logistic regression whose probabilities are native.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from learnerprobe.nli._base import softmax
from learnerprobe.nli.data import as_texts


class NgramClassifier(ClassifierMixin, BaseEstimator):
    """TF-IDF (sublinear tf) character and word n-grams in a FeatureUnion + linear classifier."""

    # see learnerprobe.bundles.trust; types: the parts of the calibrated SVM
    _bundleable = {"types": ("sklearn.calibration._CalibratedClassifier",
                             "sklearn.calibration._SigmoidCalibration"), "arrays": "ngram"}

    def __init__(
        self,
        char_ngrams: tuple[int, int] | None = (1, 5),
        word_ngrams: tuple[int, int] | None = (1, 2),
        classifier: str = "svm",
        C: float = 1.0,
        probability: str = "softmax",
        class_weight: str | dict | None = None,
        min_df: int = 2,
        lowercase: bool = False,
        max_features: int | None = None,
        seed: int = 0,
    ) -> None:
        self.char_ngrams = char_ngrams
        self.word_ngrams = word_ngrams
        self.classifier = classifier
        self.C = C
        self.probability = probability
        self.class_weight = class_weight
        self.min_df = min_df
        self.lowercase = lowercase
        self.max_features = max_features
        self.seed = seed

    def _features(self):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        parts = []
        common = dict(sublinear_tf=True, min_df=self.min_df, lowercase=self.lowercase,
                      max_features=self.max_features, dtype=np.float32)
        if self.char_ngrams:
            parts.append(("char", TfidfVectorizer(analyzer="char",
                                                  ngram_range=tuple(self.char_ngrams), **common)))
        if self.word_ngrams:
            parts.append(("word", TfidfVectorizer(analyzer="word", token_pattern=r"(?u)\b\w+\b",
                                                  ngram_range=tuple(self.word_ngrams), **common)))
        if not parts:
            raise ValueError("NgramClassifier needs char_ngrams or word_ngrams")
        return FeatureUnion(parts)

    def _classifier(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC

        if self.classifier == "svm":
            svm = LinearSVC(C=self.C, class_weight=self.class_weight, random_state=self.seed)
            if self.probability == "calibrated":
                from sklearn.calibration import CalibratedClassifierCV

                return CalibratedClassifierCV(svm, method="sigmoid", cv=3)
            if self.probability != "softmax":
                raise ValueError(f"probability must be softmax or calibrated, not {self.probability!r}")
            return svm
        if self.classifier == "logreg":
            return LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000)
        raise ValueError(f"classifier must be svm or logreg, not {self.classifier!r}")

    def fit(self, X: Sequence[Any], y: Sequence[Any]) -> NgramClassifier:
        texts = as_texts(X)
        self.features_ = self._features()
        F = self.features_.fit_transform(texts)
        self.clf_ = self._classifier().fit(F, np.asarray(y))
        self.classes_ = self.clf_.classes_
        return self

    def decision_function(self, X: Sequence[Any]) -> np.ndarray:
        return self.clf_.decision_function(self.features_.transform(as_texts(X)))

    def predict_proba(self, X: Sequence[Any]) -> np.ndarray:
        F = self.features_.transform(as_texts(X))
        if hasattr(self.clf_, "predict_proba"):
            return self.clf_.predict_proba(F)
        return softmax(self.clf_.decision_function(F))

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
