"""UniversalCEFR as the collection publishes it: one JSON array per corpus with the eight
fields, chosen by subset (local files, in the hub's download layout or under the published
file names) or by dataset id through the optional ``datasets`` library (mocked: no network);
and the shipped nine-corpus config parses, validates and loads.

The fixture files are written at test time, shaped like the published ones (a JSON array
written with ``indent=4, ensure_ascii=False``, the fields in the collection's order, as its
conversion scripts write them); the texts are our own short sentences.
"""

from __future__ import annotations

import json
import sys
import types
import warnings
from pathlib import Path

import pytest

from learnerprobe.corpora import load_corpus
from learnerprobe.corpora.universalcefr import PUBLISHED_FILES
from learnerprobe.errors import ConfigError, CorpusNotFoundError, DataFormatError
from learnerprobe.study.check import load_study

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ("title", "lang", "source_name", "format", "category", "cefr_level", "license", "text")

#: subset -> (lang, source_name, format, license, [(title, cefr_level, text)])
CORPORA: dict[str, tuple[str, str, str, str, list[tuple[str, str, str]]]] = {
    "elle_et": ("et", "elle", "paragraph-level", "CC BY 4.0", [
        ("NA", "A2", "Mina elan Tallinnas ja mulle meeldib meri."),
        ("NA", "B1", "Eelmisel suvel käisin sõpradega Tartus ja see oli tore."),
        ("NA", "C1", "Keeleõpe nõuab järjepidevust, kuid pakub ka palju rõõmu."),
    ]),
    "icle500_en": ("en", "icle500", "document-level", "CC0 1.0 (Public Domain)", [
        ("Title: Crime", "B1+", "Title: Crime\n\nCrime does not pay, as people often say."),
        ("Title: Money", "B2+", "Money is said to be the root of all evil."),
        ("NA", "NA", "An essay whose rating was not recorded."),
        ("Title: Europe", "C2", "Whether Europe will ever become one nation is doubtful."),
    ]),
    "cefr_asag_en": ("en", "cefr-asag", "paragraph-level", "CC BY-NC-SA 4.0", [
        ("NA", "A2", "I like my town because it is quiet."),
        ("NA", "B2", "In my opinion, public transport should be free for students."),
    ]),
    "merlin_cs": ("cs", "merlin-cs", "paragraph-level", "CC BY-SA 4.0", [
        ("NA", "A2", "Ahoj Petře, děkuji za dopis."),
        ("NA", "B1", "Minulý týden jsem byl v Brně na výletě."),
        ("NA", "EMPTY", "Text bez hodnocení."),
    ]),
    "merlin_de": ("de", "merlin-de", "paragraph-level", "CC BY-SA 4.0", [
        ("NA", "A1", "Ich heiße Eva und wohne in einer Wohnung."),
        ("NA", "B2", "Sehr geehrte Damen und Herren, ich beschwere mich über die Reise."),
    ]),
    "merlin_it": ("it", "merlin-it", "paragraph-level", "CC BY-SA 4.0", [
        ("NA", "A2", "Cara Anna, ti scrivo dalla mia nuova casa."),
        ("NA", "unrated", "Testo senza valutazione."),
        ("NA", "B1", "La settimana scorsa sono andata al mare con mia sorella."),
    ]),
    "cople2_pt": ("pt", "cople2", "paragraph-level", "CC BY-SA-NC 4.0", [
        ("NA", "A1", "Eu moro numa casa pequena."),
        ("NA", "A2", "Eu moro numa casa pequena."),  # as published: the text twice
        ("NA", "C1", "A globalização trouxe vantagens e desvantagens."),
    ]),
    "peapl2_pt": ("pt", "peapl2", "paragraph-level", "CC BY SA NC 4.0", [
        ("NA", "B1", "No fim de semana gosto de passear no parque."),
        ("NA", "C2", "A leitura é, sem dúvida, uma das maiores riquezas."),
    ]),
    "zaebuc_ar": ("ar", "zaebuc", "paragraph-level", "CC BY-SA 4.0", [
        ("NA", "B1", "وسائل التواصل الاجتماعي مفيدة للطلاب."),
        ("NA", "Unassessable", "نص قصير."),
        ("NA", "C1", "يرى كثيرون أن التعليم عن بعد أصبح ضرورة."),
    ]),
}


