"""What a bundle knows about its own limits: conformal prediction sets and applicability flags.

Written by ``train`` from the grouped validation split it already holds out (no learner text is
stored, only numbers derived from them):

- ``conformal_scores``: the nonconformity score of each validation text's true label under the
  model trained without it (:mod:`learnerprobe.evaluation.conformal`), so ``predict`` can form a
  set at any coverage the user asks for;
- the training languages (the ``language`` flag: a text in another language, as told by
  py3langid's offline model);
- the 1st and 99th percentiles of training texts' word counts (the ``length`` flag);
- for hidden-state bundles, the mean and a Ledoit-Wolf shrinkage precision matrix of the training
  part's pooled states at the bundle's layer and a Mahalanobis threshold at the 95th percentile
  of the validation texts' distances (the ``unfamiliar`` flag; about 5 % of texts like the
  training texts are flagged by design);
- the validation ECE (top label) for the card.

Everything here is untrusted input when loaded (docs/SECURITY.md): the manifest part goes through
the strict schema, the tensors must have exactly the expected names, shapes, dtypes and finite
values in range, or the bundle is refused (:func:`load`). The file is listed and hashed in the
manifest like every bundle file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from learnerprobe.bundles import arrays as _arrays
from learnerprobe.errors import BundleError
from learnerprobe.evaluation import conformal
from learnerprobe.evaluation.reliability import ece

FORMAT = "learnerprobe-applicability/1"
FILE = "applicability.safetensors"
LENGTH_QUANTILES = (0.01, 0.99)  # the central 98 % of training texts' word counts
UNFAMILIAR_QUANTILE = 0.95  # validation texts beyond it are flagged: ~5 % by design
MAX_CAL = 1_000_000
FLAGS = ("language", "length", "unfamiliar")
OLD_BUNDLE_NOTE = ("this bundle predates prediction sets and applicability flags; retrain it "
                   "(learnerprobe train) to get them")


def word_count(text: str) -> int:
    return len(text.split())


@dataclass
class Applicability:
    """The manifest part (``spec``, JSON) and the tensors of the applicability file."""

    spec: dict[str, Any]
    tensors: dict[str, np.ndarray]


def fit(kind: str, val_proba: np.ndarray, y_val: np.ndarray, train_texts: list[str],
        languages: list[str], X_train: np.ndarray | None = None,
        X_val: np.ndarray | None = None) -> Applicability:
    """The statistics a bundle keeps (``X_*``: the layer's pooled states; None for text
    bundles, which get no ``unfamiliar`` flag). ``val_proba`` must come from a model that was
    not trained on the validation texts."""
    cal = conformal.true_scores(val_proba, y_val, kind).astype(np.float64)
    words = np.array([word_count(t) for t in train_texts], dtype=float)
    lo, hi = np.quantile(words, LENGTH_QUANTILES)
    tensors: dict[str, np.ndarray] = {"conformal_scores": np.clip(cal, 0.0, 1.0)}
    spec: dict[str, Any] = {
        "format": FORMAT, "file": FILE, "kind": kind, "n_calibration": int(len(cal)),
        "languages": sorted(set(languages)),
        "length": {"low": int(np.floor(lo)), "high": int(np.ceil(hi)),
                   "quantiles": list(LENGTH_QUANTILES)},
        "validation_ece": round(ece(val_proba, y_val), 6),
        "unfamiliar": None,
    }
    if X_train is not None and X_val is not None:
        from sklearn.covariance import LedoitWolf  # training only

        lw = LedoitWolf().fit(np.asarray(X_train, dtype=np.float64))
        mean = lw.location_.astype(np.float32)
        prec = lw.precision_.astype(np.float32)
        d = _mahalanobis(np.asarray(X_val, dtype=np.float32), mean, prec)
        thr = float(np.quantile(d, UNFAMILIAR_QUANTILE))
        tensors.update(mean=mean, precision=prec)
        spec["unfamiliar"] = {"metric": "mahalanobis-ledoit-wolf", "threshold": thr,
                              "quantile": UNFAMILIAR_QUANTILE, "width": int(len(mean))}
    return Applicability(spec, tensors)


def card_line(a: Applicability) -> str:
    """The card's calibration statement."""
    s = a.spec
    return (f"validation ECE {s['validation_ece']:.3f} (top label, 10 bins) on "
            f"{s['n_calibration']} grouped validation texts, the calibration set of the "
            "bundle's split-conformal prediction sets")


