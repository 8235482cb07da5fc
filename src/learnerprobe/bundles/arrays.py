"""Fitted estimators as numeric arrays: applied with numpy alone, safe by construction.

A bundle's estimator lives in ``estimator.skops``; loading it imports scikit-learn (~1.9 s) and
skops (~3.5 s more: it imports every scikit-learn module to build its type tables), most of a
cold `learnerprobe predict`. So a bundle also holds the estimators `learnerprobe train` bundles
in an array form (written by :mod:`learnerprobe.bundles.export`): numeric tensors (``estimator.safetensors``) plus a JSON spec (in the
manifest) of one kind from the EXACT registry :data:`KINDS`. Applying it runs a fixed numpy
formula per kind; nothing in the file names code, types or functions, so a crafted file can at
worst give wrong numbers (and its hash is in the manifest like every bundle file).

The array form is written only when :func:`check_equivalent` finds its probabilities (and
continuous scores) equal to the original estimator's within :data:`TOLERANCE` on the inputs
given at save time; otherwise the bundle has only the skops file. This module is the format
and its formulas (numpy only: a cold `predict` imports it); exporting lives in ``export``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from learnerprobe.errors import BundleError
from learnerprobe.nli._base import softmax as nli_softmax

ARRAYS_FORMAT = "learnerprobe-arrays/1"
ARRAYS_FILE = "estimator.safetensors"
TOLERANCE = 1e-6
# Word token patterns a bundle may name (NgramClassifier's): an exact list, so a crafted file
# cannot make us compile a catastrophically backtracking regular expression.
TOKEN_PATTERNS = (r"(?u)\b\w+\b",)
KINDS = ("mlp_clf", "mlp_reg", "logistic", "ridge", "ordinal_at", "ordinal_calibrated", "ngram")
_FLOATS = ("float32", "float64")
MLP_OUTPUTS = ("softmax", "logistic", "identity")
MAX_HEADER = 1 << 24

# ----------------------------------------------------------------------------- the estimator
class ArrayEstimator:
    """What the predictor needs of an estimator: ``classes_``, ``n_features_in_``, ``predict``,
    and ``predict_proba`` / ``predict_score`` (None when the kind has none)."""

    def __init__(self, kind: str, classes: np.ndarray, n_features: int | None,
                 proba: Callable[[Any], np.ndarray] | None,
                 score: Callable[[Any], np.ndarray] | None,
                 label: Callable[[Any], np.ndarray] | None = None) -> None:
        self.kind = kind
        self._label = label
        self.classes_ = classes
        if n_features is not None:
            self.n_features_in_ = n_features
        self.predict_proba = proba
        self.predict_score = score

    def predict(self, X: Any) -> np.ndarray:
        if self._label is not None:
            return self._label(X)
        if self.predict_proba is not None:
            return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        s = self.predict_score(X)
        return self.classes_[np.clip(np.rint(s), 0, len(self.classes_) - 1).astype(int)]


def _expand(p: np.ndarray, present: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((p.shape[0], k))
    out[:, present] = p
    return out


def _softmax(x: np.ndarray) -> np.ndarray:
    """Row softmax with the max subtracted, the arithmetic of both scipy.special.softmax (the
    torch-trained MLPs) and sklearn.utils.extmath.softmax (LogisticRegression.predict_proba)."""
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _scale(t: dict[str, np.ndarray], p: str, spec: dict[str, Any], X: Any) -> np.ndarray:
    """StandardScaler.transform as sklearn does it: in the input's float dtype, in place."""
    X = np.array(X, copy=True)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if spec["scaler"]:
        X -= t[p + "mean"]
        X /= t[p + "scale"]
    return X


# ----------------------------------------------------------------------------- per kind: apply
def _mlp_out(t: dict[str, np.ndarray], p: str, spec: dict[str, Any], X: Any) -> np.ndarray:
    W1 = t[p + "W1"]
    Xs = _scale(t, p, spec, X)
    h = np.maximum(np.matmul(np.asarray(Xs, dtype=W1.dtype)[None], W1) + t[p + "b1"], 0)
    z = (np.matmul(h, t[p + "W2"]) + t[p + "b2"])[0]
    if spec["out"] == "softmax":
        return _softmax(z)
    if spec["out"] == "logistic":
        q = _expit(z)
        return np.concatenate([1 - q, q], axis=-1)
    return z


