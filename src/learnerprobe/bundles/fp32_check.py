"""May a bundle trained on bf16 (or fp16) activations run on the fp32 ONNX graph?

Why: ``dtype = "auto"`` trains in bf16 on CPUs with native bf16, and such a bundle then stayed on
the torch path in ``predict`` (torch + transformers imports: seconds of every cold start), since
the fp32 graph is not the encoder its probe saw. Whether the difference matters is measurable:
at training time, the probe's probabilities on its own validation texts are computed from the
trained (bf16) states and from fp32 states of the same texts, model, layer and truncation. The
bundle records the comparison in its manifest (``preprocessing.extraction.fp32_graph``); the
fp32 graph is accepted only when no validation label changes and no probability moves by more
than :data:`TOLERANCE`. The ONNX graph itself matches the fp32 torch path within
``onnx_encoder.MAX_DIFF`` (checked at export), so the fp32 torch states stand for it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from learnerprobe.extract import extract
from learnerprobe.models.entry import ModelEntry
from learnerprobe.models.loading import load_model
from learnerprobe.models.pinning import verify_pin

#: Largest absolute probability difference (any class, any validation text) accepted between
#: the trained low-precision path and the fp32 graph. Measured on e5-small layer 5, 50 MERLIN
#: texts: bf16 vs fp32 moved probabilities by up to 0.0044 and changed no label.
TOLERANCE = 0.02
LOW_PRECISION = ("bfloat16", "bf16", "float16", "fp16", "half")


def _entry(model: dict[str, Any]) -> ModelEntry:
    fields = {k: v for k, v in model.items() if k in ModelEntry.__dataclass_fields__}
    fields["languages"] = tuple(fields.get("languages") or ())
    return ModelEntry(**fields)


def _proba(est: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities or an empty array, predicted labels)."""
    if getattr(est, "predict_proba", None) is not None:
        p = np.asarray(est.predict_proba(X), dtype=np.float64)
        return p, np.argmax(p, axis=1)
    return np.zeros((len(X), 0)), np.asarray(est.predict(X))


def fp32_check(estimator: Any, *, model: dict[str, Any], weights: dict[str, Any], layer: int,
               extraction: dict[str, Any], texts: Sequence[str], states: np.ndarray,
               tolerance: float = TOLERANCE) -> dict[str, Any]:
    """The manifest record: the estimator on ``states`` (the trained low-precision features of
    ``texts``) against the same estimator on fp32 states of ``texts``."""
    entry = _entry(model)
    folder = verify_pin(entry, weights, where="fp32 check")
    source = entry if folder is None else replace(entry, source=str(folder), revision=None)
    tok, mdl, _ = load_model(source, device="cpu", dtype="float32",
                             safetensors_only=folder is not None)
    acts = extract(list(texts), (tok, mdl, entry), layers=[int(layer)], device="cpu",
                   dtype="float32", max_length=extraction.get("max_length"),
                   chunking=extraction.get("chunking", "truncate"), cache=False, progress=False,
                   fingerprint="fp32-check", durable=False)
    p_low, y_low = _proba(estimator, np.asarray(states, dtype=np.float32))
    p_32, y_32 = _proba(estimator, np.asarray(acts.array[0], dtype=np.float32))
    diff = float(np.abs(p_low - p_32).max()) if p_low.size else 0.0
    changes = int(np.sum(y_low != y_32))
    return {"n_texts": len(texts), "max_abs_diff": round(diff, 6), "label_changes": changes,
            "tolerance": float(tolerance), "accepted": bool(diff <= tolerance and changes == 0)}


def with_fp32_check(extraction: dict[str, Any], estimator: Any, *, model: dict[str, Any],
                    weights: dict[str, Any], layer: int, texts: Sequence[str] | None,
                    states: np.ndarray | None, log: Any = print) -> dict[str, Any]:
    """``extraction`` with its ``fp32_graph`` record when the bundle was trained in low
    precision on one layer and its validation texts are given (else unchanged)."""
    if (extraction.get("dtype") not in LOW_PRECISION or texts is None or states is None
            or not len(texts)):
        return extraction
    rec = fp32_check(estimator, model=model, weights=weights, layer=layer, extraction=extraction,
                     texts=texts, states=states)
    verdict = "accepted" if rec["accepted"] else "refused: predict keeps the torch path"
    log(f"fp32 graph for this {extraction['dtype']} bundle {verdict} (validation texts: "
        f"max |dp| {rec['max_abs_diff']:.4f} <= {rec['tolerance']}, "
        f"{rec['label_changes']} label changes)")
    return {**extraction, "fp32_graph": rec}