def _mahalanobis(X: np.ndarray, mean: np.ndarray, prec: np.ndarray) -> np.ndarray:
    D = X - mean[None]
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", D, prec, D), 0.0))


def dumps(a: Applicability) -> bytes:
    return _arrays.dumps(a.tensors, {"format": FORMAT})


def _fail(where: str, msg: str) -> BundleError:
    return BundleError(f"{where}: invalid applicability data: {msg}")


def _tensor(t: dict[str, np.ndarray], name: str, shape: tuple[int, ...], where: str
            ) -> np.ndarray:
    a = t.get(name)
    if a is None or a.dtype not in (np.float32, np.float64) or a.shape != shape:
        got = None if a is None else f"{a.dtype} {a.shape}"
        raise _fail(where, f"{name} must be a float array of shape {shape} (got {got})")
    if not np.all(np.isfinite(a)):
        raise _fail(where, f"{name} has non-finite values")
    return a


class Limits:
    """A bundle's loaded applicability data, checked; applies sets and flags to predictions."""

    def __init__(self, spec: dict[str, Any], tensors: dict[str, np.ndarray], where: str,
                 width: int | None) -> None:
        n = int(spec["n_calibration"])
        want = {"conformal_scores"} | ({"mean", "precision"} if spec.get("unfamiliar") else set())
        if set(tensors) != want:
            raise _fail(where, f"tensors {sorted(tensors)} are not the expected {sorted(want)}")
        cal = _tensor(tensors, "conformal_scores", (n,), where)
        if cal.min() < 0 or cal.max() > 1:
            raise _fail(where, "conformal scores must lie in [0, 1]")
        self.kind: str = spec["kind"]
        self.cal = np.sort(cal.astype(np.float64))
        self.languages = set(spec["languages"])
        self.low, self.high = int(spec["length"]["low"]), int(spec["length"]["high"])
        self.mean = self.prec = None
        self.threshold = None
        u = spec.get("unfamiliar")
        if u:
            d = int(u["width"])
            if width is not None and d != width:
                raise _fail(where, f"unfamiliar statistics have width {d}, the layer has {width}")
            self.mean = _tensor(tensors, "mean", (d,), where).astype(np.float32)
            self.prec = _tensor(tensors, "precision", (d, d), where).astype(np.float32)
            self.threshold = float(u["threshold"])

    def sets(self, proba: np.ndarray, coverage: float) -> np.ndarray:
        raw = conformal.sets(self.cal, conformal.label_scores(proba, self.kind), coverage)
        return conformal.never_empty(raw, proba)

    def distances(self, X: np.ndarray) -> np.ndarray | None:
        if self.mean is None:
            return None
        return _mahalanobis(np.asarray(X, dtype=np.float32)[:, : len(self.mean)], self.mean,
                            self.prec)

    def flags(self, text: str, language: str | None, distance: float | None
              ) -> tuple[dict[str, bool | None], dict[str, Any]]:
        """(flags, details) of one text: each flag True (fires), False, or None (this bundle
        cannot tell: no detected language, or no layer statistics)."""
        n = word_count(text)
        out: dict[str, bool | None] = {
            "language": None if language is None else language not in self.languages,
            "length": not self.low <= n <= self.high,
            "unfamiliar": None if distance is None else bool(distance > self.threshold),
        }
        info: dict[str, Any] = {"language": language,
                                "training_languages": sorted(self.languages),
                                "words": n, "training_words": [self.low, self.high]}
        if distance is not None:
            info["distance"] = round(float(distance), 4)
            info["threshold"] = round(float(self.threshold), 4)
        return out, info


def load(spec: dict[str, Any], data: bytes, where: str, width: int | None) -> Limits:
    """Check and load an applicability file (BundleError on anything unexpected)."""
    tensors, meta = _arrays.loads(data, where)
    if meta != {"format": FORMAT}:
        raise _fail(where, "not a learnerprobe applicability file")
    return Limits(spec, tensors, where, width)


# ----------------------------------------------------------------------------- language
_DETECTOR: Any = None


def detector() -> Any:
    """py3langid's offline model (inside the package: npz in LZMA, read without pickle),
    loaded once (~0.5 s), probabilities normalised."""
    global _DETECTOR
    if _DETECTOR is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        _DETECTOR = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _DETECTOR


MIN_LANGUAGE_PROB = 0.9  # below it the detector is unsure: no language flag either way


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language, None when the detector is unsure."""
    lang, prob = detector().classify(text)
    return str(lang) if prob >= MIN_LANGUAGE_PROB else None
