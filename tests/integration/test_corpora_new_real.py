"""The ALC, CEFR-ASAG and Icelandic L2 loaders on the real shared copies ($LEARNERPROBE_DATA).

Expected counts are recounted here from the raw files with plain regular expressions (no XML
parser, no loader code), so a loader that drops, duplicates or mislabels texts fails."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from learnerprobe.corpora import load_corpus
from learnerprobe.corpora.record_files import corpus_stats


def _field(xml: str, tag: str) -> str:
    m = re.search(f"<{tag}>([^<]*)</{tag}>", xml)
    assert m, tag
    return m.group(1).strip()


# --------------------------------------------------------------------------- ALC
@pytest.fixture(scope="module")
def alc_raw(data_root) -> dict[str, dict[str, str]]:
    """File stem -> nativeness, mode, level_study, mothertongue, read as text."""
    files = sorted((data_root / "alc-v2" / "data").glob("*.xml"))
    out = {}
    for f in files:
        xml = f.read_bytes().decode("utf-16")
        out[f.stem] = {k: _field(xml, k) for k in ("nativeness", "mode", "level_study",
                                                     "mothertongue")}
    return out


@pytest.fixture(scope="module")
def alc_all(data_root):
    return load_corpus("alc", root=data_root, natives=True, spoken=True)


def test_alc_every_file_loads(alc_all, alc_raw):
    assert len(alc_raw) == 1585  # the README's count
    assert {r.id for r in alc_all} == set(alc_raw)
    assert not alc_all.report  # nothing skipped
    natives = {k for k, v in alc_raw.items() if v["nativeness"] == "NAS"}
    spoken = {k for k, v in alc_raw.items() if v["mode"] == "Spoken"}
    assert (len(natives), len(spoken)) == (790, 59)
    assert {r.id for r in alc_all if r.meta["native"]} == natives
    assert {r.id for r in alc_all if r.meta["spoken"]} == spoken
    assert all(r.l1 == "Arabic" for r in alc_all if r.meta["native"])


def test_alc_default_is_written_learner_texts(data_root, alc_raw):
    recs = load_corpus("alc", root=data_root)
    want = {k for k, v in alc_raw.items() if v["nativeness"] == "NNAS" and v["mode"] == "Written"}
    assert {r.id for r in recs} == want and len(want) == 753
    s = corpus_stats(recs)
    assert s["by_language"] == {"ar": 753} and s["by_cefr"] == {"(none)": 753}
    assert s["n_authors"] == 446
    assert s["by_level"] == {"Language course": 496, "Diploma course": 237, "BA": 18, "MA": 2}
    assert Counter(r.meta["level_ordinal"] for r in recs) == {0: 496, 1: 237, 2: 18, 3: 2}
    # L1: the raw mother tongues recounted, normalised names for the big groups; the 45
    # unresolved are nationality answers ("Beninese") and names no standard lists ("Anko")
    raw = Counter(alc_raw[r.id]["mothertongue"] for r in recs)
    l1 = s["by_l1"]
    assert l1["Chinese"] == raw["Chinese"] == 76 and l1["Urdu"] == raw["Urdu"] == 62
    assert l1["Mossi"] == raw["Moore"] and l1["Khmer"] == raw["Cambodian"]
    assert l1["Tagalog"] == raw["Tagalog"] + raw["Filipino"]
    assert l1["(none)"] == 45 and "Arabic" not in l1
    assert len({r.l1_raw for r in recs}) == 65 and len(l1) - 1 == 56


def test_alc_author_groups(alc_all):
    by_author = Counter(r.author_id for r in alc_all)
    assert len(by_author) == 942 and max(by_author.values()) <= 5
    assert all(r.id.startswith(r.author_id + "_T") for r in alc_all)


# --------------------------------------------------------------------------- CEFR-ASAG
@pytest.fixture(scope="module")
def asag_release(data_root) -> dict[str, list[str]]:
    """File stem -> [examiner ratings..., release majority-vote label], read as text."""
    out = {}
    for f in sorted((data_root / "cefr-asag" / "corpus" / "labelled").glob("*.xml")):
        xml = f.read_text(encoding="utf-8")
        grading = xml[xml.index('<div type="grading">'):]
        out[f.stem] = re.findall(r"<span>([^<]*)</span>", grading)
    return out


def test_asag_labels_are_the_majority(data_root, asag_release):
    recs = load_corpus("cefr-asag", root=data_root)
    assert len(recs) == len(asag_release) == 299 and not recs.report
    s = corpus_stats(recs)
    # the default label is the release's majority-vote label for every answer
    assert s["by_cefr"] == dict(Counter(v[-1] for v in asag_release.values()))
    assert s["by_cefr"] == {"B1": 113, "B2": 74, "A2": 59, "C1": 30, "A1": 18, "C2": 5}
    for r in recs:
        ratings = asag_release[r.id][:-1]
        assert list(r.meta["examiners"].values()) == ratings
        top, n = Counter(ratings).most_common(1)[0]
        if n >= 2 and top != "NA":
            assert r.cefr == top and r.meta["agreement"] in ("majority", "unanimous")
        else:
            assert r.meta["agreement"] == "none"
    assert Counter(r.meta["agreement"] for r in recs) == {"unanimous": 131, "majority": 150,
                                                          "none": 18}
    assert s["by_l1"]["French"] == 270 and s["by_language"] == {"en": 299}


def test_asag_options(data_root):
    assert len(load_corpus("cefr-asag", root=data_root, no_majority="drop")) == 281
    every = load_corpus("cefr-asag", root=data_root, subset="all")
    assert len(every) == 708
    assert Counter(r.meta["subset"] for r in every) == {"labelled": 299, "unlabelled": 409}
    assert all(r.cefr is None for r in every if r.meta["subset"] == "unlabelled")


# --------------------------------------------------------------------------- Icelandic L2
ICE = "icelandic-l2/iceErrorCorpusL2/data"


def test_icelandic_counts(data_root):
    recs = load_corpus("icelandic-l2", root=data_root)
    assert not recs.report
    tsv = (data_root / ICE / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    rows = [ln.split("\t") for ln in tsv[1:] if ln.strip()]
    assert len(recs) == len(rows) == 101
    s = corpus_stats(recs)
    levels = Counter(r[5].strip("[]") or "(none)" for r in rows)
    assert s["by_cefr"] == dict(levels)
    assert s["by_cefr"] == {"A1": 20, "A2": 20, "C1": 16, "C2": 15, "B1": 14, "B2": 14,
                            "(none)": 2}
    l1 = s["by_l1"]
    assert (l1["German"], l1["English"], l1["Tagalog"], l1["Polish"]) == (13, 12, 12, 10)
    assert l1["English/Italian"] == 2 and "(none)" not in l1
    assert s["by_language"] == {"is": 101} and s["n_with_correction"] == 101
    assert s["n_authors"] == 66
    ids = {r.id: r.author_id for r in recs}
    assert len({ids[f"rit00{i}"] for i in range(1, 6)}) == 1  # chapters of one thesis
    assert ids["rit006"] != ids["rit001"]


def test_icelandic_text_keeps_the_learners_forms(data_root):
    recs = {r.id: r for r in load_corpus("icelandic-l2", root=data_root)}
    r = recs["rit001"]
    # <original>málvisindalegt</original> <corrected>málvísindalegt</corrected> etc.
    assert "Kyn sem málvisindalegt viðfangsefni" in r.text
    assert "Kyn sem málvísindalegt viðfangsefni" in r.text_corrected
    assert "innan málvísindum og" in r.text and "innan málvísinda og" in r.text_corrected
    # every single-word substitution of the file: the original is in the text
    xml = (data_root / ICE / "rit001.xml").read_text(encoding="utf-8")
    pairs = re.findall(r"<original><w>([^<]+)</w></original>\s*"
                       r"<corrected><w>([^<]+)</w></corrected>", xml)
    assert len(pairs) > 100
    n_orig = Counter(o for o, c in pairs if o != c)
    missing = {o: n for o, n in n_orig.items() if r.text.count(o) < n}
    assert not missing
    # and the corrections that occur nowhere else are not in the text
    only_corr = {c for o, c in pairs if o != c and c not in xml.replace(
        f"<corrected><w>{c}</w></corrected>", "")}
    assert len(only_corr) > 50 and not [c for c in only_corr if f" {c} " in r.text]


# --------------------------------------------------------------------------- CLI
@pytest.mark.parametrize(("name", "n"), [("alc", 753), ("cefr-asag", 299),
                                         ("icelandic-l2", 101)])
def test_cli_stats(data_root: Path, name, n):
    out = subprocess.run(
        [sys.executable, "-c", "from learnerprobe.cli import main; main()", "corpus", "stats",
         name, "--root", str(data_root), "--json"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    s = json.loads(out)
    assert s["corpus"] == name and s["n_texts"] == n and "load_report" not in s