def _linear(t: dict[str, np.ndarray], p: str, spec: dict[str, Any], X: Any) -> np.ndarray:
    return _scale(t, p, spec, X) @ t[p + "coef"].T + t[p + "intercept"]


def _logistic_proba(t, p, spec, X) -> np.ndarray:
    d = _linear(t, p, spec, X)
    if d.shape[1] == 1:
        q = _expit(d.ravel())
        pr = np.vstack([1 - q, q]).T
    else:
        pr = _softmax(d)
    return _expand(pr, np.asarray(spec["present"]), spec["n_classes"])


def _ridge_score(t, p, spec, X) -> np.ndarray:
    return _linear(t, p, spec, X)


def _at_proba(score: np.ndarray, theta: np.ndarray) -> np.ndarray:
    cdf = _expit(theta[None, :] - score[:, None])
    cdf = np.hstack([np.zeros((score.size, 1)), cdf, np.ones((score.size, 1))])
    return np.clip(np.diff(cdf, axis=1), 0.0, 1.0)


def _ordinal_at_proba(t, p, spec, X) -> np.ndarray:
    s = _scale(t, p, spec, X) @ t[p + "coef"]
    return _expand(_at_proba(s, t[p + "theta"]), np.asarray(spec["present"]), spec["n_classes"])


def _ordinal_at_label(t, p, spec, X) -> np.ndarray:
    """mord's rule (OrdinalLogisticAT.predict): the level whose threshold interval holds the score."""
    s = _scale(t, p, spec, X) @ t[p + "coef"]
    idx = (t[p + "theta"][None, :] < s[:, None]).sum(1)
    return np.asarray(spec["present"])[idx]


def _score_of(t, p, spec, X) -> np.ndarray:
    if spec["kind"] == "ridge":
        return _ridge_score(t, p, spec, X)
    return _mlp_out(t, p, spec, X)[:, 0]


def _calibrated_proba(t, p, spec, X) -> np.ndarray:
    s = np.asarray(_score_of(t, p + "inner.", spec["inner"], X), dtype=float)
    z = ((s - spec["score_mean"]) / spec["score_scale"]).ravel()
    cdf = np.hstack([np.zeros((z.size, 1)), _expit(t[p + "theta"][None, :] - spec["beta"] * z[:, None]),
                     np.ones((z.size, 1))])
    pr = np.clip(np.diff(cdf, axis=1), 0.0, 1.0)
    return pr / pr.sum(axis=1, keepdims=True)


def _texts(X: Any) -> list[str]:
    out = []
    for i, x in enumerate(X):
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict) and isinstance(x.get("text"), str):
            out.append(x["text"])
        else:
            raise TypeError(f"item {i}: expected a text, got {type(x).__name__}")
    return out


