"""A baseline that never reads the text: L1 from task prompt and test level alone.

In MERLIN each L1 group took different exams (test level, task prompt), so metadata alone
predicts L1 above the majority rate. Reporting it beside NLI results shows how much of a
method's accuracy could come from topic/task rather than from the learner's language.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from learnerprobe.records import LearnerText

#: Keys looked up (in order) in a record's meta for the level of the exam/course taken.
LEVEL_KEYS = ("test_level", "cefr_test", "test_cefr", "course", "level")


def metadata_features(X: Sequence[Any], fields: Sequence[str]) -> list[list[str]]:
    """Categorical feature rows from records/dicts: "task", "level" (exam level) or a meta key."""
    rows = []
    for x in X:
        if isinstance(x, LearnerText):
            d = {"task": x.task, **x.meta}
        elif isinstance(x, dict):
            d = {**x.get("meta", {}), **x}
        else:
            raise TypeError("metadata baseline needs LearnerText records or dicts, not plain text")
        row = []
        for f in fields:
            if f == "level":
                v = next((d[k] for k in LEVEL_KEYS if d.get(k) not in (None, "")), None)
            else:
                v = d.get(f)
            row.append("<none>" if v is None else str(v))
        rows.append(row)
    return rows


class MetadataBaseline(ClassifierMixin, BaseEstimator):
    """One-hot task + test level -> multinomial logistic regression (or the majority class)."""

    def __init__(
        self, fields: Sequence[str] = ("task", "level"), classifier: str = "logreg",
        C: float = 1.0, class_weight: str | None = None,
    ) -> None:
        self.fields = fields
        self.classifier = classifier
        self.C = C
        self.class_weight = class_weight

    def fit(self, X: Sequence[Any], y: Sequence[Any]) -> MetadataBaseline:
        from sklearn.dummy import DummyClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder

        F = np.array(metadata_features(X, self.fields), dtype=object)
        if self.classifier == "majority":
            clf = DummyClassifier(strategy="most_frequent")
        elif self.classifier == "logreg":
            clf = LogisticRegression(C=self.C, max_iter=2000, class_weight=self.class_weight)
        else:
            raise ValueError(f"classifier must be logreg or majority, not {self.classifier!r}")
        self.pipe_ = make_pipeline(OneHotEncoder(handle_unknown="ignore"), clf)
        self.pipe_.fit(F, np.asarray(y))
        self.classes_ = self.pipe_.classes_
        return self

    def predict_proba(self, X: Sequence[Any]) -> np.ndarray:
        F = np.array(metadata_features(X, self.fields), dtype=object)
        return self.pipe_.predict_proba(F)

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
