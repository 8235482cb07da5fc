"""Scores for ordinal (CEFR) and nominal (NLI) predictions, with bootstrap confidence intervals.

Point estimates use scikit-learn / scipy so they match what readers compute themselves.  The
bootstrap resamples test texts once (a ``n_boot x n`` index matrix) and evaluates every metric on
those same resamples, from per-resample confusion matrices built with one ``np.bincount``: this is
orders of magnitude faster than calling sklearn per resample and is checked against sklearn in the
tests.  Labels are class indices ``0..K-1`` (ordinal: in level order), or any values listed in
``labels``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from learnerprobe.errors import ConfigError
from learnerprobe.limits import MAX_BOOT

ORDINAL_METRICS: tuple[str, ...] = (
    "qwk", "accuracy", "adjacent_accuracy", "macro_f1", "mae", "spearman",
)
NOMINAL_METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "top1", "top3", "top5")
TOP_K: tuple[int, ...] = (1, 3, 5)
#: Metrics where a smaller value is better (layer selection, report tables).
LOWER_IS_BETTER = frozenset({"mae"})


# --------------------------------------------------------------------------- encoding


def _labels(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence | int | None) -> np.ndarray:
    if labels is None:
        return np.unique(np.concatenate([y_true, y_pred]))
    if isinstance(labels, (int, np.integer)):
        return np.arange(int(labels))
    return np.asarray(labels)


def _encode(
    y_true, y_pred, labels: Sequence | int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map labels to indices 0..K-1 (the order of ``labels`` is the ordinal order)."""
    yt, yp = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has {yt.size} items but y_pred has {yp.size}")
    if yt.size == 0:
        raise ValueError("cannot score an empty set of predictions")
    labs = _labels(yt, yp, labels)
    index = {v.item() if hasattr(v, "item") else v: i for i, v in enumerate(labs)}
    try:
        it = np.fromiter((index[v.item() if hasattr(v, "item") else v] for v in yt), int, yt.size)
        ip = np.fromiter((index[v.item() if hasattr(v, "item") else v] for v in yp), int, yp.size)
    except KeyError as e:
        raise ValueError(f"label {e.args[0]!r} is not among labels {list(labs)}") from None
    return it, ip, labs


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion counts (rows = true, cols = predicted) of index arrays; batched over rows.

    ``y_true``/``y_pred`` may be 1-d (one matrix) or ``B x n`` (one matrix per row).
    """
    yt, yp = np.atleast_2d(y_true), np.atleast_2d(y_pred)
    b = yt.shape[0]
    k2 = n_classes * n_classes
    codes = yt * n_classes + yp + (np.arange(b) * k2)[:, None]
    out = np.bincount(codes.ravel(), minlength=b * k2).reshape(b, n_classes, n_classes)
    return out[0] if np.ndim(y_true) == 1 else out


# --------------------------------------------------------------------------- from confusion


def qwk_from_confusion(cm: np.ndarray) -> np.ndarray | float:
    """Quadratic weighted kappa from confusion matrices (``... x K x K``), as sklearn defines it.

    Edge case: when observed and chance disagreement are both zero (every text and every
    prediction in the same class) the two raters agree perfectly and we return 1.0, where sklearn
    returns NaN; a single true class with varied predictions gives 0.0 like sklearn.
    """
    cm = np.asarray(cm, dtype=float)
    k = cm.shape[-1]
    idx = np.arange(k)
    w = (idx[:, None] - idx[None, :]) ** 2
    n = cm.sum(axis=(-2, -1))
    expected = cm.sum(-1)[..., :, None] * cm.sum(-2)[..., None, :] / np.maximum(n, 1)[..., None, None]
    obs = (w * cm).sum(axis=(-2, -1))
    exp = (w * expected).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = np.where(exp > 0, 1.0 - obs / np.where(exp > 0, exp, 1.0), np.where(obs > 0, 0.0, 1.0))
    return float(kappa) if np.ndim(kappa) == 0 else kappa


def _from_confusion(cm: np.ndarray, metric: str) -> np.ndarray:
    cm = np.asarray(cm, dtype=float)
    k = cm.shape[-1]
    idx = np.arange(k)
    n = cm.sum(axis=(-2, -1))
    diag = np.diagonal(cm, axis1=-2, axis2=-1)
    if metric == "qwk":
        return np.asarray(qwk_from_confusion(cm))
    if metric == "accuracy":
        return diag.sum(-1) / n
    dist = np.abs(idx[:, None] - idx[None, :])
    if metric == "adjacent_accuracy":
        return (cm * (dist <= 1)).sum(axis=(-2, -1)) / n
    if metric == "mae":
        return (cm * dist).sum(axis=(-2, -1)) / n
    if metric == "macro_f1":
        # sklearn's macro-F1 over the classes present in y_true or y_pred; F1 = 2TP/(2TP+FP+FN).
        support_t, support_p = cm.sum(-1), cm.sum(-2)
        denom = support_t + support_p
        present = denom > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(present, 2 * diag / np.where(present, denom, 1), 0.0)
        return f1.sum(-1) / np.maximum(present.sum(-1), 1)
    raise KeyError(metric)


CONFUSION_METRICS = ("qwk", "accuracy", "adjacent_accuracy", "mae", "macro_f1")


# --------------------------------------------------------------------------- single metrics


def qwk(y_true, y_pred, *, labels: Sequence | int | None = None) -> float:
    """Quadratic weighted kappa; equals sklearn ``cohen_kappa_score(weights="quadratic")`` when
    ``labels`` covers the ordinal scale (pass ``labels=K`` so absent levels keep their distance)."""
    it, ip, labs = _encode(y_true, y_pred, labels)
    return float(qwk_from_confusion(confusion(it, ip, len(labs))))


def accuracy(y_true, y_pred) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def adjacent_accuracy(y_true, y_pred, *, labels: Sequence | int | None = None) -> float:
    """Share of predictions at most one level off (on the ordinal scale of ``labels``)."""
    it, ip, _ = _encode(y_true, y_pred, labels)
    return float(np.mean(np.abs(it - ip) <= 1))


def mae(y_true, y_pred, *, labels: Sequence | int | None = None) -> float:
    it, ip, _ = _encode(y_true, y_pred, labels)
    return float(np.mean(np.abs(it - ip)))


def macro_f1(y_true, y_pred, *, labels: Sequence | None = None) -> float:
    """Macro-F1; with ``labels`` the average runs over exactly those classes (absent ones: 0)."""
    from sklearn.metrics import f1_score

    kw = {} if labels is None else {"labels": list(labels)}
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0, **kw))


def spearman(y_true, y_pred) -> float:
    """Spearman rank correlation; NaN when either side is constant (no ranking to compare)."""
    yt, yp = np.asarray(y_true, float), np.asarray(y_pred, float)
    if np.ptp(yt) == 0 or np.ptp(yp) == 0:
        return float("nan")
    return float(stats.spearmanr(yt, yp).statistic)


def top_k_accuracy(y_true, proba: np.ndarray, k: int, *, labels: Sequence | int | None = None
                   ) -> float:
    """Share of texts whose true class is among the ``k`` most probable (columns = ``labels``)."""
    it, _, _ = _encode(y_true, y_true, labels if labels is not None else proba.shape[1])
    return float(np.mean(_topk_hits(it, np.asarray(proba), k)))


def _topk_hits(it: np.ndarray, proba: np.ndarray, k: int) -> np.ndarray:
    if proba.ndim != 2 or proba.shape[0] != it.size:
        raise ValueError(f"proba must be n x K with n={it.size}; got shape {proba.shape}")
    # Rank of the true class = number of classes scored strictly higher (ties favour the truth,
    # like sklearn's top_k_accuracy_score).
    true_score = proba[np.arange(it.size), it]
    return (proba > true_score[:, None]).sum(1) < k


def per_class_scores(y_true, y_pred, *, labels: Sequence | None = None) -> list[dict]:
    """Per-class precision, recall, F1 and support as tidy rows (for NLI tables)."""
    from sklearn.metrics import precision_recall_fscore_support

    labs = _labels(np.asarray(y_true), np.asarray(y_pred), labels)
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labs, zero_division=0
    )
    return [
        {"label": lab.item() if hasattr(lab, "item") else lab, "precision": float(pi),
         "recall": float(ri), "f1": float(fi), "support": int(si)}
        for lab, pi, ri, fi, si in zip(labs, p, r, f, s, strict=True)
    ]


# --------------------------------------------------------------------------- all at once


def _metric_names(task: str, n_classes: int, proba: np.ndarray | None) -> list[str]:
    if task == "ordinal":
        return list(ORDINAL_METRICS)
    if task == "nominal":
        names = ["accuracy", "macro_f1"]
        if proba is not None:
            names += [f"top{k}" for k in TOP_K if k < n_classes]
        return names
    raise ValueError(f"task must be 'ordinal' or 'nominal', not {task!r}")


def score_all(
    y_true,
    y_pred,
    *,
    proba: np.ndarray | None = None,
    task: str = "ordinal",
    labels: Sequence | int | None = None,
    n_classes: int | None = None,
    per_class: bool = False,
) -> dict[str, float]:
    """Every metric of the task as ``{name: value}``.

    ordinal: qwk, accuracy, adjacent_accuracy, macro_f1, mae, spearman (distances on the scale of
    ``labels``, default the sorted observed labels; pass ``labels=K`` for ``0..K-1``).
    nominal: accuracy, macro_f1 and, with ``proba`` (columns in ``labels`` order), top-k accuracy
    for k in 1, 3, 5 where k < K (top-K of K classes is trivially 1); with ``per_class``, keys
    ``precision/LABEL``, ``recall/LABEL``, ``f1/LABEL``.
    """
    if labels is None and n_classes is not None:
        labels = int(n_classes)
    if labels is None and proba is not None:
        labels = np.asarray(proba).shape[1]
    it, ip, labs = _encode(y_true, y_pred, labels)
    k = len(labs)
    cm = confusion(it, ip, k)
    out: dict[str, float] = {}
    for name in _metric_names(task, k, proba):
        if name in CONFUSION_METRICS:
            out[name] = float(_from_confusion(cm, name))
        elif name == "spearman":
            out[name] = spearman(it, ip)
        elif name.startswith("top"):
            out[name] = float(np.mean(_topk_hits(it, np.asarray(proba), int(name[3:]))))
    if task == "nominal" and per_class:
        for row in per_class_scores(it, ip, labels=np.arange(k)):
            lab = labs[row["label"]]
            for m in ("precision", "recall", "f1"):
                out[f"{m}/{lab}"] = row[m]
    return out


# --------------------------------------------------------------------------- bootstrap


def bootstrap_indices(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``n_boot x n`` resampling indices over test texts (share them to compare systems).

    ``n_boot`` is capped (:data:`~learnerprobe.limits.MAX_BOOT`): the matrix is held at once,
    and 1e12 resamples would ask for petabytes instead of failing clearly."""
    if (isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer)
            or not 0 <= n_boot <= MAX_BOOT):
        raise ConfigError(f"n_boot must be an integer in 0..{MAX_BOOT}, not {n_boot!r}")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _batched_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ra = stats.rankdata(a, axis=1)
    rb = stats.rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1), np.nan)


