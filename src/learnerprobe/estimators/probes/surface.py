"""Surface baseline: what text length and a few shallow counts predict on their own.

If a probe on hidden states barely beats this, it has learnt little beyond length. Features:
character length, mean word length (characters), mean sentence length (words); ``extended`` adds
type/token ratio, MTLD (McCarthy & Jarvis 2010, bidirectional, factor threshold 0.72) and
punctuation marks per word.  Tokenisation is Unicode ``\\w+`` (works for cs/de/it/es without a
language model); sentences end at ``.!?`` runs or line breaks.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

BASIC_FEATURES: tuple[str, ...] = ("char_length", "mean_word_length", "mean_sentence_length")
EXTENDED_FEATURES: tuple[str, ...] = BASIC_FEATURES + ("ttr", "mtld", "punct_per_word")

_WORD = re.compile(r"\w+", re.UNICODE)
_SENT = re.compile(r"[.!?\u2026]+|\n+")


def _mtld_pass(tokens: Sequence[str], threshold: float) -> float:
    factors, types, count = 0.0, set(), 0
    for tok in tokens:
        count += 1
        types.add(tok)
        if len(types) / count <= threshold:
            factors += 1
            types, count = set(), 0
    if count > 0:
        ttr = len(types) / count
        factors += (1 - ttr) / (1 - threshold) if ttr < 1 else 0.0
    return len(tokens) / factors if factors > 0 else float(len(tokens))


def mtld(tokens: Sequence[str], threshold: float = 0.72) -> float:
    """Measure of textual lexical diversity: mean of the forward and backward passes."""
    if not tokens:
        return 0.0
    return 0.5 * (_mtld_pass(tokens, threshold) + _mtld_pass(list(reversed(tokens)), threshold))


def _one(text: str, extended: bool) -> list[float]:
    words = _WORD.findall(text)
    n_words = len(words)
    sents = [s for s in _SENT.split(text) if _WORD.search(s)]
    mean_wl = float(np.mean([len(w) for w in words])) if words else 0.0
    mean_sl = n_words / len(sents) if sents else 0.0
    feats = [float(len(text)), mean_wl, float(mean_sl)]
    if extended:
        lower = [w.lower() for w in words]
        ttr = len(set(lower)) / n_words if n_words else 0.0
        punct = sum(unicodedata.category(ch).startswith("P") for ch in text)
        feats += [ttr, mtld(lower), punct / n_words if n_words else 0.0]
    return feats


def surface_features(texts: Sequence[str], *, extended: bool = False) -> np.ndarray:
    """``n x 3`` (or ``n x 6`` with ``extended``) float array, columns as in
    :data:`BASIC_FEATURES` / :data:`EXTENDED_FEATURES`."""
    width = len(EXTENDED_FEATURES if extended else BASIC_FEATURES)
    rows = [_one(str(t), extended) for t in texts]
    return np.asarray(rows, dtype=float).reshape(len(rows), width)



def surface_columns(features: np.ndarray) -> np.ndarray:
    """The surface columns transfer methods put beside a hidden state: ``log1p`` of
    :func:`surface_features` (text length spans orders of magnitude). One definition for the
    study's transfer stage, ``train --method`` and prediction from such a bundle."""
    return np.log1p(np.asarray(features, dtype=np.float64))

class SurfaceBaseline(ClassifierMixin, BaseEstimator):
    """Gradient boosting on surface features (``X`` = :func:`surface_features` output).

    We use sklearn's ``HistGradientBoostingClassifier``: it is fast (hundreds of fits per study
    in seconds), needs no scaling, and gives class probabilities for the report; with
    ``n_classes`` the probabilities have one column per level (0 for levels absent from
    training), like the probes.  Its defaults are kept in both modes so the baseline is the same
    yardstick everywhere.
    """

    def __init__(self, max_iter: int = 100, learning_rate: float = 0.1,
                 n_classes: int | None = None, random_state=0):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.n_classes = n_classes
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.ensemble import HistGradientBoostingClassifier

        X, y = validate_data(self, X, y)
        y = np.asarray(y)
        if self.n_classes is not None:
            k = int(self.n_classes)
            yi = y.astype(int)
            if not np.array_equal(yi, y) or yi.min() < 0 or yi.max() >= k:
                raise ValueError(f"with n_classes={k}, labels must be integers 0..{k - 1}")
            self.classes_ = np.arange(k)
        else:
            check_classification_targets(y)
            self.classes_, yi = np.unique(y, return_inverse=True)
        self.present_ = np.unique(yi)
        self.model_ = None
        self.n_iter_ = 1
        if len(self.present_) > 1:
            self.model_ = HistGradientBoostingClassifier(
                max_iter=self.max_iter, learning_rate=self.learning_rate,
                random_state=self.random_state,
            ).fit(X, np.searchsorted(self.present_, yi))
            self.n_iter_ = int(self.model_.n_iter_)
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        out = np.zeros((X.shape[0], len(self.classes_)))
        out[:, self.present_] = self.model_.predict_proba(X) if self.model_ is not None else 1.0
        return out

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
