"""Apply bundles to new texts: the same preprocessing as in training, loaded once, batched.

`Predictor.load(dir, ...)` loads one bundle per task (cefr and/or l1) and `predict(texts)` returns,
per text, `{"cefr": {"label", "probabilities"[, "score"]}, "l1": {...}}` with a key only for the
tasks loaded. The label is the argmax of the probabilities (transfer methods with expected-value
or threshold decoding: their estimator's decoded level, `label_is_argmax = False`); bundles whose model is an
ordinal regressor also give the continuous level `score` (0 = first level), and their
probabilities come from an ordered-logit calibration fitted on validation data
(:mod:`learnerprobe.estimators.calibration`).

Loading verifies each bundle (:func:`learnerprobe.bundles.io.load_bundle`), optionally against a
pinned digest, and, for hidden-state bundles, that the model comes from a place a bundle may
name, needs no custom code (:mod:`learnerprobe.models.sources`) and has the pinned weights; the
model is then loaded from that checked folder. A probability or score that is not a finite
number is never returned (:class:`~learnerprobe.errors.NonFiniteOutputError`).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.bundles import applicability as ap
from learnerprobe.bundles.io import Bundle, load_bundle
from learnerprobe.errors import (
    ArgumentTypeError,
    BundleError,
    LearnerprobeError,
    NonFiniteOutputError,
)
from learnerprobe.evaluation.conformal import check_coverage
from learnerprobe.extract import extract
from learnerprobe.models.device import resolve_device
from learnerprobe.models.entry import ModelEntry
from learnerprobe.models.loading import load_model
from learnerprobe.models.pinning import verify_pin
from learnerprobe.prep.mask import mask_text
from learnerprobe.textinput import (
    MAX_CHARS,
    InputError,
    check_max_chars,
    check_texts,
    check_top_k,
)

DEFAULT_COVERAGE = 0.9


def _coverage(value: object) -> float:
    try:
        return check_coverage(value)
    except ValueError as e:
        raise InputError(str(e)) from None

#: What :meth:`Predictor.warm` scores (any text loads the same models).
WARM_TEXT = "Ich wohne seit zwei Jahren in Wien und arbeite in einer kleinen Firma."


@dataclass
class _Loaded:
    bundle: Bundle
    estimator: Any
    featurizer: str  # "text": estimator takes raw texts; "hidden": pooled hidden states at `layer`
    encoder: Any = None  # (tokenizer, model, entry, device, dtype), loaded once on first use
    folder: Path | None = None  # the checked model folder (hidden states; None: tiny models)
    warm: list[threading.Thread] = field(default_factory=list)  # see Predictor._warm_up
    limits: ap.Limits | None = None  # conformal scores and applicability statistics


def _entry(model: dict[str, Any]) -> Any:
    fields = {k: v for k, v in model.items() if k in ModelEntry.__dataclass_fields__}
    fields["languages"] = tuple(fields.get("languages") or ())
    return ModelEntry(**fields)


def _check_weights(b: Bundle) -> Path | None:
    """Refuse a hidden-state bundle whose model a bundle may not name, that needs custom code,
    or whose files are not the pinned ones (cached hashes); the checked folder."""
    m = b.manifest
    return verify_pin(_entry(m["model"]), m["weights"], where=str(b.path))


def _load_encoder(b: Bundle, dtype: str, folder: Path | None) -> tuple[Any, ...]:
    """The bundle's model, loaded once in the dtype used in training (so no per-call copies),
    from safetensors only, from the ``folder`` its pin was checked in, and checked against the
    bundle's layer and estimator width."""
    m = b.manifest
    entry = _entry(m["model"])
    device = resolve_device("auto")
    if device == "cpu" and dtype == "float16":
        dtype = "float32"
    source = entry if folder is None else replace(entry, source=str(folder), revision=None)
    tok, mdl, _ = load_model(source, device=device, dtype=dtype.replace("-autocast", ""),
                             safetensors_only=True)
    hf = getattr(mdl, "config", None)  # the transformers model config
    hf = getattr(hf, "text_config", None) or hf
    n_layers = getattr(hf, "num_hidden_layers", None)
    width = getattr(hf, "hidden_size", None)
    if isinstance(n_layers, int) and int(m["layer"]) > n_layers:
        raise BundleError(f"{b.path}: layer {m['layer']} is beyond the model's {n_layers} layers")
    pin_width = (m.get("weights") or {}).get("hidden_size")
    if isinstance(width, int) and pin_width is not None and width != pin_width:
        raise BundleError(f"{b.path}: the model's hidden size {width} is not the pinned {pin_width}")
    return tok, mdl, entry, device, dtype


