"""The recipes of docs/ARCHITECTURE.md, done exactly as written (each through `learnerprobe run`).

- Add a corpus: a loader ``load(root, *, option=...) -> list[LearnerText]`` and one
  ``CorpusEntry`` in ``corpora.registry.CORPORA`` (here: a small CSV written to ``tmp_path``).
- Add a model: one ``ModelEntry`` in ``models.registry.MODELS`` (here: the seeded tiny BERT saved
  to a folder, under a registry name).
- Add a method: tests/integration/test_methods_registry.py (toy probe and toy NLI method, one
  ``MethodEntry`` each; helpers in tests/helpers/methods.py).
- Add a task: tests/integration/test_tasks.py (one ``Task`` subclass + ``register_task``).

No real corpus or real model weights are used; these are full small studies, hence integration.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from learnerprobe.corpora import CORPORA, CorpusEntry, load_corpus
from learnerprobe.errors import ConfigError
from learnerprobe.models import MODELS, get_model
from learnerprobe.models.testing import tiny_entry
from learnerprobe.records import LearnerText

LEVELS = ["A1", "A2", "B1", "B2", "C1"]
WORDS = ["Haus", "gut", "schnell", "Kind", "Wasser", "Stadt", "sprechen", "freundlich", "Arbeit"]


# --------------------------------------------------------------------- recipe: add a corpus
def load_toy(root: Path, *, min_words: int = 0) -> list[LearnerText]:
    """The recipe's loader: ``<root>/toy-corpus/texts.csv`` (id, author, level, text)."""
    with open(root / "toy-corpus" / "texts.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [LearnerText(id=r["id"], corpus="toy", language="de", text=r["text"], cefr=r["level"],
                        cefr_raw=r["level"], author_id=r["author"])
            for r in rows if len(r["text"].split()) >= min_words]


TOY = CorpusEntry("toy", ("de",), ("cefr",), "CC0 (written for this test)",
                  "https://example.org/toy", load_toy, "toy corpus of the recipe test")


def write_toy_table(root: Path, n: int = 60) -> Path:
    """Text length grows with the level (a surface baseline can learn it); 2 texts per author."""
    (root / "toy-corpus").mkdir(parents=True)
    with open(root / "toy-corpus" / "texts.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "author", "level", "text"])
        for i in range(n):
            lvl = i % len(LEVELS)
            words = [WORDS[(i * 7 + k) % len(WORDS)] for k in range(4 + 6 * lvl)]
            w.writerow([f"t{i}", f"a{i // 2}", LEVELS[lvl], " ".join(words) + "."])
    return root


def _run(tmp_path: Path, corpora: str, model: str) -> pd.DataFrame:
    from learnerprobe.cli import app

    cfg = tmp_path / "study.toml"
    cfg.write_text(f"""
name = "recipe"
corpora = [{corpora}]
models = ["{model}"]
probes = ["ridge", "surface"]
folds = 3
n_boot = 20
[extraction]
dtype = "float32"
max_length = 64
""", encoding="utf-8")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", str(cfg), "--out", str(out), "--no-report"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    return pd.read_csv(out / "results.csv")


def test_recipe_add_a_corpus(tmp_path, tiny_folder, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    root = write_toy_table(tmp_path / "data")
    monkeypatch.setitem(CORPORA, "toy", TOY)

    recs = load_corpus("toy", root=root)
    assert len(recs) == 60 and {r.cefr for r in recs} == set(LEVELS)
    assert len(load_corpus("toy", root=root, min_words=20)) < 60  # loader options pass through
    with pytest.raises(ConfigError, match="min_words"):
        load_corpus("toy", root=root, bogus=1)  # unknown options list the accepted ones

    df = _run(tmp_path, f'{{ name = "toy", root = "{root}" }}', str(tiny_folder))
    assert set(df.probe) == {"ridge", "surface"} and set(df.task) == {"cefr"}
    assert (df[(df.probe == "ridge") & (df.metric == "qwk")].n > 0).all()


# ---------------------------------------------------------------------- recipe: add a model
def test_recipe_add_a_model(tmp_path, tiny_folder, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    entry = replace(tiny_entry("bert"), name="toy-bert", source=str(tiny_folder),
                    description="the seeded tiny BERT under a registry name")
    monkeypatch.setitem(MODELS, "toy-bert", entry)
    assert get_model("toy-bert") is entry
    root = write_toy_table(tmp_path / "data")
    monkeypatch.setitem(CORPORA, "toy", TOY)

    df = _run(tmp_path, f'{{ name = "toy", root = "{root}" }}', "toy-bert")
    assert set(df[df.probe == "ridge"].model) == {"toy-bert"}
    assert (df[df.probe == "ridge"].layer == "selected").any()