# ----------------------------------------------------------------------------- build from arrays
class _Spec:
    """Strict reading of a JSON spec: exact keys, typed values; errors name the field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, msg: str) -> BundleError:
        return BundleError(f"{self.where}: array form: {msg}")

    def keys(self, d: Any, need: set[str], what: str) -> dict[str, Any]:
        if not isinstance(d, dict) or set(d) != need:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise self.fail(f"{what} must have exactly the fields {sorted(need)} (got {got})")
        return d

    def int_(self, v: Any, what: str, lo: int = 0, hi: int = 1 << 40) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise self.fail(f"{what} must be an integer in [{lo}, {hi}]")
        return v

    def float_(self, v: Any, what: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise self.fail(f"{what} must be a finite number")
        return float(v)

    def choice(self, v: Any, options: Sequence[Any], what: str) -> Any:
        if v not in options or isinstance(v, bool) != isinstance(options[0], bool):
            raise self.fail(f"{what} must be one of {list(options)}")
        return v


def _tensor(t: dict[str, np.ndarray], name: str, s: _Spec, ndim: int,
            kinds: str = "f") -> np.ndarray:
    a = t.get(name)
    if a is None:
        raise s.fail(f"tensor {name!r} is missing")
    if a.ndim != ndim or a.dtype.kind not in kinds or (kinds == "f" and a.dtype.name not in _FLOATS):
        raise s.fail(f"tensor {name!r} has shape {a.shape} and dtype {a.dtype}; expected "
                     f"{ndim} dimensions of {'float32/float64' if kinds == 'f' else kinds}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise s.fail(f"tensor {name!r} holds non-finite values")
    return a


def _check_scaler(t, p, spec, s, d) -> set[str]:
    if not spec["scaler"]:
        return set()
    for k in ("mean", "scale"):
        if _tensor(t, p + k, s, 1).shape != (d,):
            raise s.fail(f"tensor {p + k!r} must have {d} entries")
    if np.any(t[p + "scale"] == 0):
        raise s.fail("a zero scale")
    return {p + "mean", p + "scale"}


def _check_present(spec, s, k_out: int) -> None:
    k = s.int_(spec["n_classes"], "n_classes", 2, 1000)
    pres = spec["present"]
    if (not isinstance(pres, list) or len(pres) != k_out
            or any(s.int_(c, "present", 0, k - 1) is None for c in pres) or pres != sorted(set(pres))):
        raise s.fail(f"present must list {k_out} distinct increasing levels below {k}")


def _check_mlp(t, p, spec, s, d) -> set[str]:
    task = spec["kind"][4:]
    need = {"kind", "scaler", "out"} | ({"present", "n_classes"} if task == "clf" else set())
    if p == "":
        need |= {"n_features", "classes"}
    s.keys(spec, need, f"{spec['kind']} spec")
    s.choice(spec["scaler"], [True, False], "scaler")
    s.choice(spec["out"], MLP_OUTPUTS, "out")
    W1, b1 = _tensor(t, p + "W1", s, 3), _tensor(t, p + "b1", s, 3)
    W2, b2 = _tensor(t, p + "W2", s, 3), _tensor(t, p + "b2", s, 3)
    h, k = W1.shape[2], W2.shape[2]
    if (W1.shape[:2] != (1, d) or b1.shape != (1, 1, h) or W2.shape[:2] != (1, h)
            or b2.shape != (1, 1, k) or len({W1.dtype, b1.dtype, W2.dtype, b2.dtype}) != 1):
        raise s.fail("MLP weights of inconsistent shapes or dtypes")
    if task == "reg" and (k != 1 or spec["out"] != "identity"):
        raise s.fail("an MLP regressor has one identity output")
    if task == "clf":
        k_out = 2 if spec["out"] == "logistic" else k
        if spec["out"] == "identity" or (spec["out"] == "logistic" and k != 1):
            raise s.fail("an MLP classifier has softmax or one logistic output")
        _check_present(spec, s, k_out)
    return {p + n for n in ("W1", "b1", "W2", "b2")} | _check_scaler(t, p, spec, s, d)


def _check_linear(t, p, spec, s, d, rows: bool) -> set[str]:
    coef = _tensor(t, p + "coef", s, 2 if rows else 1)
    inter = _tensor(t, p + "intercept", s, 1)
    if coef.shape[-1] != d or inter.shape != ((coef.shape[0],) if rows else (1,)):
        raise s.fail("coef/intercept of inconsistent shapes")
    return {p + "coef", p + "intercept"} | _check_scaler(t, p, spec, s, d)


def _check(t: dict[str, np.ndarray], p: str, spec: Any, s: _Spec, d: int) -> set[str]:
    """Validate one (possibly nested) spec against the tensors; returns the tensor names used."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise s.fail("spec must be an object with a kind")
    kind = s.choice(spec["kind"], KINDS, "kind")
    top = {"n_features", "classes"} if p == "" else set()
    if kind.startswith("mlp_"):
        return _check_mlp(t, p, spec, s, d)
    if kind == "logistic":
        s.keys(spec, {"kind", "scaler", "present", "n_classes"} | top, "logistic spec")
        s.choice(spec["scaler"], [True, False], "scaler")
        used = _check_linear(t, p, spec, s, d, rows=True)
        rows = t[p + "coef"].shape[0]
        _check_present(spec, s, 2 if rows == 1 else rows)
        return used
    if kind == "ridge":
        s.keys(spec, {"kind", "scaler"} | top, "ridge spec")
        s.choice(spec["scaler"], [True, False], "scaler")
        return _check_linear(t, p, spec, s, d, rows=False)
    if kind == "ordinal_at":
        s.keys(spec, {"kind", "scaler", "present", "n_classes"} | top, "ordinal_at spec")
        s.choice(spec["scaler"], [True, False], "scaler")
        if _tensor(t, p + "coef", s, 1).shape != (d,):
            raise s.fail("coef must have one entry per feature")
        theta = _tensor(t, p + "theta", s, 1)
        _check_present(spec, s, theta.shape[0] + 1)
        return {p + "coef", p + "theta"} | _check_scaler(t, p, spec, s, d)
    if kind == "ordinal_calibrated":
        s.keys(spec, {"kind", "inner", "score_mean", "score_scale", "beta", "n_classes"} | top,
               "ordinal_calibrated spec")
        inner = spec["inner"]
        if not isinstance(inner, dict) or inner.get("kind") not in ("ridge", "mlp_reg"):
            raise s.fail("inner must be a ridge or mlp_reg spec")
        used = _check(t, p + "inner.", inner, s, d)
        s.float_(spec["score_mean"], "score_mean")
        if s.float_(spec["score_scale"], "score_scale") == 0:
            raise s.fail("score_scale is 0")
        if s.float_(spec["beta"], "beta") < 0:
            raise s.fail("beta is negative")
        k = s.int_(spec["n_classes"], "n_classes", 2, 1000)
        if _tensor(t, p + "theta", s, 1).shape != (k - 1,):
            raise s.fail("theta must have n_classes - 1 thresholds")
        return used | {p + "theta"}
    raise s.fail(f"kind {kind!r} cannot be nested")  # pragma: no cover - ngram is top-level