def _quietly(job: Any) -> None:
    try:
        job()
    except Exception:  # noqa: BLE001, S110 - a warm-up; the first prediction repeats the step
        pass


def _refuse_non_finite(b: Bundle, proba: np.ndarray | None, score: np.ndarray | None) -> None:
    """The last line: no NaN or infinity is ever returned (printed as invalid JSON by the CLI,
    as null by the server), whatever an estimator gives."""
    for what, a in (("probabilities", proba), ("scores", score)):
        if a is not None and not np.all(np.isfinite(a)):
            raise NonFiniteOutputError(
                f"{b.path}: the {b.task} estimator gave non-finite {what} for this input; "
                "refusing to output them (the bundle's weights are extreme or broken)")


def _load_args(paths: tuple[Any, ...], expect_digests: Any, flags: dict[str, Any],
               encoder: Any) -> list[str] | None:
    """The argument checks of :meth:`Predictor.load`, before any file is read: a wrong type is
    an ArgumentTypeError naming the argument (not a TypeError from deep inside pathlib)."""
    if not paths:
        raise LearnerprobeError("no bundle given")
    for p in paths:
        if not isinstance(p, str | os.PathLike):
            raise ArgumentTypeError(f"bundle path must be a str or os.PathLike, not "
                                    f"{type(p).__name__}")
    for name, v in flags.items():
        if not isinstance(v, bool):
            raise ArgumentTypeError(f"{name} must be True or False, not {type(v).__name__}")
    if encoder not in ("auto", "onnx", "torch"):
        raise LearnerprobeError(f"encoder must be auto, onnx or torch (got {encoder!r})")
    if expect_digests is None:
        return None
    if isinstance(expect_digests, str):
        expect_digests = [expect_digests]
    if not isinstance(expect_digests, list | tuple) or not all(
            isinstance(d, str) for d in expect_digests):
        raise ArgumentTypeError("expect_digests must be a list of digest strings (one per "
                                f"bundle), not {type(expect_digests).__name__}")
    if len(expect_digests) != len(paths):
        raise LearnerprobeError(
            f"{len(expect_digests)} expected digest(s) for {len(paths)} bundle(s): give one "
            "digest per bundle, in the same order"
        )
    return list(expect_digests)


def _label(labels: Sequence[str], c: Any) -> str:
    """Estimators trained on level indices return ints; map them to the bundle's label names."""
    return labels[int(c)] if isinstance(c, (int, np.integer)) else str(c)


