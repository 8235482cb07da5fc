"""A synthetic study of any size: records and memory-mapped activations, no model, no corpus.

``learnerprobe bench study --synthetic`` runs a config on it to measure time and memory at the
size of a real study (corpora x texts x layers x hidden) on a machine without the corpora or the
model, and the memory tests use it at 20,000 texts. The activations are written to a ``.npy``
file block by block and read back memory-mapped, as the activation cache serves them
(:mod:`learnerprobe.extract.cache`), so the study sees the same kind of array as a real run.

The data are random but not meaningless: the text length grows with the level (the surface
baseline learns something), every layer carries the level along one direction with a strength
that peaks in the middle layers (not separable: probes score about as on real corpora), and
every corpus is shifted along its own direction (what the transfer methods are for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.config.study import StudyConfig
from learnerprobe.errors import ConfigError
from learnerprobe.records import LearnerText
from learnerprobe.tasks import get_task

LEVELS = ("A1", "A2", "B1", "B2", "C1")
LANGUAGES = ("cs", "de", "it")
WORDS = ("haus", "gut", "schnell", "kind", "wasser", "stadt", "sprechen", "freundlich", "weil",
         "obwohl", "deshalb", "trotzdem")
MODEL = "synthetic"
SHAPE = re.compile(r"^(\d+)x(\d+)x(\d+)x(\d+)$")


@dataclass(frozen=True)
class SyntheticShape:
    """corpora x texts x layers x hidden, e.g. ``7x7163x13x384`` (e5-small on 7 corpora)."""

    corpora: int
    texts: int
    layers: int
    hidden: int

    @classmethod
    def parse(cls, spec: str) -> SyntheticShape:
        m = SHAPE.match(spec.strip().lower())
        if m is None:
            raise ConfigError(f"synthetic study {spec!r}: give CORPORAxTEXTSxLAYERSxHIDDEN, "
                              "e.g. 7x7163x13x384")
        shape = cls(*(int(g) for g in m.groups()))
        if shape.corpora < 2 or shape.texts < 10 * shape.corpora * len(LEVELS):
            raise ConfigError(f"synthetic study {spec!r}: needs at least 2 corpora and 50 "
                              "texts per corpus")
        if shape.layers < 1 or shape.hidden < 2:
            raise ConfigError(f"synthetic study {spec!r}: needs a layer and 2 hidden units")
        return shape

    @property
    def label(self) -> str:
        return f"{self.corpora}x{self.texts}x{self.layers}x{self.hidden}"


@dataclass
class SyntheticActivations:
    """What the study runner reads from an ``extract.Activations`` (a read-only memmap)."""

    array: np.ndarray
    ids: list[str]
    layers: list[int]
    hidden_size: int
    cache_path: Path | None = None
    cache_hit: bool = True
    meta: dict[str, Any] = field(default_factory=dict)


def corpus_names(n: int) -> list[str]:
    return [f"syn{i}" for i in range(n)]


def synthetic_records(n_texts: int, n_corpora: int, *, seed: int = 0,
                      texts_per_author: int = 2) -> list[LearnerText]:
    """``n_texts`` texts spread over ``n_corpora`` corpora (unequal sizes and level mixes,
    ``texts_per_author`` texts per author); text length grows with the level."""
    rng = np.random.default_rng(seed)
    weights = np.linspace(1.0, 2.0, n_corpora)
    sizes = np.floor(weights / weights.sum() * n_texts).astype(int)
    sizes[: n_texts - sizes.sum()] += 1
    recs = []
    for c, (name, size) in enumerate(zip(corpus_names(n_corpora), sizes, strict=True)):
        mix = np.roll(np.array([1.0, 2.0, 3.0, 2.0, 1.0]), c % len(LEVELS))
        levels = rng.choice(len(LEVELS), size=size, p=mix / mix.sum())
        levels[: len(LEVELS)] = np.arange(len(LEVELS))  # every level in every corpus
        for i, lvl in enumerate(levels):
            n_words = 10 + 15 * int(lvl) + int(rng.integers(0, 20))
            text = " ".join(rng.choice(WORDS, n_words)) + f". {name} {i}."
            recs.append(LearnerText(id=f"{name}-{i}", corpus=name,
                                    language=LANGUAGES[c % len(LANGUAGES)], text=text,
                                    cefr=LEVELS[int(lvl)],
                                    author_id=f"{name}-a{i // texts_per_author}"))
    return recs


def synthetic_activations(records: list[LearnerText], y: np.ndarray, n_layers: int,
                          hidden: int, folder: Path, *, seed: int = 0) -> SyntheticActivations:
    """``n_layers x len(records) x hidden`` float32, written to ``folder/acts.npy`` a layer at a
    time and returned memory-mapped (read-only)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = len(records)
    corpora = np.array([r.corpus for r in records])
    names = list(dict.fromkeys(corpora.tolist()))
    level_dir = rng.normal(size=hidden).astype(np.float32)
    level_dir /= np.linalg.norm(level_dir)
    corpus_dir = rng.normal(size=(len(names), hidden)).astype(np.float32)
    corpus_dir *= 2.0 / np.linalg.norm(corpus_dir, axis=1, keepdims=True)
    shift = corpus_dir[[names.index(c) for c in corpora.tolist()]]
    yc = (np.asarray(y, dtype=np.float32) - 2.0)[:, None]
    path = folder / "acts.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                    shape=(n_layers, n, hidden))
    for layer in range(n_layers):
        strength = 0.2 + np.sin(np.pi * (layer + 0.5) / n_layers)
        block = rng.normal(size=(n, hidden)).astype(np.float32)
        block += strength * yc * level_dir[None]  # about QWK 0.8 at the best layers
        block += shift
        out[layer] = block
    out.flush()
    del out
    return SyntheticActivations(np.load(path, mmap_mode="r"), [r.id for r in records],
                                list(range(n_layers)), hidden, cache_path=folder)


def synthetic_config(cfg: StudyConfig, shape: SyntheticShape) -> StudyConfig:
    """``cfg`` on the synthetic corpora and model (everything else as configured)."""
    return cfg.model_copy(update={"corpora": corpus_names(shape.corpora), "models": [MODEL]})


def synthetic_study(cfg: StudyConfig, shape: SyntheticShape, folder: Path, *, seed: int = 0,
                    texts_per_author: int = 2
                    ) -> tuple[StudyConfig, list[LearnerText], dict[str, SyntheticActivations]]:
    """(config, records, activations) of a synthetic study of ``shape`` for ``cfg``'s task."""
    task = get_task(cfg.task)
    if not task.uses_probes:
        raise ConfigError(f"a synthetic study has activations only; task {cfg.task!r} has its "
                          "own protocol")
    cfg = synthetic_config(cfg, shape)
    recs = synthetic_records(shape.texts, shape.corpora, seed=seed,
                             texts_per_author=texts_per_author)
    y = task.prepare(recs, labels=cfg.labels, corpora=cfg.corpora, prep=cfg.prep,
                     nli=cfg.nli).y
    name = f"synthetic-{shape.label}-seed{seed}"
    acts = synthetic_activations(recs, y, shape.layers, shape.hidden, Path(folder) / name,
                                 seed=seed)
    return cfg, recs, {MODEL: acts}
