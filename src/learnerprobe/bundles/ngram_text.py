"""scikit-learn's TF-IDF char/word n-gram features in plain Python and numpy.

Why a second implementation: importing scikit-learn alone costs ~1.9 s (scipy), and
``skops.io`` another ~3.5 s, of a cold `learnerprobe predict` whose goal is 3 s. What is
replicated is only the configuration :class:`learnerprobe.estimators.nli.ngram.NgramClassifier`
builds (``TfidfVectorizer`` with ``analyzer`` "char" or "word", a plain ``token_pattern`` without
groups, no accent stripping, stop words, custom preprocessor or tokenizer, ``norm="l2"``,
``use_idf=True``), copied from scikit-learn 1.9 (``_char_ngrams``, ``_word_ngrams``,
``TfidfTransformer.transform``). It is never trusted on its own: a bundle stores its array form
only when, at save time, these features through the stored classifier give the same
probabilities as the fitted scikit-learn estimator (:func:`learnerprobe.bundles.arrays.
check_equivalent`); any other vectoriser keeps the skops path.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from itertools import chain

import numpy as np

_WHITE_SPACES = re.compile(r"\s\s+")  # sklearn.feature_extraction.text._white_spaces


def char_ngrams(text: str, lo: int, hi: int) -> list[str]:
    """``TfidfVectorizer(analyzer="char")._char_ngrams``: whitespace runs become one space."""
    text = _WHITE_SPACES.sub(" ", text)
    n_text = len(text)
    out = list(text) if lo == 1 else []
    start = 2 if lo == 1 else lo
    for n in range(start, min(hi + 1, n_text + 1)):
        out += map(text.__getitem__, map(slice, range(n_text - n + 1), range(n, n_text + 1)))
    return out


def word_ngrams(tokens: list[str], lo: int, hi: int) -> list[str]:
    """``_word_ngrams``: tokens, then their n-grams joined by one space."""
    if hi == 1:
        return tokens
    out = list(tokens) if lo == 1 else []
    start = 2 if lo == 1 else lo
    n_tok = len(tokens)
    for n in range(start, min(hi + 1, n_tok + 1)):
        out.extend(" ".join(tokens[i : i + n]) for i in range(n_tok - n + 1))
    return out


class TfidfPart:
    """One fitted ``TfidfVectorizer`` as a vocabulary, idf weights and its analyzer settings."""

    def __init__(self, analyzer: str, ngram_range: tuple[int, int], lowercase: bool,
                 token_pattern: str | None, vocab: dict[str, int], idf: np.ndarray,
                 sublinear_tf: bool) -> None:
        self.analyzer = analyzer
        self.lo, self.hi = int(ngram_range[0]), int(ngram_range[1])
        self.lowercase = lowercase
        self.pattern = re.compile(token_pattern) if analyzer == "word" else None
        self.vocab = vocab
        self.idf = idf
        self.sublinear_tf = sublinear_tf

    def terms(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self.analyzer == "char":
            return char_ngrams(text, self.lo, self.hi)
        return word_ngrams(self.pattern.findall(text), self.lo, self.hi)

    def rows(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The batch's TF-IDF rows as (row index, column, value) triplets: sublinear tf, idf
        weights and l2 row norms as ``TfidfTransformer`` applies them, in ``idf``'s dtype."""
        keys, counts, lens = [], [], []
        get = self.vocab.get
        for text in texts:
            c = Counter(map(get, self.terms(text)))  # counted in C
            c.pop(None, None)  # terms outside the vocabulary
            keys.append(c.keys())
            counts.append(c.values())
            lens.append(len(c))
        n = sum(lens)
        cols = np.fromiter(chain.from_iterable(keys), dtype=np.int64, count=n)
        vals = np.fromiter(chain.from_iterable(counts), dtype=self.idf.dtype, count=n)
        row = np.repeat(np.arange(len(texts)), lens)
        if self.sublinear_tf:
            np.log(vals, vals)
            vals += 1
        vals *= self.idf[cols]
        sq = np.bincount(row, weights=vals.astype(np.float64) ** 2, minlength=len(texts))
        norm = np.sqrt(sq)
        norm[norm == 0] = 1.0
        vals /= norm.astype(vals.dtype)[row]
        return row, cols, vals


def decisions(parts: Sequence[tuple[TfidfPart, int]], coef: np.ndarray, intercept: np.ndarray,
              texts: Sequence[str]) -> np.ndarray:
    """``texts x classes`` linear decisions ``X @ coef.T + intercept`` of the concatenated
    features (each part at its column offset), without building the sparse matrix.
    ``coef`` may be given Fortran-ordered (its transpose then gathers contiguous rows)."""
    coef_t = coef.T
    out = np.zeros((len(texts), coef_t.shape[1]), dtype=np.float64)
    for part, offset in parts:
        row, cols, vals = part.rows(texts)
        contrib = vals.astype(np.float64)[:, None] * coef_t[cols + offset]
        for c in range(out.shape[1]):
            out[:, c] += np.bincount(row, weights=contrib[:, c], minlength=len(texts))
    return out + intercept