class Predictor:
    """One loaded model per task; thread-safe `predict` (the model is shared across requests)."""

    def __init__(self, loaded: dict[str, _Loaded]):
        self._loaded = loaded
        self._lock = threading.Lock()
        self._encoder: Any = None
        self.encoder_mode = "auto"
        self.torch_dtype: str | None = None  # benchmarks: the torch encoder in another dtype
        self.max_chars = MAX_CHARS  # longest text `predict` accepts (the server's limit too)

    @classmethod
    def load(cls, *paths: str | Path, expect_digests: Sequence[str] | None = None,
             allow_version_mismatch: bool = False, arrays: bool = True,
             encoder: str = "auto", max_chars: int = MAX_CHARS,
             torch_dtype: str | None = None) -> Predictor:
        """Load and verify bundles (one per task).

        ``arrays``: apply a bundle's estimator through its array form when it has one (numpy
        only: no scikit-learn or skops import; :mod:`learnerprobe.bundles.arrays`), else and
        with ``arrays=False`` through the skops file. ``encoder``: how hidden-state bundles run
        their model: "onnx" (onnxruntime, no torch; the graph exported locally from the pinned
        weights on first use, :mod:`learnerprobe.bundles.onnx_encoder`), "torch", or "auto"
        (ONNX where it applies -- fp32 BERT encoders, one layer, truncation -- else torch).

        ``expect_digests``: one trusted :func:`~learnerprobe.bundles.integrity.bundle_digest`
        per path, in the same order; a bundle with any other content is refused. ``allow_version_mismatch``
        accepts bundles trained with other library versions (otherwise scikit-learn minor-version
        changes are refused and torch/transformers/tokenizers changes warn). ``max_chars``: the
        longest text `predict` accepts (a TextTooLongError beyond; memory grows with length).
        ``torch_dtype`` ("float32", "bfloat16"): run the torch encoder in this dtype instead of
        the one the bundle was trained in -- for benchmarks of both paths; probabilities move.
        """
        expect_digests = _load_args(
            paths, expect_digests, {"allow_version_mismatch": allow_version_mismatch,
                                    "arrays": arrays}, encoder)
        check_max_chars(max_chars)
        loaded: dict[str, _Loaded] = {}
        for i, p in enumerate(paths):
            want = expect_digests[i] if expect_digests is not None else None
            b = load_bundle(p, want, allow_version_mismatch=allow_version_mismatch)
            if b.task in loaded:
                raise BundleError(f"two bundles for task {b.task!r}: {loaded[b.task].bundle.path}, {p}")
            feat = b.manifest["preprocessing"]["features"]
            est = (b.load_array_estimator() if arrays else None) or b.load_estimator()
            folder = _check_weights(b) if feat == "hidden" else None
            loaded[b.task] = _Loaded(bundle=b, estimator=est, featurizer=feat, folder=folder,
                                     limits=b.load_limits())
        out = cls(loaded)
        out.encoder_mode = encoder
        out.torch_dtype = torch_dtype
        out.max_chars = max_chars
        out._warm_up()
        return out

    def _warm_up(self) -> None:
        """Start, in background threads, what the first prediction would otherwise wait for:
        the masking lexicon (~1 CPU-second, Python) and an already exported ONNX encoder (its
        session and tokenizer are built in native code), so they overlap in a cold process.
        Failures are left to the first call, which repeats the step in the caller's thread."""
        for lo in self._loaded.values():
            pre = lo.bundle.manifest.get("preprocessing", {})
            jobs: list[Any] = []
            if pre.get("mask"):
                jobs.append(lambda lang=pre.get("language") or "en": mask_text("Warm-up.", lang))
            if lo.limits is not None:
                jobs.append(ap.detector)
            if lo.featurizer == "hidden" and self.encoder_mode != "torch":
                def onnx(lo: _Loaded = lo) -> None:
                    lo.encoder = self._onnx_encoder(lo, export=False)
                jobs.append(onnx)
            for job in jobs:
                t = threading.Thread(target=_quietly, args=(job,), daemon=True)
                t.start()
                lo.warm.append(t)

    @staticmethod
    def _join(lo: _Loaded) -> None:
        while lo.warm:
            lo.warm.pop().join()

    @property
    def tasks(self) -> list[str]:
        return list(self._loaded)

    @property
    def manifests(self) -> dict[str, dict[str, Any]]:
        return {t: lo.bundle.manifest for t, lo in self._loaded.items()}

    @property
    def digests(self) -> dict[str, str]:
        return {t: lo.bundle.digest for t, lo in self._loaded.items()}

    @property
    def engines(self) -> dict[str, dict[str, str | None]]:
        """Per task, how it runs: estimator "arrays" (numpy) or "skops"; encoder "onnx",
        "torch", or None (text bundles, or not loaded yet: the encoder loads on first use)."""
        out: dict[str, dict[str, str | None]] = {}
        for t, lo in self._loaded.items():
            kind = getattr(lo.estimator, "kind", None)
            enc = None if lo.encoder is None else ("torch" if isinstance(lo.encoder, tuple) else "onnx")
            out[t] = {"estimator": f"arrays:{kind}" if kind else "skops", "encoder": enc}
        return out

    def mask(self, text: str, task: str | None = None) -> dict[str, Any]:
        """The masking a bundle applies, with spans, so a UI can show what was hidden.

        Without ``task``: the masking of the first loaded bundle that masks (so `cefr` + `l1`
        shows the l1 bundle's masking when only it masks); the result's ``task`` key names it,
        and ``note`` says so when several masking bundles use different languages.
        """
        if task is not None:
            if task not in self._loaded:
                raise LearnerprobeError(f"no bundle for task {task!r} (loaded: {', '.join(self.tasks)})")
            chosen = [task]
        else:
            chosen = [t for t in self.tasks if self._pre(t).get("mask")]
        if not chosen or not self._pre(chosen[0]).get("mask"):
            return {"text": text, "spans": []}
        first = chosen[0]
        lang = self._pre(first).get("language") or "en"
        res = mask_text(text, lang)
        spans = [
            {"start": s[0], "end": s[1], "original": s[2], "replacement": s[3], "category": s[4]}
            for s in res.spans
        ]
        out: dict[str, Any] = {"text": res.text, "spans": spans, "task": first}
        langs = {t: self._pre(t).get("language") or "en" for t in chosen}
        if len(set(langs.values())) > 1:
            out["note"] = ("bundles mask in different languages ("
                           + ", ".join(f"{t}: {v}" for t, v in langs.items())
                           + f"); shown: the {first} bundle's masking")
        return out

    def _pre(self, task: str) -> dict[str, Any]:
        return self._loaded[task].bundle.manifest.get("preprocessing", {})

    def _prepare(self, lo: _Loaded, texts: Sequence[str]) -> list[str]:
        self._join(lo)
        pre = lo.bundle.manifest.get("preprocessing", {})
        out = [" ".join(t.split()) if pre.get("normalise_whitespace") else t for t in texts]
        if pre.get("mask"):
            lang = pre.get("language") or "en"
            out = [mask_text(t, lang).text for t in out]
        return out

    def _onnx_encoder(self, lo: _Loaded, export: bool = True) -> Any:
        """The ONNX encoder when it applies (None: use torch; with encoder="onnx" an error)."""
        # start-up: the encoder stack loads for hidden-state bundles only
        from learnerprobe.bundles import onnx_encoder as ox

        if self.encoder_mode == "torch":
            return None
        try:
            args = ox.bundle_encoder_args(lo.bundle.manifest,
                                          allow_dtype_change=self.encoder_mode == "onnx")
            return ox.load_encoder(*args, export=export, log=ox.log_stderr)
        except ox.OnnxUnavailable as e:
            if self.encoder_mode == "onnx":
                raise BundleError(f"{lo.bundle.path}: the ONNX encoder does not apply: {e}") from None
            return None

    def warm(self, text: str = WARM_TEXT) -> float:
        """Load now what a first prediction would load (every bundle's encoder, the masking
        lexicon, lazily built graphs) by scoring one text; the seconds it took. A server calls
        this before it reports ready, so its first request waits for no model."""
        import time

        t0 = time.perf_counter()
        for lo in self._loaded.values():
            self._join(lo)
        self.predict([text])
        return time.perf_counter() - t0

    @staticmethod
    def _encoder_key(lo: _Loaded) -> tuple[str, ...]:
        """Bundles with equal keys run the same encoder on the same inputs: one forward pass
        (and one loaded model) serves them all."""
        m = lo.bundle.manifest
        pre = m.get("preprocessing", {})
        return (str((m.get("weights") or {}).get("sha256")), json.dumps(m.get("model"), sort_keys=True),
                json.dumps(pre.get("extraction") or {}, sort_keys=True),
                ",".join(str(x) for x in (m.get("layers") or [m["layer"]])))

    def _shared_encoder(self, lo: _Loaded) -> Any:
        """The encoder of another loaded bundle with the same model, layers and extraction."""
        key = self._encoder_key(lo)
        for other in self._loaded.values():
            if (other is not lo and other.encoder is not None and other.featurizer == "hidden"
                    and self._encoder_key(other) == key):
                return other.encoder
        return None

    def _features(self, lo: _Loaded, texts: list[str],
                  shared: dict[tuple, np.ndarray] | None = None) -> Any:
        if lo.featurizer == "text":
            return np.asarray(texts, dtype=object)
        key = (*self._encoder_key(lo), *texts)
        if shared is not None and key in shared:  # another bundle ran this forward already
            return self._surface(lo, shared[key], texts)
        X = self._states(lo, texts)
        if shared is not None:
            shared[key] = X
        return self._surface(lo, X, texts)

    def _states(self, lo: _Loaded, texts: list[str]) -> np.ndarray:
        """Pooled hidden states of the bundle's layer(s) (texts x width)."""
        self._join(lo)
        m = lo.bundle.manifest
        ex = m.get("preprocessing", {}).get("extraction") or {}
        if lo.encoder is None:
            lo.encoder = self._shared_encoder(lo) or self._onnx_encoder(lo) or _load_encoder(
                lo.bundle, self.torch_dtype or ex.get("dtype") or "float32", lo.folder)
        if not isinstance(lo.encoder, tuple):  # the ONNX graph: pooled states of the one layer
            return np.asarray(lo.encoder(texts), dtype=np.float32)
        tok, model, entry, device, dtype = lo.encoder
        want = [int(x) for x in (m.get("layers") or [m["layer"]])]  # several: scalar_mix
        acts = extract(
            texts, (tok, model, entry), layers=want, device=device, dtype=dtype,
            max_length=ex.get("max_length"), chunking=ex.get("chunking", "truncate"),
            cache=False, progress=False, fingerprint="predict", durable=False,
        )
        if len(want) == 1:
            return np.array(acts.array[0], dtype=np.float32)
        # side by side, in the manifest's order (as in training)
        return np.concatenate([np.asarray(acts.layer(i), dtype=np.float32) for i in want], 1)

    def _surface(self, lo: _Loaded, X: np.ndarray, texts: list[str]) -> np.ndarray:
        k = int(lo.bundle.manifest.get("preprocessing", {}).get("surface") or 0)
        if k:  # surface columns as the transfer stage builds them (imported only when needed)
            # scikit-learn: surface columns only; a cold predict never imports it
            from learnerprobe.estimators.probes.surface import surface_columns, surface_features

            S = surface_columns(surface_features(texts))
            if S.shape[1] != k:
                raise BundleError(f"{lo.bundle.path}: the bundle expects {k} surface columns, "
                                  f"this learnerprobe computes {S.shape[1]}")
            X = np.hstack([X, S])
        return X

    def predict_task(self, task: str, texts: Sequence[str], top_k: int | None = None,
                     coverage: float = DEFAULT_COVERAGE,
                     languages: Sequence[str | None] | None = None,
                     *, _shared: dict[tuple, np.ndarray] | None = None) -> list[dict]:
        """One task's results (see :meth:`predict`); ``languages``: each text's detected
        language when the caller has already detected it."""
        top_k = check_top_k(top_k)
        coverage = _coverage(coverage)
        lo = self._loaded[task]
        labels = lo.bundle.labels
        prepared = self._prepare(lo, texts)
        score = proba = pred = None
        with self._lock, np.errstate(all="ignore"):  # shared objects: serialise; checked below
            X = self._features(lo, prepared, _shared)
            est = lo.estimator
            if getattr(est, "predict_score", None) is not None:  # None: array form without
                score = np.asarray(est.predict_score(X), dtype=float)
            if getattr(est, "predict_proba", None) is not None:
                proba = np.asarray(est.predict_proba(X), dtype=float)
                if not getattr(est, "label_is_argmax", True):  # EV / threshold decoding
                    pred = est.predict(X)
            else:  # an uncalibrated ordinal regressor: a level and a score, no probabilities
                pred = est.predict(X)
        _refuse_non_finite(lo.bundle, proba, score)
        classes = [_label(labels, c) for c in getattr(est, "classes_", range(len(labels)))]
        res: list[dict[str, Any]] = []
        if proba is None:
            for i, p in enumerate(pred):
                r: dict[str, Any] = {"label": _label(labels, p), "probabilities": {}}
                if score is not None:
                    r["score"] = round(float(score[i]), 6)
                res.append(r)
            return self._limits(lo, res, texts, X, None, classes, coverage, languages)
        for i, row in enumerate(proba):
            order = np.argsort(-row, kind="stable")
            if top_k:
                order = order[:top_k]
            probs = {classes[j]: round(float(row[j]), 6) for j in order}
            top = classes[int(np.argmax(row))] if pred is None else _label(labels, pred[i])
            r = {"label": top, "probabilities": probs}
            if score is not None:
                r["score"] = round(float(score[i]), 6)  # level index on a continuous scale
            res.append(r)
        return self._limits(lo, res, texts, X, proba, classes, coverage, languages)

    def _limits(self, lo: _Loaded, res: list[dict[str, Any]], texts: Sequence[str], X: Any,
                proba: np.ndarray | None, classes: list[str], coverage: float,
                languages: Sequence[str | None] | None) -> list[dict[str, Any]]:
        """Add the prediction ``set`` at ``coverage`` and the ``flags`` (with ``checks``: the
        numbers behind them) to each result; a bundle without the statistics says so in
        ``note`` instead."""
        lim = lo.limits
        if lim is None:
            for r in res:
                r["note"] = ap.OLD_BUNDLE_NOTE
            return res
        sets = lim.sets(proba, coverage) if proba is not None else None
        dist = lim.distances(X) if lo.featurizer == "hidden" else None
        if languages is None:
            languages = [ap.detect_language(t) for t in texts]
        for i, r in enumerate(res):
            if sets is not None:
                r["set"] = [c for c, on in zip(classes, sets[i], strict=True) if on]
                r["coverage"] = coverage
            flags, info = lim.flags(texts[i], languages[i],
                                    None if dist is None else float(dist[i]))
            r["flags"] = flags
            r["checks"] = info
        return res

    def adapt(self, texts: Sequence[str], levels: Sequence[str], *, method: str = "prior_pull",
              out: str | Path | None = None, labelled_sha256: str | None = None
              ) -> Predictor:
        """This predictor's CEFR bundle adapted to a new corpus from labelled texts of it,
        written as an ordinary bundle (``out``; None: a new temporary folder) and loaded.

        ``method``: an adapt method (``methods.registry``, task ``adapt``, bundleable:
        shift, cutpoints, prior_pull, pull_cuts, or the baseline probe_k). The bundle's estimator is the
        source: read, never refitted; the method is fitted on these texts only. Its manifest
        records the method, k, ``labelled_sha256`` (the labelled file's digest; default: of the
        texts and levels) and the leave-one-out validation on the k texts (each text predicted
        by the method refitted on the others, strength chosen again inside them) beside the
        source's own scores on them. Refuses (LearnerprobeError, one line) a bundle that is
        not a hidden-state CEFR one, an unknown method, a level outside the bundle's scheme and
        fewer texts than the method needs."""
        # start-up: the adapt methods (scikit-learn, scipy) load only when adapting
        from learnerprobe.bundles.adapted import adapt_bundle

        if "cefr" not in self._loaded:
            raise LearnerprobeError(f"adapt needs a CEFR bundle (loaded: {', '.join(self.tasks)})")
        lo = self._loaded["cefr"]
        if lo.featurizer != "hidden":
            raise LearnerprobeError(f"{lo.bundle.path}: adapt works on hidden-state CEFR bundles "
                                    "(this one reads the text itself)")
        if isinstance(texts, str) or isinstance(levels, str):
            raise ArgumentTypeError("texts and levels must be lists of strings")
        texts = check_texts(list(texts), max_chars=self.max_chars)
        with self._lock, np.errstate(all="ignore"):
            path = adapt_bundle(lo.bundle, lambda t: self._features(lo, self._prepare(lo, t)),
                                texts, [str(v) for v in levels], method=method, out=out,
                                labelled_sha256=labelled_sha256)
        return Predictor.load(path, encoder=self.encoder_mode, max_chars=self.max_chars)

    def predict(self, texts: Sequence[str], top_k: int | None = None,
                coverage: float = DEFAULT_COVERAGE) -> list[dict[str, Any]]:
        """Predict every loaded task for each text; refuses empty, invisible-only, binary,
        non-Unicode or over-long (`max_chars`) texts with a TextInputError, a `top_k` other
        than None or a whole number >= 1 or a ``coverage`` outside (0, 1) with an InputError
        (both LearnerprobeErrors), and texts that are not a sequence (a generator, a set) with
        an ArgumentTypeError.

        Each task's result also has ``set`` (the labels that hold the true one with probability
        ``coverage``, split-conformal on the bundle's validation texts; a contiguous range of
        levels for CEFR) and ``coverage``, and ``flags``: ``language`` (the detected language is
        not one the bundle was trained on), ``length`` (word count outside the central 98 % of
        its training texts), ``unfamiliar`` (the text's state at the bundle's layer is farther
        from the training texts than 95 % of its validation texts); each True, False, or None
        when the bundle cannot tell; ``checks`` holds the numbers behind them. A bundle trained
        before these existed predicts without them and says so in ``note``."""
        if not isinstance(texts, Sequence) and not hasattr(texts, "__array__"):
            raise ArgumentTypeError(f"texts must be a list of strings, not "
                                    f"{type(texts).__name__} (pass list(texts))")
        check_top_k(top_k)
        coverage = _coverage(coverage)
        texts = check_texts(texts, max_chars=self.max_chars)
        out: list[dict[str, Any]] = [{} for _ in texts]
        langs = None
        if any(lo.limits is not None for lo in self._loaded.values()):
            for lo in self._loaded.values():
                self._join(lo)
            langs = [ap.detect_language(t) for t in texts]  # once for every task
        shared: dict[tuple, np.ndarray] = {}  # one forward for bundles on the same encoder
        for task in self._loaded:
            for i, r in enumerate(self.predict_task(task, texts, top_k=top_k, coverage=coverage,
                                                    languages=langs, _shared=shared)):
                out[i][task] = r
        return out
