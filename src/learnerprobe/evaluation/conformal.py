"""Split-conformal prediction sets: a label set that holds the true label with a chosen
probability (``coverage``), calibrated on texts the model was not trained on.

The nonconformity score of a candidate label depends on the task's label kind:

- nominal (L1): ``1 - p(label)`` (crepes' ``hinge``); the set holds every language whose
  probability is high enough, in any combination.
- ordinal (CEFR): ``1 - min(max(p[:k+1]), max(p[k:]))`` for level ``k``. Its level sets are
  the contiguous hull of ``{k : p_k >= t}``, so every set is a range of adjacent levels
  (``A2–B1``), never ``{A2, C1}``; a text is covered when its level lies in that range.

Sets follow crepes' rule (``ConformalClassifier.predict_set`` without smoothing): a label
enters when its p-value ``(#{calibration scores >= its score} + 1) / (n + 1)`` is at least
``1 - coverage``. The study computes its sets with crepes (:func:`crepes_sets`); a bundle's
``predict`` applies the same rule in numpy (:func:`sets`; no crepes/pandas import on the cold
path), and a unit test keeps the two identical. Under exchangeability of calibration and test
texts the coverage is at least nominal; a text from another corpus breaks that (the study's
LOCO rows measure by how much).
"""

from __future__ import annotations

import numpy as np

KINDS = ("ordinal", "nominal")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"label kind must be one of {KINDS}, not {kind!r}")


def check_coverage(coverage: object) -> float:
    """A coverage strictly between 0 and 1 (ValueError otherwise; callers turn it into their
    own error type)."""
    if isinstance(coverage, bool) or not isinstance(coverage, int | float):
        raise ValueError(f"coverage must be a number between 0 and 1, not {coverage!r}")
    c = float(coverage)
    if not 0.0 < c < 1.0:
        raise ValueError(f"coverage must be strictly between 0 and 1, got {coverage}")
    return c


def label_scores(proba: np.ndarray, kind: str) -> np.ndarray:
    """Nonconformity of every candidate label (``n x K``; lower: more conforming)."""
    _check_kind(kind)
    p = np.asarray(proba, dtype=float)
    if kind == "nominal":
        return 1.0 - p
    left = np.maximum.accumulate(p, axis=1)
    right = np.maximum.accumulate(p[:, ::-1], axis=1)[:, ::-1]
    return 1.0 - np.minimum(left, right)


def true_scores(proba: np.ndarray, y: np.ndarray, kind: str) -> np.ndarray:
    """Nonconformity of each calibration text's true label (``n``)."""
    s = label_scores(proba, kind)
    return s[np.arange(len(s)), np.asarray(y, dtype=int)]


def sets(cal_scores: np.ndarray, alphas: np.ndarray, coverage: float) -> np.ndarray:
    """Boolean ``n x K`` prediction sets from sorted-or-not calibration scores and the test
    texts' label scores (crepes' non-smoothed p-value rule)."""
    cal = np.sort(np.asarray(cal_scores, dtype=float))
    a = np.asarray(alphas, dtype=float)
    n_ge = len(cal) - np.searchsorted(cal, a, side="left")  # calibration scores >= alpha
    p = (n_ge + 1) / (len(cal) + 1)
    return p >= 1.0 - coverage


def never_empty(pred_sets: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """The sets with the most probable label added where a set is empty (a conformal set may be
    empty when even the top label is unusual; adding it can only raise coverage, and an
    ordinal set stays a range: the top label has the lowest score, so a non-empty set already
    holds it)."""
    out = np.array(pred_sets, dtype=bool, copy=True)
    empty = ~out.any(axis=1)
    out[np.flatnonzero(empty), np.asarray(proba)[empty].argmax(axis=1)] = True
    return out


def crepes_sets(cal_scores: np.ndarray, alphas: np.ndarray, coverage: float) -> np.ndarray:
    """The same sets computed by crepes (the reference the numpy rule is tested against)."""
    from crepes import ConformalClassifier  # pandas + scipy: the study and tests only

    cc = ConformalClassifier().fit(np.asarray(cal_scores, dtype=float))
    return cc.predict_set(np.asarray(alphas, dtype=float), confidence=coverage,
                          smoothing=False).astype(bool)


def coverage_and_size(pred_sets: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Empirical coverage (share of texts whose label is in their set) and mean set size."""
    s = np.asarray(pred_sets, dtype=bool)
    if len(s) == 0:
        return float("nan"), float("nan")
    hit = s[np.arange(len(s)), np.asarray(y, dtype=int)]
    return float(hit.mean()), float(s.sum(axis=1).mean())


def split_conformal(cal_proba: np.ndarray, cal_y: np.ndarray, test_proba: np.ndarray,
                    kind: str, coverage: float) -> np.ndarray:
    """Sets for ``test_proba`` calibrated on (``cal_proba``, ``cal_y``), via crepes, never
    empty (:func:`never_empty`: what a bundle's ``predict`` gives)."""
    cal = true_scores(cal_proba, cal_y, kind)
    return never_empty(crepes_sets(cal, label_scores(test_proba, kind), coverage), test_proba)