def _build_ngram(t: dict[str, np.ndarray], spec: Any, s: _Spec):
    from learnerprobe.bundles.ngram_text import TfidfPart, decisions

    s.keys(spec, {"kind", "parts", "head", "classes"}, "ngram spec")
    s.choice(spec["head"], ["svm_softmax", "logreg"], "head")
    parts_spec = spec["parts"]
    if not isinstance(parts_spec, list) or not 1 <= len(parts_spec) <= 8:
        raise s.fail("parts must be a list of 1 to 8 vectorisers")
    parts, used, offset = [], set(), 0
    for i, ps in enumerate(parts_spec):
        s.keys(ps, {"analyzer", "ngram_range", "lowercase", "sublinear_tf", "token_pattern"},
               f"parts[{i}]")
        an = s.choice(ps["analyzer"], ["char", "word"], "analyzer")
        rng = ps["ngram_range"]
        if not (isinstance(rng, list) and len(rng) == 2
                and 1 <= s.int_(rng[0], "ngram_range", 1, 50) <= s.int_(rng[1], "ngram_range", 1, 50)):
            raise s.fail("ngram_range must be [lo, hi] with 1 <= lo <= hi <= 50")
        s.choice(ps["lowercase"], [True, False], "lowercase")
        s.choice(ps["sublinear_tf"], [True, False], "sublinear_tf")
        pat = ps["token_pattern"]
        if an == "word":
            if pat not in TOKEN_PATTERNS:  # no regular expression from a file is compiled
                raise s.fail(f"token_pattern must be one of {list(TOKEN_PATTERNS)}")
        elif pat is not None:
            raise s.fail("a char analyzer has no token_pattern")
        terms = _tensor(t, f"part{i}.terms", s, 1, "u")
        offs = _tensor(t, f"part{i}.offsets", s, 1, "i")
        idf = _tensor(t, f"part{i}.idf", s, 1)
        n = idf.shape[0]
        if (terms.dtype != np.uint8 or offs.shape != (n + 1,) or offs[0] != 0
                or np.any(np.diff(offs) < 1) or offs[-1] > max(terms.shape[0], 1)):
            raise s.fail(f"part {i}: terms/offsets/idf of inconsistent sizes")
        blob = terms.tobytes()
        try:
            ol = offs.tolist()
            vocab = {blob[a:b].decode("utf-8", "surrogatepass"): j
                     for j, (a, b) in enumerate(zip(ol[:-1], ol[1:], strict=True))}
        except UnicodeDecodeError:
            raise s.fail(f"part {i}: a term is not UTF-8") from None
        if len(vocab) != n:
            raise s.fail(f"part {i}: duplicate terms")
        parts.append((TfidfPart(an, tuple(rng), ps["lowercase"], pat, vocab, idf,
                                ps["sublinear_tf"]), offset))
        used |= {f"part{i}.terms", f"part{i}.offsets", f"part{i}.idf"}
        offset += n
    coef, inter = _tensor(t, "coef", s, 2), _tensor(t, "intercept", s, 1)
    classes = _classes(spec["classes"], s)
    rows = 1 if len(classes) == 2 else len(classes)
    if coef.shape != (rows, offset) or inter.shape != (rows,):
        raise s.fail(f"coef must be {rows} x {offset} (classes x features)")
    head = spec["head"]
    coef_t = np.asfortranarray(coef)  # .T is then a C-contiguous features x classes view

    def proba(X: Any) -> np.ndarray:
        d = decisions(parts, coef_t, inter, _texts(X))
        if head == "svm_softmax":
            return nli_softmax(d[:, 0] if d.shape[1] == 1 else d)
        if d.shape[1] == 1:
            q = _expit(d.ravel())
            return np.vstack([1 - q, q]).T
        return _softmax(d)

    return ArrayEstimator("ngram", classes, None, proba, None), used | {"coef", "intercept"}