def published_bytes(subset: str) -> bytes:
    lang, source, fmt, lic, rows = CORPORA[subset]
    objs = [dict(zip(FIELDS, (title, lang, source, fmt, "learner", level, lic, text),
                     strict=True)) for title, level, text in rows]
    return json.dumps(objs, indent=4, ensure_ascii=False).encode("utf-8")


def write_nine(data: Path) -> Path:
    """Five corpora in the hub's download layout (folder per dataset, with its README), four
    as bare published files."""
    base = data / "universalcefr"
    for i, subset in enumerate(CORPORA):
        if i % 2 == 0:
            folder = base / subset
            folder.mkdir(parents=True)
            (folder / "README.md").write_text("---\nlicense: cc-by-nc-sa-4.0\n---\n")
            (folder / PUBLISHED_FILES[subset]).write_bytes(published_bytes(subset))
        else:
            base.mkdir(parents=True, exist_ok=True)
            (base / PUBLISHED_FILES[subset]).write_bytes(published_bytes(subset))
    return data


@pytest.fixture
def nine(tmp_path):
    return write_nine(tmp_path / "data")


def test_the_nine_published_files_by_subset(nine):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the collection's no-label markers load silently
        recs = load_corpus("universalcefr", root=nine, subset=list(CORPORA))
    assert len(recs) == sum(len(c[4]) for c in CORPORA.values())
    assert {r.language for r in recs} == {"et", "en", "cs", "de", "it", "pt", "ar"}
    d = {r.id: r for r in recs}
    r = d["elle.elle_et.1"]
    assert (r.language, r.cefr, r.task, r.corpus) == ("et", "A2", None, "universalcefr")
    assert r.meta == {"title": None, "source_name": "elle", "format": "paragraph-level",
                      "category": "learner", "license": "CC BY 4.0", "subset": "elle_et",
                      "source": "elle_et/elle.json:1"}
    assert d["icle500.icle500_en.1"].cefr == "B1+" and d["icle500.icle500_en.1"].task == (
        "Title: Crime")
    # the no-label markers of the collection: EMPTY, NA, unrated, Unassessable
    assert [d[i].cefr for i in ("icle500.icle500_en.3", "merlin-cs.merlin_cs.3",
                                "merlin-it.merlin_it.2", "zaebuc.zaebuc_ar.2")] == [None] * 4
    assert d["zaebuc.zaebuc_ar.2"].cefr_raw == "Unassessable"
    assert d["zaebuc.zaebuc_ar.3"].language == "ar" and d["zaebuc.zaebuc_ar.3"].cefr == "C1"
    # cople2_pt as published: the same text twice, with adjacent levels
    assert d["cople2.cople2_pt.1"].text == d["cople2.cople2_pt.2"].text


def test_one_subset_and_all_files_give_the_same_ids(nine):
    ar = load_corpus("universalcefr", root=nine, subset="zaebuc_ar")
    assert [r.id for r in ar] == ["zaebuc.zaebuc_ar.1", "zaebuc.zaebuc_ar.2",
                                  "zaebuc.zaebuc_ar.3"]
    every = load_corpus("universalcefr", root=nine)
    assert {r.id for r in every} == {r.id for r in load_corpus(
        "universalcefr", root=nine, subset=list(CORPORA))}


def test_subset_named_file_and_parquet(tmp_path):
    import pandas as pd

    base = tmp_path / "universalcefr"
    base.mkdir()
    (base / "readme_en.json").write_bytes(published_bytes("cefr_asag_en"))
    pd.DataFrame(json.loads(published_bytes("merlin_de"))).to_parquet(
        base / "merlin_de_export.parquet")
    assert len(load_corpus("universalcefr", root=tmp_path, subset="readme_en")) == 2
    recs = load_corpus("universalcefr", root=tmp_path, subset="merlin_de_export")
    assert [r.cefr for r in recs] == ["A1", "B2"]


def test_missing_subset_says_how_to_download(tmp_path):
    (tmp_path / "universalcefr").mkdir()
    with pytest.raises(CorpusNotFoundError) as e:
        load_corpus("universalcefr", root=tmp_path, subset="elle_et")
    msg = str(e.value)
    assert "elle.json" in msg and "hf download UniversalCEFR/elle_et --repo-type dataset" in msg
    assert "dataset='UniversalCEFR/elle_et'" in msg