def _resampled(
    it: np.ndarray, ip: np.ndarray, k: int, names: Sequence[str], idx: np.ndarray,
    proba: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Each metric on each resample (rows of ``idx``)."""
    out: dict[str, np.ndarray] = {}
    yt, yp = it[idx], ip[idx]
    cm = None
    for name in names:
        if name in CONFUSION_METRICS:
            if cm is None:
                cm = confusion(yt, yp, k)
            out[name] = _from_confusion(cm, name)
        elif name == "spearman":
            out[name] = _batched_spearman(yt, yp)
        elif name.startswith("top"):
            hits = _topk_hits(it, proba, int(name[3:]))
            out[name] = hits[idx].mean(1)
        else:
            raise ValueError(f"unknown metric {name!r}")
    return out


def resampled_metric(y_true, y_pred, metric: str, *, n_classes: int, idx: np.ndarray
                     ) -> np.ndarray:
    """``metric`` on each resample (rows of ``idx``, e.g. from :func:`bootstrap_indices`): the
    raw draws, for statistics over several test sets (a mean over corpora or over repeated
    draws) that one bootstrap call cannot give."""
    it, ip, labs = _encode(y_true, y_pred, int(n_classes))
    return _resampled(it, ip, len(labs), [metric], np.asarray(idx), None)[metric]


def _interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(v, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def interval(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """The percentile interval of bootstrap (or repeat) draws, NaN draws ignored."""
    return _interval(np.asarray(values, dtype=float), alpha)


def bootstrap_all(
    y_true,
    y_pred,
    *,
    proba: np.ndarray | None = None,
    task: str = "ordinal",
    labels: Sequence | int | None = None,
    n_classes: int | None = None,
    metrics: Sequence[str] | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, tuple[float, float, float]]:
    """``{metric: (value, ci_low, ci_high)}``: percentile bootstrap over test texts.

    One index matrix is drawn and reused for every metric, so intervals of different metrics (and
    of systems evaluated with the same ``seed`` on the same texts) come from the same resamples.
    """
    if labels is None and n_classes is not None:
        labels = int(n_classes)
    if labels is None and proba is not None:
        labels = np.asarray(proba).shape[1]
    it, ip, labs = _encode(y_true, y_pred, labels)
    k = len(labs)
    names = list(metrics) if metrics is not None else _metric_names(task, k, proba)
    point = score_all(it, ip, proba=proba, task=task, labels=k)
    for name in names:
        if name not in point:
            point[name] = float(
                _from_confusion(confusion(it, ip, k), name) if name in CONFUSION_METRICS
                else spearman(it, ip)
            )
    idx = bootstrap_indices(it.size, n_boot, seed)
    boot = _resampled(it, ip, k, names, idx, None if proba is None else np.asarray(proba))
    return {name: (point[name], *_interval(boot[name], alpha)) for name in names}


def bootstrap_ci(
    y_true,
    y_pred,
    metric: str,
    *,
    proba: np.ndarray | None = None,
    labels: Sequence | int | None = None,
    n_classes: int | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` of one metric (names as in :func:`score_all`)."""
    if labels is None and n_classes is not None:
        labels = int(n_classes)
    task = "nominal" if metric.startswith("top") else "ordinal"
    res = bootstrap_all(y_true, y_pred, proba=proba, task=task, labels=labels, metrics=[metric],
                        n_boot=n_boot, alpha=alpha, seed=seed)
    return res[metric][1], res[metric][2]


def paired_bootstrap_diff(
    y_true,
    pred_a,
    pred_b,
    metric: str,
    *,
    proba_a: np.ndarray | None = None,
    proba_b: np.ndarray | None = None,
    labels: Sequence | int | None = None,
    n_classes: int | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(diff, low, high)`` of ``metric(a) - metric(b)`` on the same texts.

    Both systems are scored on the *same* resamples, so the interval reflects the paired
    difference (e.g. probe vs surface baseline); an interval excluding 0 means a reliable gap.
    """
    if labels is None and n_classes is not None:
        labels = int(n_classes)
    if labels is None:
        labels = np.unique(np.concatenate([np.ravel(y_true), np.ravel(pred_a), np.ravel(pred_b)]))
    it, ia, labs = _encode(y_true, pred_a, labels)
    _, ib, _ = _encode(y_true, pred_b, labels)
    k = len(labs)
    idx = bootstrap_indices(it.size, n_boot, seed)
    ba = _resampled(it, ia, k, [metric], idx, proba_a)[metric]
    bb = _resampled(it, ib, k, [metric], idx, proba_b)[metric]
    full = np.arange(it.size)[None, :]
    da = _resampled(it, ia, k, [metric], full, proba_a)[metric][0]
    db = _resampled(it, ib, k, [metric], full, proba_b)[metric][0]
    return (float(da - db), *_interval(ba - bb, alpha))

