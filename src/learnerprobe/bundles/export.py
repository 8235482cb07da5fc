"""Exporting a fitted estimator to its array form (:mod:`learnerprobe.bundles.arrays`), at save
time only (nothing here runs when a bundle is applied, so scikit-learn is imported freely).

Which exporter: the one the estimator's class declares (:mod:`learnerprobe.bundles.trust`:
``_bundleable = {"arrays": KIND}``, a kind of :data:`EXPORTERS`, or its own function), for that
exact class only. An estimator without one, or of a shape its exporter does not replicate
(another backend, a calibrated SVM, a vectoriser option), exports nothing and its bundle keeps
only the skops file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge, RidgeCV
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from learnerprobe.bundles import arrays
from learnerprobe.bundles.arrays import MLP_OUTPUTS, TOKEN_PATTERNS
from learnerprobe.bundles.trust import declaration
from learnerprobe.errors import BundleError

# (estimator, tensor name prefix, tensors to fill) -> the JSON spec of its array form
Exporter = Callable[[Any, str, dict[str, np.ndarray]], dict[str, Any]]


def _scaler_of(obj: Any) -> tuple[Any, Any] | None:
    """(scaler or None, final model) of a model or a StandardScaler pipeline; None otherwise.
    Exact classes throughout: a subclass may compute something else."""
    if type(obj) is Pipeline:
        steps = [s for _, s in obj.steps]
        if len(steps) == 2 and type(steps[0]) is StandardScaler:
            return steps[0], steps[1]
        return None
    return None, obj


def _put_scaler(scaler: Any, p: str, tensors: dict[str, np.ndarray]) -> bool:
    if scaler is None:
        return False
    if not (getattr(scaler, "with_mean", True) and getattr(scaler, "with_std", True)):
        raise _Unsupported("a scaler without mean or std")
    tensors[p + "mean"] = np.asarray(scaler.mean_)
    tensors[p + "scale"] = np.asarray(scaler.scale_)
    return True


class _Unsupported(Exception):
    pass


def _export_mlp(est: Any, p: str, tensors: dict[str, np.ndarray], task: str) -> dict[str, Any]:
    w = getattr(est, "weights_", None)
    if getattr(est, "model_", None) is not None or w is None:
        raise _Unsupported("an MLP fitted with sklearn's own MLP, or with one class")
    if est.backend == "torch":
        out = "softmax" if task == "clf" else "identity"
    elif est.backend == "sklearn_torch":
        out = str(w["out"])
    else:
        raise _Unsupported(f"MLP backend {est.backend!r}")
    if out not in MLP_OUTPUTS:
        raise _Unsupported(f"MLP output {out!r}")
    for k in ("W1", "b1", "W2", "b2"):
        a = np.asarray(w[k])
        if a.ndim < 2 or a.shape[0] != 1:
            raise _Unsupported("an MLP over several layers")
        tensors[p + k] = a
    spec = {"kind": f"mlp_{task}", "scaler": _put_scaler(est.scaler_, p, tensors), "out": out}
    if task == "clf":
        spec.update(present=[int(c) for c in est.present_], n_classes=len(est.classes_))
    return spec


def _export_logistic(est: Any, p: str, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    if est.model_ is None:
        raise _Unsupported("a logistic probe fitted on one class")
    sc = _scaler_of(est.model_)
    if sc is None or type(sc[1]) not in (LogisticRegression, LogisticRegressionCV):
        raise _Unsupported("a logistic probe of another shape")
    scaler, lr = sc
    tensors[p + "coef"] = np.asarray(lr.coef_)
    tensors[p + "intercept"] = np.asarray(lr.intercept_)
    if len(lr.classes_) <= 2 and lr.coef_.shape[0] != 1:
        raise _Unsupported("a binary logistic regression with several rows")
    return {"kind": "logistic", "scaler": _put_scaler(scaler, p, tensors),
            "present": [int(c) for c in est.present_], "n_classes": len(est.classes_)}


def _export_ridge(est: Any, p: str, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    sc = _scaler_of(est.model_)
    if sc is None or type(sc[1]) not in (Ridge, RidgeCV):
        raise _Unsupported("a ridge probe of another shape")
    scaler, r = sc
    coef = np.asarray(r.coef_)
    if coef.ndim != 1:
        raise _Unsupported("a multi-output ridge")
    tensors[p + "coef"] = coef
    tensors[p + "intercept"] = np.asarray(r.intercept_, dtype=np.float64).reshape(1)
    return {"kind": "ridge", "scaler": _put_scaler(scaler, p, tensors)}


def _export_ordinal_at(est: Any, p: str, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    if len(est.present_) < 2:
        raise _Unsupported("an ordinal probe fitted on one class")
    tensors[p + "coef"] = np.asarray(est.coef_, dtype=np.float64)
    tensors[p + "theta"] = np.asarray(est.theta_, dtype=np.float64)
    return {"kind": "ordinal_at", "scaler": _put_scaler(est.scaler_, p, tensors),
            "present": [int(c) for c in est.present_], "n_classes": len(est.classes_)}


def _export_calibrated(est: Any, p: str, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    inner = est.estimator_
    fn = exporter_of(inner)  # the wrapped probe's own declaration
    ispec = fn(inner, p + "inner.", tensors) if fn is not None else None
    if ispec is None or ispec.get("kind") not in ("ridge", "mlp_reg"):
        raise _Unsupported(f"a calibrated {type(inner).__name__}")
    tensors[p + "theta"] = np.asarray(est.theta_, dtype=np.float64)
    return {"kind": "ordinal_calibrated", "inner": ispec, "score_mean": float(est.score_mean_),
            "score_scale": float(est.score_scale_), "beta": float(est.beta_),
            "n_classes": len(est.classes_)}


def _export_tfidf(vec: Any, i: int, p: str, tensors: dict[str, np.ndarray]) -> dict[str, Any]:

    plain = (vec.input == "content" and vec.strip_accents is None and vec.preprocessor is None
             and vec.tokenizer is None and vec.stop_words is None and vec.norm == "l2"
             and vec.use_idf and not vec.binary and vec.analyzer in ("char", "word"))
    if not plain:
        raise _Unsupported("a TfidfVectorizer with options we do not replicate")
    if vec.analyzer == "word" and vec.token_pattern not in TOKEN_PATTERNS:
        raise _Unsupported("a token pattern other than the known ones")
    vocab = vec.vocabulary_
    n = len(vocab)
    terms = [""] * n
    for term, j in vocab.items():
        terms[int(j)] = term
    if any(t == "" for t in terms) and n:
        raise _Unsupported("a vocabulary that is not 0..n-1")
    blobs = [t.encode("utf-8", "surrogatepass") for t in terms]
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    tensors[f"{p}part{i}.terms"] = np.frombuffer(b"".join(blobs) or b"\0", dtype=np.uint8).copy()
    tensors[f"{p}part{i}.offsets"] = offsets
    tensors[f"{p}part{i}.idf"] = np.asarray(vec.idf_)
    return {"analyzer": vec.analyzer, "ngram_range": [int(x) for x in vec.ngram_range],
            "lowercase": bool(vec.lowercase), "sublinear_tf": bool(vec.sublinear_tf),
            "token_pattern": vec.token_pattern if vec.analyzer == "word" else None}


def _export_ngram(est: Any, p: str, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    fu = est.features_
    if type(fu) is not FeatureUnion or fu.transformer_weights is not None:
        raise _Unsupported("n-gram features of another shape")
    parts = []
    for i, (_, vec) in enumerate(fu.transformer_list):
        if type(vec) is not TfidfVectorizer:
            raise _Unsupported(f"n-gram part {type(vec).__name__}")
        parts.append(_export_tfidf(vec, i, p, tensors))
    clf = est.clf_
    if type(clf) is LinearSVC:
        head = "svm_softmax"
    elif type(clf) is LogisticRegression:
        head = "logreg"
    else:
        raise _Unsupported(f"n-gram classifier {type(clf).__name__}")
    tensors[p + "coef"] = np.asarray(clf.coef_, dtype=np.float64)
    tensors[p + "intercept"] = np.asarray(clf.intercept_, dtype=np.float64).reshape(-1)
    classes = [c.item() if hasattr(c, "item") else c for c in est.classes_]
    if not all(isinstance(c, (int, str)) and not isinstance(c, bool) for c in classes):
        raise _Unsupported("classes that are not ints or strings")
    return {"kind": "ngram", "parts": parts, "head": head, "classes": classes}


# The exporter of each array kind (arrays.KINDS): what a class's declaration names.
EXPORTERS: dict[str, Exporter] = {
    "mlp_clf": partial(_export_mlp, task="clf"),
    "mlp_reg": partial(_export_mlp, task="reg"),
    "logistic": _export_logistic,
    "ridge": _export_ridge,
    "ordinal_at": _export_ordinal_at,
    "ordinal_calibrated": _export_calibrated,
    "ngram": _export_ngram,
}


def exporter_of(est: Any) -> Exporter | None:
    """The exporter ``est``'s exact class declares (:func:`learnerprobe.bundles.trust.
    declaration`), or None: an undeclared class, a subclass of a declared one, a class that
    declares no array form."""
    d = declaration(type(est))
    if d is None or d.arrays is None:
        return None
    return d.arrays if callable(d.arrays) else EXPORTERS[d.arrays]


def export(est: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """``(spec, tensors)`` of a fitted estimator's array form (a kind of
    :data:`learnerprobe.bundles.arrays.KINDS`), or None when its class declares none or its
    configuration has none (it then stays skops-only)."""
    fn = exporter_of(est)
    if fn is None:
        return None
    tensors: dict[str, np.ndarray] = {}
    try:
        spec = fn(est, "", tensors)
        if spec["kind"] != "ngram":
            spec["n_features"] = int(est.n_features_in_)
    except (_Unsupported, AttributeError, KeyError, TypeError):
        return None
    classes = [c.item() if hasattr(c, "item") else c for c in est.classes_]
    if not all(isinstance(c, (int, str)) and not isinstance(c, bool) for c in classes):
        return None
    spec["classes"] = classes
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    if any(v.dtype.kind not in "fiu" for v in tensors.values()):
        return None
    return spec, tensors


def array_form(estimator: Any, check_inputs: Any, where: str) -> tuple[dict, dict] | None:
    """The estimator's array form, or None when its kind has none or it does not reproduce the
    estimator: rebuilt from the bytes that will be written and compared on ``check_inputs``
    plus synthetic inputs (:func:`learnerprobe.bundles.arrays.check_equivalent`)."""
    form = export(estimator)
    if form is None:
        return None
    spec, tensors = form
    tensors_back, _ = arrays.loads(arrays.dumps(tensors, {}), where)
    try:
        arr = arrays.build(json.loads(json.dumps(spec)), tensors_back, where)
    except BundleError:
        return None
    inputs = [arrays.probe_inputs(estimator, spec, tensors)]
    if check_inputs is not None:
        inputs.insert(0, check_inputs if spec["kind"] == "ngram"
                      else np.asarray(check_inputs, dtype=np.float32))
    for X in inputs:
        ok, _ = arrays.check_equivalent(estimator, arr, X)
        if not ok:
            return None
    return spec, tensors