@pytest.mark.parametrize("options,match", [
    ({"subset": "../merlin"}, "subset= takes dataset names"),
    ({"subset": "UniversalCEFR/elle_et"}, "subset= takes dataset names"),
    ({"subset": []}, "subset= takes dataset names"),
    ({"dataset": "a/b/c"}, "dataset= takes dataset names"),
    ({"dataset": "elle_et", "subset": "elle_et"}, "not both"),
    ({"revision": "main"}, "revision= needs dataset="),
])
def test_bad_options_are_config_errors(nine, options, match):
    with pytest.raises(ConfigError, match=match):
        load_corpus("universalcefr", root=nine, **options)


# --- the hub, through the optional datasets library ---------------------------------------------

class FakeDataset:
    """What ``datasets.load_dataset(..., split="train")`` returns: rows as dicts, in order."""

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.column_names = list(rows[0]) if rows else []

    def __iter__(self):
        return iter(self.rows)


def fake_datasets(monkeypatch, load_dataset) -> None:
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))


def test_dataset_id_through_the_datasets_library(monkeypatch, nine):
    calls = []

    def load_dataset(path, split=None, revision=None):
        calls.append((path, split, revision))
        subset = path.split("/")[1]
        return FakeDataset(json.loads(published_bytes(subset)))

    fake_datasets(monkeypatch, load_dataset)
    hub = load_corpus("universalcefr", dataset=["UniversalCEFR/zaebuc_ar", "elle_et"],
                      revision="v1.0")
    assert calls == [("UniversalCEFR/zaebuc_ar", "train", "v1.0"),
                     ("UniversalCEFR/elle_et", "train", "v1.0")]
    local = load_corpus("universalcefr", root=nine, subset=["zaebuc_ar", "elle_et"])
    assert [(r.id, r.text, r.cefr, r.language) for r in hub] == [
        (r.id, r.text, r.cefr, r.language) for r in local]
    assert hub[0].meta["source"] == "hf:UniversalCEFR/zaebuc_ar:1"


def test_dataset_without_the_library_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ConfigError) as e:
        load_corpus("universalcefr", dataset="UniversalCEFR/elle_et")
    assert "pip install 'learnerprobe[hub]'" in str(e.value) and "\n" not in str(e.value)


def test_hub_unreachable_or_bad_rows(monkeypatch):
    def offline(path, split=None, revision=None):
        raise ConnectionError("Couldn't reach 'UniversalCEFR/elle_et' on the Hub (LocalEntryNotFoundError)\nmore")

    fake_datasets(monkeypatch, offline)
    with pytest.raises(CorpusNotFoundError, match=r"cannot load 'UniversalCEFR/elle_et' .*"
                                                   r"Couldn't reach") as e:
        load_corpus("universalcefr", dataset="elle_et")
    assert "\n" not in str(e.value)

    fake_datasets(monkeypatch, lambda path, split=None, revision=None: FakeDataset(
        [{"text": "x", "lang": "en"}]))
    with pytest.raises(DataFormatError, match="hf:UniversalCEFR/elle_et: missing field"):
        load_corpus("universalcefr", dataset="elle_et")


# --- the shipped config ------------------------------------------------------------------------

def test_universalcefr_9_config_parses_validates_and_loads(nine, monkeypatch):
    from learnerprobe.engine.data import encode, load_records

    cfg = load_study(ROOT / "configs" / "universalcefr-9.toml")
    assert cfg.corpus_names == list(CORPORA)
    assert [s.options for s in cfg.corpus_configs] == [{"subset": s} for s in CORPORA]
    assert cfg.models == ["qwen3-embedding-0.6b", "qwen3-embedding-4b", "qwen3-embedding-8b"]
    assert cfg.mode == "reference" and cfg.labels.scheme == "five"

    monkeypatch.setenv("LEARNERPROBE_DATA", str(nine))
    records, info = load_records(cfg.corpus_configs, cfg.prep)
    assert info["loaded"] == {s: len(c[4]) for s, c in CORPORA.items()}
    # cople2_pt's repeated text is kept once, with its first level
    twice = [r for r in records if r.text == "Eu moro numa casa pequena."]
    assert [(r.id, r.cefr, r.corpus) for r in twice] == [("cople2.cople2_pt.1", "A1",
                                                          "cople2_pt")]
    assert len(records) == sum(len(c[4]) for c in CORPORA.values()) - 1
    data = encode(cfg, records)
    assert set(data.corpora) == set(CORPORA)
    assert data.labels == ["A1", "A2", "B1", "B2", "C1+C2"]
    assert len(data.y) == len(records) - 4  # the four unlabelled texts
