"""Apply bundles to new texts: the same preprocessing as in training, loaded once, batched.

`Predictor.load(dir, ...)` loads one bundle per task (cefr and/or l1) and `predict(texts)` returns,
per text, `{"cefr": {"label", "probabilities"}, "l1": {...}}` with a key only for the tasks loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.bundle import Bundle, load_bundle
from learnerprobe.errors import BundleError, LearnerprobeError


@dataclass
class _Loaded:
    bundle: Bundle
    estimator: Any
    featurizer: str  # "text": estimator takes raw texts; "hidden": pooled hidden states at `layer`
    encoder: Any = None  # (tokenizer, model, entry, device, dtype), loaded once on first use


def _load_encoder(model: dict[str, Any], dtype: str) -> tuple[Any, ...]:
    """The bundle's model, loaded once in the dtype used in training (so no per-call copies)."""
    from learnerprobe.extract.engine import resolve_device
    from learnerprobe.models.entry import ModelEntry
    from learnerprobe.models.loading import load_model

    fields = {k: v for k, v in model.items() if k in ModelEntry.__dataclass_fields__}
    fields["languages"] = tuple(fields.get("languages") or ())
    entry = ModelEntry(**fields)
    device = resolve_device("auto")
    if device == "cpu" and dtype == "float16":
        dtype = "float32"
    tok, mdl, entry = load_model(entry, device=device, dtype=dtype.replace("-autocast", ""))
    return tok, mdl, entry, device, dtype


def _label(labels: Sequence[str], c: Any) -> str:
    """Estimators trained on level indices return ints; map them to the bundle's label names."""
    return labels[int(c)] if isinstance(c, (int, np.integer)) else str(c)


class Predictor:
    """One loaded model per task; thread-safe `predict` (the model is shared across requests)."""

    def __init__(self, loaded: dict[str, _Loaded]):
        self._loaded = loaded
        self._lock = threading.Lock()
        self._encoder: Any = None

    @classmethod
    def load(cls, *paths: str | Path) -> Predictor:
        loaded: dict[str, _Loaded] = {}
        for p in paths:
            b = load_bundle(p)
            if b.task in loaded:
                raise BundleError(f"two bundles for task {b.task!r}: {loaded[b.task].bundle.path}, {p}")
            feat = b.manifest.get("preprocessing", {}).get("features", "text")
            if feat not in ("text", "hidden"):
                raise BundleError(f"{p}: unknown feature kind {feat!r}")
            loaded[b.task] = _Loaded(bundle=b, estimator=b.load_estimator(), featurizer=feat)
        if not loaded:
            raise LearnerprobeError("no bundle given")
        return cls(loaded)

    @property
    def tasks(self) -> list[str]:
        return list(self._loaded)

    @property
    def manifests(self) -> dict[str, dict[str, Any]]:
        return {t: lo.bundle.manifest for t, lo in self._loaded.items()}

    def mask(self, text: str, task: str | None = None) -> dict[str, Any]:
        """The masking a bundle applies, with spans, so a UI can show what was hidden."""
        lo = self._loaded[task or self.tasks[0]]
        pre = lo.bundle.manifest.get("preprocessing", {})
        if not pre.get("mask"):
            return {"text": text, "spans": []}
        from learnerprobe.prep.mask import mask_text

        res = mask_text(text, pre.get("language") or "en")
        spans = [
            {"start": s[0], "end": s[1], "original": s[2], "replacement": s[3], "category": s[4]}
            for s in res.spans
        ]
        return {"text": res.text, "spans": spans}

    def _prepare(self, lo: _Loaded, texts: Sequence[str]) -> list[str]:
        pre = lo.bundle.manifest.get("preprocessing", {})
        out = [" ".join(t.split()) if pre.get("normalise_whitespace") else t for t in texts]
        if pre.get("mask"):
            from learnerprobe.prep.mask import mask_text

            lang = pre.get("language") or "en"
            out = [mask_text(t, lang).text for t in out]
        return out

    def _features(self, lo: _Loaded, texts: list[str]) -> Any:
        if lo.featurizer == "text":
            return np.asarray(texts, dtype=object)
        from learnerprobe.extract import extract

        m = lo.bundle.manifest
        ex = m.get("preprocessing", {}).get("extraction", {})
        if lo.encoder is None:
            lo.encoder = _load_encoder(m["model"], ex.get("dtype") or "float32")
        tok, model, entry, device, dtype = lo.encoder
        acts = extract(
            texts, (tok, model, entry), layers=[int(m["layer"])], device=device, dtype=dtype,
            max_length=ex.get("max_length"), chunking=ex.get("chunking", "truncate"),
            cache=False, progress=False, fingerprint="predict", durable=False,
        )
        return np.array(acts.array[0], dtype=np.float32)

    def predict_task(self, task: str, texts: Sequence[str], top_k: int | None = None) -> list[dict]:
        lo = self._loaded[task]
        labels = lo.bundle.labels
        prepared = self._prepare(lo, texts)
        with self._lock:  # torch/sklearn objects are shared; serialise the forward pass
            X = self._features(lo, prepared)
            est = lo.estimator
            if hasattr(est, "predict_proba"):
                proba = np.asarray(est.predict_proba(X), dtype=float)
                pred = None
            else:  # ordinal regressors give a level and a continuous score, no probabilities
                proba = None
                pred = est.predict(X)
                score = est.predict_score(X) if hasattr(est, "predict_score") else None
        classes = [_label(labels, c) for c in getattr(est, "classes_", range(len(labels)))]
        res = []
        if proba is None:
            for i, p in enumerate(pred):
                r: dict[str, Any] = {"label": _label(labels, p), "probabilities": {}}
                if score is not None:
                    r["score"] = round(float(score[i]), 6)  # level index on a continuous scale
                res.append(r)
            return res
        for row in proba:
            order = np.argsort(-row)
            if top_k:
                order = order[:top_k]
            probs = {classes[i]: round(float(row[i]), 6) for i in order}
            res.append({"label": classes[int(np.argmax(row))], "probabilities": probs})
        return res

    def predict(self, texts: Sequence[str], top_k: int | None = None) -> list[dict[str, Any]]:
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of texts, not a single string")
        out: list[dict[str, Any]] = [{} for _ in texts]
        for task in self._loaded:
            for i, r in enumerate(self.predict_task(task, texts, top_k=top_k)):
                out[i][task] = r
        return out
