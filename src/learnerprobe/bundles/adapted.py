"""A bundle adapted to a new corpus from k labelled texts of it (``learnerprobe adapt``,
``Predictor.adapt``): the source bundle's estimator, read and never refitted, plus an adapt
method (``methods.registry``, task ``adapt``) fitted on the k texts; written as an ordinary
bundle (same model, layer and preprocessing) whose manifest records the method, k, the labelled
file's digest and the leave-one-out validation on the k texts.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.bundles.io import Bundle, save_bundle
from learnerprobe.errors import LearnerprobeError
from learnerprobe.evaluation.metrics import score_all
from learnerprobe.methods.registry import BuildContext, get_method, method_names

#: above this many labelled texts the validation is 10-fold instead of leave-one-out
MAX_LOO = 300


class AdaptError(LearnerprobeError):
    """Labelled texts or a method that an adaptation cannot use."""


def adapt_method_names() -> list[str]:
    """The adapt methods a bundle can hold (over hidden states)."""
    return [m for m in method_names(task="adapt") if get_method(m).bundle]


def source_of(est: Any) -> Any:
    """The estimator the adapters read: a calibrated regressor's inner probe (its score is the
    level the calibration maps), else the bundle's estimator itself."""
    inner = getattr(est, "estimator_", None)
    return inner if inner is not None and hasattr(inner, "predict_score") else est


def labelled_digest(texts: Sequence[str], levels: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps([list(texts), list(levels)], ensure_ascii=False)
                          .encode("utf-8")).hexdigest()


def encode_levels(levels: Sequence[str], labels: Sequence[str], n_texts: int) -> np.ndarray:
    if len(levels) != n_texts:
        raise AdaptError(f"{n_texts} texts but {len(levels)} levels")
    pos = {lab: i for i, lab in enumerate(labels)}
    for i, v in enumerate(levels):
        if v not in pos:
            raise AdaptError(f"level {v!r} (text {i + 1}) is not in the bundle's scheme: "
                             f"{', '.join(labels)}")
    return np.array([pos[v] for v in levels], dtype=np.int64)


def build(method: str, source: Any, n_classes: int) -> Any:
    return get_method(method, task="adapt").build(BuildContext(n_classes=n_classes, seed=0,
                                                               source=source))


def validate(method: str, source: Any, X: np.ndarray, y: np.ndarray, n_classes: int
             ) -> dict[str, Any]:
    """Leave-one-out (10-fold above :data:`MAX_LOO` texts) predictions of the method on the k
    texts, each fold refitting it on the rest, scored beside the source's own predictions."""
    n = len(y)
    folds = ([np.array([i]) for i in range(n)] if n <= MAX_LOO
             else np.array_split(np.random.default_rng(0).permutation(n), 10))
    pred = np.empty(n, dtype=np.int64)
    for te in folds:
        tr = np.setdiff1d(np.arange(n), te)
        pred[te] = build(method, source, n_classes).fit(X[tr], y[tr]).predict(X[te])
    src = np.asarray(source.predict(X), dtype=np.int64)
    keep = ("qwk", "accuracy", "adjacent_accuracy", "mae")

    def scores(p: np.ndarray) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in score_all(y, p, labels=n_classes).items()
                if k in keep}

    return {"scheme": "leave-one-out" if n <= MAX_LOO else "10-fold", "n": n,
            "adapted": scores(pred), "source": scores(src)}


def adapt_bundle(bundle: Bundle, featurize: Callable[[list[str]], np.ndarray],
                 texts: list[str], levels: list[str], *, method: str,
                 out: str | Path | None, labelled_sha256: str | None = None) -> Path:
    """Fit ``method`` on the labelled texts over ``bundle``'s estimator and save the adapted
    bundle to ``out`` (None: a new temporary folder); its path."""
    known = adapt_method_names()
    if method not in known:
        raise AdaptError(f"unknown adapt method {method!r}; known: {', '.join(known)}")
    labels = bundle.labels
    y = encode_levels(levels, labels, len(texts))
    source = source_of(bundle.load_estimator())
    est = build(method, source, len(labels))
    need = int(getattr(est, "min_texts", 3))
    if len(y) < need:
        raise AdaptError(f"method {method!r} needs at least {need} labelled texts, got {len(y)}")
    X = np.asarray(featurize(texts), dtype=np.float32)
    validation = validate(method, source, X, y, len(labels)) if len(y) > need else None
    est.fit(X, y)
    m = bundle.manifest
    record = {"method": method, "k": int(len(y)),
              "labelled_sha256": labelled_sha256 or labelled_digest(texts, levels),
              "levels": {lab: int((y == i).sum()) for i, lab in enumerate(labels)},
              "source": {"method": m["method"], "digest": bundle.digest},
              "strength": getattr(est, "strength_", None)}
    dest = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="adapted-")) / "bundle"
    card = {**m.get("card", {}), "adapted": (
        f"adapted with {method} from {len(y)} labelled texts (source bundle method "
        f"{m['method']}); validation: leave-one-out on those texts only")}
    return save_bundle(dest, task=m["task"], method=method, labels=list(labels), estimator=est,
                       model=m.get("model"), weights=m.get("weights"), layer=m.get("layer"),
                       layers=m.get("layers"), preprocessing=m["preprocessing"],
                       training_data={**m.get("training_data", {}), "adaptation": record},
                       metrics={**m.get("metrics", {}), "adaptation_validation": validation},
                       card=card, check_inputs=X)