def _classes(v: Any, s: _Spec) -> np.ndarray:
    if (not isinstance(v, list) or len(v) < 2 or len(v) > 1000
            or not (all(isinstance(c, int) and not isinstance(c, bool) for c in v)
                    or all(isinstance(c, str) for c in v))):
        raise s.fail("classes must be a list of 2 to 1000 integers or strings")
    return np.asarray(v)


def build(spec: Any, tensors: dict[str, np.ndarray], where: str) -> ArrayEstimator:
    """The estimator a spec and its tensors describe; BundleError for anything inconsistent
    (unknown kind or field, a missing, extra or misshapen tensor, non-finite values)."""
    s = _Spec(where)
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise s.fail(f"unknown kind {spec.get('kind') if isinstance(spec, dict) else spec!r}; "
                     f"known: {', '.join(KINDS)}")
    if spec["kind"] == "ngram":
        est, used = _build_ngram(tensors, spec, s)
    else:
        d = s.int_(spec.get("n_features"), "n_features", 1, 1 << 20)
        used = _check(tensors, "", spec, s, d)
        classes = _classes(spec.get("classes"), s)
        kind = spec["kind"]
        proba = score = label = None
        if kind == "mlp_clf":
            proba = lambda X: _expand(_mlp_out(tensors, "", spec, X),  # noqa: E731
                                      np.asarray(spec["present"]), spec["n_classes"])
        elif kind == "mlp_reg":
            score = lambda X: _mlp_out(tensors, "", spec, X)[:, 0]  # noqa: E731
        elif kind == "logistic":
            proba = lambda X: _logistic_proba(tensors, "", spec, X)  # noqa: E731
        elif kind == "ridge":
            score = lambda X: _ridge_score(tensors, "", spec, X)  # noqa: E731
        elif kind == "ordinal_at":
            proba = lambda X: _ordinal_at_proba(tensors, "", spec, X)  # noqa: E731
            label = lambda X: classes[_ordinal_at_label(tensors, "", spec, X)]  # noqa: E731
        else:
            score = lambda X: np.asarray(  # noqa: E731
                _score_of(tensors, "inner.", spec["inner"], X), dtype=float)
            proba = lambda X: _calibrated_proba(tensors, "", spec, X)  # noqa: E731
        n_cls = spec.get("n_classes")
        if n_cls is not None and n_cls != len(classes):
            raise s.fail("classes and n_classes differ")
        est = ArrayEstimator(kind, classes, d, proba, score, label)
    extra = sorted(set(tensors) - used)
    if extra:
        raise s.fail(f"tensors not in the spec: {', '.join(extra[:5])}")
    return est


# ----------------------------------------------------------------------------- files
def dumps(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    from safetensors.numpy import save

    return save(tensors, metadata=metadata)


def loads(data: bytes, where: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and the string metadata of a safetensors file (BundleError if malformed)."""
    from safetensors.numpy import load

    try:
        if len(data) < 8:
            raise ValueError("too short")
        (n,) = struct.unpack("<Q", data[:8])
        if n > MAX_HEADER or 8 + n > len(data):
            raise ValueError("header size out of range")
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
        meta = header.get("__metadata__") or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise ValueError("metadata is not a string map")
        tensors = load(data)
    except Exception as e:  # noqa: BLE001 - any parse failure of a crafted file
        raise BundleError(f"{where}: not a readable safetensors file ({type(e).__name__}: {e})"
                          ) from None
    return tensors, meta


# ----------------------------------------------------------------------------- equivalence
def check_equivalent(est: Any, arr: ArrayEstimator, X: Any) -> tuple[bool, float]:
    """(same?, max abs difference) of probabilities and continuous scores on inputs ``X``: the
    array form must reproduce the estimator within :data:`TOLERANCE` and give the same labels."""
    worst = 0.0
    try:
        for name in ("predict_proba", "predict_score"):
            mine = getattr(arr, name)
            theirs = getattr(est, name, None)
            if (mine is None) != (theirs is None):
                return False, float("inf")
            if mine is None:
                continue
            a = np.asarray(theirs(X), dtype=float)
            b = np.asarray(mine(X), dtype=float)
            if a.shape != b.shape or not np.all(np.isfinite(b)):
                return False, float("inf")
            if a.size:
                scale = 1.0 if name == "predict_proba" else max(1.0, float(np.abs(a).max()))
                worst = max(worst, float(np.abs(a - b).max()) / scale)
        same_labels = np.array_equal(np.asarray(est.predict(X)), np.asarray(arr.predict(X)))
    except (ValueError, TypeError, IndexError, FloatingPointError):
        return False, float("inf")
    return bool(same_labels and worst <= TOLERANCE), worst


# Texts every check set includes: whitespace, case, punctuation, non-Latin script, length.
EDGE_TEXTS = ("Ich  wohne\tseit zwei Jahren in Wien.\n\nDas ist GUT!", " ", "a", "ÄÖÜ ß é ñ 😀 中文",
              "x" * 300, "...,;:!?", "Hallo Hallo Hallo hallo")


def text_inputs(terms: Sequence[str], n: int = 64, seed: int = 0) -> np.ndarray:
    """Check texts for a text estimator: :data:`EDGE_TEXTS` plus ``n`` texts of 1 to 59 of
    ``terms`` (its vocabulary) joined by spaces."""
    rng = np.random.default_rng(seed)
    texts = list(EDGE_TEXTS)
    for _ in range(n):
        k = int(rng.integers(1, 60))
        texts.append(" ".join(rng.choice(list(terms), size=k)) if len(terms) else "x")
    return np.asarray(texts, dtype=object)


def feature_inputs(d: int, scalers: Sequence[tuple[np.ndarray, np.ndarray]] = (), n: int = 64,
                   seed: int = 0) -> np.ndarray:
    """Check rows for a hidden-state estimator of width ``d``: drawn around each ``(mean,
    scale)`` of its own scalers, else standard normal."""
    rng = np.random.default_rng(seed)
    if not scalers:
        return rng.standard_normal((n, d)).astype(np.float32)
    return np.vstack([(m + s * rng.standard_normal((n, d))).astype(np.float32)
                      for m, s in scalers])


def sample_terms(vocabularies: Sequence[Sequence[str]], k: int = 400, seed: int = 0) -> list[str]:
    """Up to ``k`` terms of each vocabulary, drawn without replacement (seeded)."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for v in vocabularies:
        if len(v):
            out += [v[int(j)] for j in rng.choice(len(v), size=min(k, len(v)), replace=False)]
    return out


def probe_inputs(est: Any, spec: dict[str, Any], tensors: dict[str, np.ndarray],
                 n: int = 64, seed: int = 0) -> Any:
    """Check inputs made from an array form itself: for hidden states, rows drawn around the
    estimator's own scaler statistics (else standard normal); for n-grams, texts made of its
    vocabulary plus whitespace, case, punctuation and non-Latin edge cases."""
    if spec["kind"] != "ngram":
        s = spec if spec["kind"] != "ordinal_calibrated" else spec["inner"]
        p = "" if s is spec else "inner."
        scalers = [(tensors[p + "mean"], tensors[p + "scale"])] if s.get("scaler") else []
        return feature_inputs(spec["n_features"], scalers, n, seed)
    vocabularies = [_Terms(tensors[f"part{i}.terms"].tobytes(), tensors[f"part{i}.offsets"])
                    for i in range(len(spec["parts"]))]
    return text_inputs(sample_terms(vocabularies, seed=seed), n, seed)


class _Terms(Sequence):
    """An array form's vocabulary as a sequence, decoding only the terms asked for."""

    def __init__(self, blob: bytes, offsets: np.ndarray) -> None:
        self.blob, self.offsets = blob, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, j):  # type: ignore[override]
        a, b = int(self.offsets[j]), int(self.offsets[j + 1])
        return self.blob[a:b].decode("utf-8", "surrogatepass")
