"""Loader hardening: the real shapes that used to break or silently mislabel a corpus.

BEA-2019 edits with null corrections and same-offset/overlapping edits, ICLE500's real metadata
header and csv+xlsx pair, FCE flattened to one row per answer, truncated MERLIN files, folders and
broken links among corpus files, unparseable CEFR ratings, malformed files of every loader.
Fixtures: ``tests/helpers/corpus_fixtures.py`` (``hard/``) plus files written in ``tmp_path``.
"""

import csv
import os
import re
import shutil
import warnings

import pytest

from learnerprobe.config.corpus import CorpusConfig
from learnerprobe.corpora import load_corpus
from learnerprobe.corpora._common import CorpusWarning
from learnerprobe.corpora.bea19 import correct
from learnerprobe.corpora.record_files import corpus_stats
from learnerprobe.corpora.registry import check_corpus_config, load_corpus_config
from learnerprobe.errors import ConfigError, DataFormatError
from tests.helpers.corpus_fixtures import fixture_tree

FIX = fixture_tree()
HARD, GOOD = FIX / "hard", FIX / "good"


def by_id(recs):
    return {r.id: r for r in recs}


# --- 1. BEA-2019 edits (json_to_m2.py semantics) ----------------------------------------------

def test_bea19_null_same_offset_and_overlapping_edits_load():
    with pytest.warns(CorpusWarning) as caught:
        recs = load_corpus("bea19", root=HARD)
    d = by_id(recs)
    assert len(recs) == 6
    r = d["wi.2-101"]
    # [2, 11, "went"] applied, [2, 6, null] (detection) keeps the text; [38, 38, null] next to
    # [38, 38, "a "]; [45, 57, ...] overlaps [43, 53, "interesting"] -> skipped; the edit across
    # the newline is ignored as in json_to_m2.py; the final insertion applies.
    assert r.text_corrected == "I went to London last year.\nIt was a very interesting trip."
    assert r.meta["edit_counts"] == {"applied": 4, "detection_only": 2, "skipped_overlap": 1,
                                     "skipped_cross_paragraph": 1}
    assert d["wi.2-103"].text_corrected == "She like it."  # only a detection edit
    assert d["wi.2-104"].text_corrected is None  # malformed 'edits' field: counted, not fatal
    f = d["fce.TR3*0001*2000*01.q1"]
    assert f.text_corrected == "Dear Sir, I am writing to you about the job."
    assert f.meta["edit_counts"] == {"applied": 2, "detection_only": 1, "skipped_malformed": 1,
                                     "skipped_offsets": 1}
    counts = recs.report.counts
    assert counts["edits_skipped_overlap"] == 1 and counts["edits_skipped_malformed"] == 1
    assert counts["edits_skipped_offsets"] == 1 and counts["edits_skipped_cross_paragraph"] == 1
    assert counts["edits_detection_only"] == 4 and counts["edits_malformed_field"] == 1
    msgs = " | ".join(str(w.message) for w in caught)
    assert "B.dev.json: line 1" in msgs and "overlapping" in msgs
    assert "detection" not in msgs  # detection-only edits are annotation, not a problem
    stats = corpus_stats(recs)
    assert stats["load_report"]["counts"]["edits_skipped_overlap"] == 1


def test_bea19_unparseable_cefr_warns_or_refuses():
    with pytest.warns(CorpusWarning, match=r"B\.dev\.json: line 2: 'Z9'"):
        recs = load_corpus("bea19", root=HARD, subset="wi")
    assert by_id(recs)["wi.2-102"].cefr is None and recs.report.counts["unparseable_cefr"] == 1
    with pytest.raises(DataFormatError, match=r"B\.dev\.json: line 2: unrecognised CEFR label "
                       r"'Z9' \(strict=True"):
        load_corpus("bea19", root=HARD, subset="wi", strict=True)


def test_bea19_correct_semantics():
    # Several insertions at one offset apply in file order; a tie never compares None with str.
    assert correct("ab", [[0, [[1, 1, None], [1, 1, "X"], [1, 1, "Y"]]]])[0] == "aXYb"
    # Only the first annotator's edits are applied.
    assert correct("ab", [[0, [[0, 1, "A"]]], [1, [[0, 1, "Z"]]]])[0] == "Ab"
    assert correct("ab", [])[0] is None and correct("ab", [[0, []]])[0] == "ab"
    text, n = correct("ab", [[0, [[0, 1, 5], [True, 1, "x"], [0], "zz"]]])
    assert text == "ab" and n["skipped_malformed"] == 4


# --- 2. ICLE500: CEFR_MFRM, csv + xlsx, missing label column ----------------------------------

def test_icle500_real_header():
    recs = load_corpus("icle500", root=HARD)
    d = by_id(recs)
    assert [d[k].cefr for k in ("GEAU2001", "FRUC2002", "SPM02003")] == ["B2", "C1", "B1"]
    assert d["GEAU2001"].cefr_raw == "B2" and d["GEAU2001"].meta["measure_MFRM"] == "0.52"
    assert d["FRUC2002"].task == "Feminism" and d["FRUC2002"].l1 == "French"


def _xlsx_copy(src, dst, edit=None):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    with open(src, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    for row in (edit(rows) if edit else rows):
        ws.append(row)
    wb.save(dst)


def test_icle500_csv_and_xlsx_side_by_side(tmp_path):
    root = tmp_path / "icle500"
    shutil.copytree(HARD / "icle500", root)
    _xlsx_copy(root / "ICLE500_metadata.csv", root / "ICLE500_metadata.xlsx")
    with pytest.warns(CorpusWarning, match=r"ICLE500_metadata\.xlsx \(same rows as "
                      r"ICLE500_metadata\.csv, which is read\)"):
        recs = load_corpus("icle500", root=tmp_path)
    assert len(recs) == 3 and recs.report.counts == {"duplicate_table": 1}

    def relabel(rows):
        rows[2][-1] = "A2"
        return rows

    _xlsx_copy(root / "ICLE500_metadata.csv", root / "ICLE500_metadata.xlsx", relabel)
    with pytest.raises(DataFormatError, match=r"disagree \(row 2: \('FRUC2002', 'C1'\) vs "
                       r"\('FRUC2002', 'A2'\)\)"):
        load_corpus("icle500", root=tmp_path)


def test_icle500_missing_label_column(tmp_path):
    root = tmp_path / "icle500"
    shutil.copytree(HARD / "icle500", root)
    meta = root / "ICLE500_metadata.csv"
    meta.write_text(meta.read_text().replace("CEFR_MFRM", "CEFR_rating"))
    with pytest.raises(DataFormatError) as e:
        load_corpus("icle500", root=tmp_path)
    msg = str(e.value)
    assert "no CEFR label column" in msg and "cefr_mfrm" in msg and "CEFR_rating" in msg
    assert "labels='optional'" in msg
    recs = load_corpus("icle500", root=tmp_path, labels="optional")
    assert len(recs) == 3 and all(r.cefr is None for r in recs)
    assert recs.report.counts["unlabelled"] == 3


def test_efcamdat_missing_label_column(tmp_path):
    src = GOOD / "efcamdat" / "Final database (main prompts).csv"
    (tmp_path / "efcamdat").mkdir()
    with open(src, encoding="utf-8", newline="") as f:
        rows = [[c for j, c in enumerate(r) if j not in (8, 9)] for r in csv.reader(f)]
    with open(tmp_path / "efcamdat" / "t.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(DataFormatError, match=r"t\.csv: header row: no CEFR label column"):
        load_corpus("efcamdat", root=tmp_path)
    assert len(load_corpus("efcamdat", root=tmp_path, labels="optional")) == 6


# --- 3. FCE flattened to a table --------------------------------------------------------------

def test_table_repeated_script_ids():
    opts = dict(path="table/fce_answers.csv", language="en")
    with pytest.raises(DataFormatError) as e:
        load_corpus("table", root=HARD, **opts)
    msg = str(e.value)
    assert "fce_answers.csv: rows 1, 2: ids repeat" in msg and "group_column=" in msg
    assert "id_column=" in msg
    recs = load_corpus("table", root=HARD, group_column="id", **opts)
    assert [r.id for r in recs] == ["TR4*0001*2000*01#1", "TR4*0001*2000*01#2",
                                    "TR4*0002*2000*02"]
    assert recs[0].author_id == recs[1].author_id == "TR4*0001*2000*01"
    assert recs[0].meta["id_raw"] == "TR4*0001*2000*01" and recs[0].meta["q"] == "1"
    with pytest.raises(ConfigError, match="disagree"):
        load_corpus("table", root=HARD, group_column="id", columns={"author_id": "l1"}, **opts)


def test_table_id_column_unique(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("answer_id,script,text\na1,s1,One text.\na2,s1,Two text.\n")
    recs = load_corpus("table", root=tmp_path, path="a.csv", language="en",
                       id_column="answer_id", group_column="script", labels="optional")
    assert [(r.id, r.author_id) for r in recs] == [("a1", "s1"), ("a2", "s1")]


# --- 4. corpus specs --------------------------------------------------------------------------

def test_corpus_config_options_checked():
    spec = CorpusConfig.model_validate({"name": "bea19", "root": str(HARD), "subset": "fce",
                                        "as": "fce"})
    assert spec.study_name == "fce" and spec.options == {"subset": "fce"}
    assert {r.id for r in load_corpus_config(spec)} == {"fce.TR3*0001*2000*01.q1",
                                                        "fce.TR3*0001*2000*01.q2"}
    with pytest.raises(ConfigError, match=r"unknown option\(s\) 'subsett' .*accepted: .*subset"):
        check_corpus_config(CorpusConfig(name="bea19", subsett="wi"))
    with pytest.raises(ConfigError, match=r"option strict='sometimes'"):
        check_corpus_config(CorpusConfig(name="merlin", strict="sometimes"))
    with pytest.raises(ConfigError, match="unknown corpus 'bea20'"):
        check_corpus_config(CorpusConfig(name="bea20"))
    assert CorpusConfig(name="x", root="rel").with_root_base("/a").root == "/a/rel"


# --- 5. unparseable MERLIN rating -------------------------------------------------------------

def _merlin_copy(tmp_path):
    base = tmp_path / "merlin-text-v1.2" / "meta_ltext_THs"
    shutil.copytree(GOOD / "merlin" / "meta_ltext_THs", base)
    return base / "german"


def test_merlin_unparseable_rating_warns_or_refuses(tmp_path):
    de = _merlin_copy(tmp_path)
    f = de / "1031_0000001.txt"
    f.write_text(f.read_text().replace("Overall CEFR rating: A2", "Overall CEFR rating: Z9"))
    with pytest.warns(CorpusWarning, match=r"1 unparseable CEFR .*1031_0000001\.txt: line 13: "
                      r"'Z9'"):
        recs = load_corpus("merlin-de", root=tmp_path)
    r = by_id(recs)["1031_0000001"]
    assert r.cefr is None and r.cefr_raw == "Z9" and recs.report.counts["unparseable_cefr"] == 1
    # The release's own "unrated" is not a warning.
    assert by_id(recs)["1031_0000003"].cefr_raw == "unrated"
    with pytest.raises(DataFormatError, match=r"1031_0000001\.txt: line 13: unrecognised CEFR "
                       r"label 'Z9'"):
        load_corpus("merlin-de", root=tmp_path, strict=True)


# --- 6. truncated MERLIN files ----------------------------------------------------------------

@pytest.mark.parametrize("cut,match", [
    ("Liebe Anna,\nich habe deine", r"line 26: file ends mid-line"),
    ("Target hypothesis 1: \n", r"line 34: missing target hypothesis 2 section"),
    ("Viele Gr\u00fc\u00dfe\n", r"line 30: missing target hypothesis 1 and target hypothesis 2 "
     r"section"),
])
def test_merlin_truncated_file(tmp_path, cut, match):
    de = _merlin_copy(tmp_path)
    f = de / "1031_0000001.txt"
    text = f.read_text()
    f.write_text(text[: text.index(cut) + len(cut)])
    with pytest.raises(DataFormatError, match=r"1031_0000001\.txt: " + match):
        load_corpus("merlin-de", root=tmp_path)
    with pytest.warns(CorpusWarning, match=r"1 malformed file\(s\) skipped"):
        recs = load_corpus("merlin-de", root=tmp_path, on_error="skip")
    assert "1031_0000001" not in by_id(recs) and len(recs) == 2


# --- 7. folders and broken links among corpus files -------------------------------------------

def test_folder_named_txt_is_skipped(tmp_path):
    de = _merlin_copy(tmp_path)
    (de / "notes.txt").mkdir()
    with pytest.warns(CorpusWarning, match=r"folder\(s\) named like a corpus file skipped .*"
                      r"notes\.txt"):
        recs = load_corpus("merlin-de", root=tmp_path)
    assert len(recs) == 3 and recs.report.counts == {"skipped_dir": 1}


@pytest.mark.skipif(os.name == "nt", reason="symlinks")
def test_broken_symlink_is_a_clear_error(tmp_path):
    de = _merlin_copy(tmp_path)
    (de / "1031_0000099.txt").symlink_to(tmp_path / "gone.txt")
    with pytest.raises(DataFormatError, match=r"1031_0000099\.txt: broken symbolic link"):
        load_corpus("merlin-de", root=tmp_path)


@pytest.mark.skipif(os.name == "nt", reason="symlinks")
@pytest.mark.parametrize("corpus,folder,name", [
    ("cefr-sp", "cefr-sp", "CEFR-SP_SCoRE_x.txt"),
    ("universalcefr", "universalcefr", "x.jsonl"),
    ("efcamdat", "efcamdat", "x.csv"),
    ("cowsl2h", "cowsl2h/csv", "x.S19.csv"),
    ("bea19", "bea19/fce/json", "fce.x.json"),
    ("icle500", "icle500", "x.csv"),
])
def test_folders_and_links_in_every_loader(tmp_path, corpus, folder, name):
    src = GOOD / folder if (GOOD / folder).exists() else None
    dst = tmp_path / folder
    if src is not None:
        shutil.copytree(src, dst)
    else:
        dst.mkdir(parents=True)
    (dst / name).mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            load_corpus(corpus, root=tmp_path)
        except DataFormatError:
            pytest.fail("a folder named like a corpus file must be skipped")
        except Exception as e:  # CorpusNotFoundError for an empty copy is fine
            assert type(e).__name__ == "CorpusNotFoundError", e
    assert any("named like a corpus file" in str(w.message) for w in caught)
    (dst / name).rmdir()
    (dst / name).symlink_to(tmp_path / "nowhere")
    with pytest.raises(DataFormatError, match=re.escape(name) + ".*broken symbolic link"):
        load_corpus(corpus, root=tmp_path)


def test_icle500_text_is_a_folder_or_link(tmp_path):
    root = tmp_path / "icle500"
    shutil.copytree(HARD / "icle500", root)
    (root / "Texts" / "GEAU2001.txt").unlink()
    (root / "Texts" / "GEAU2001.txt").mkdir()
    with pytest.raises(DataFormatError, match=r"row 1: .*GEAU2001\.txt is a folder"):
        load_corpus("icle500", root=tmp_path)
    (root / "Texts" / "GEAU2001.txt").rmdir()
    (root / "Texts" / "GEAU2001.txt").symlink_to(tmp_path / "gone")
    with pytest.raises(DataFormatError, match=r"row 1: .*GEAU2001\.txt is a broken symbolic"):
        load_corpus("icle500", root=tmp_path)


# --- 8. malformed files: decoding, csv, JSON, missing columns ---------------------------------

LATIN1 = "Gr\xfc\xdfe aus K\xf6ln".encode("latin-1")


def _write(tmp_path, rel, data: bytes):
    p = tmp_path / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


MALFORMED = [
    # (corpus, options, file, bytes, message pattern)
    ("merlin-de", {}, "merlin/meta_ltext_THs/german/1.txt", b"METADATA\n" + LATIN1,
     r"1\.txt: line \d+: not UTF-8"),
    ("cowsl2h", {}, "cowsl2h/csv/a.F17.csv", b"id,prompt,quarter,course,essay\n1,a,F17,SPA 1,"
     + LATIN1 + b"\n", r"a\.F17\.csv: line \d+: not UTF-8"),
    ("cowsl2h", {}, "cowsl2h/csv/a.F17.csv", b'id,prompt,quarter,course,essay\n1,a,F17,SPA 1,"open'
     b"\n2,a,F17,SPA 1,x\n", r"a\.F17\.csv: row 1 .*unexpected end of data"),
    ("cowsl2h", {}, "cowsl2h/csv/a.F17.csv", b"id,prompt,quarter,essay\n1,a,F17,x\n",
     r"a\.F17\.csv: header row: missing column\(s\) course"),
    ("efcamdat", {}, "efcamdat/a.csv", b"writing_id,learner_id,cefr,text\n1,2,A1," + LATIN1
     + b"\n", r"a\.csv: line \d+: not UTF-8"),
    ("efcamdat", {}, "efcamdat/a.csv", b"writing_id,cefr,text\n1,A1,x\n",
     r"a\.csv: header row: missing column\(s\) learner_id"),
    ("efcamdat", {}, "efcamdat/a.csv", b'writing_id,learner_id,cefr,text\n1,2,A1,"x"y"\n',
     r"a\.csv: row 1 \(near line 2\): ',' expected after"),
    ("bea19", {}, "bea19/fce/json/fce.dev.json", b'{"id": "1", "text": "' + LATIN1 + b'"}\n',
     r"fce\.dev\.json: line \d+: not UTF-8"),
    ("bea19", {}, "bea19/fce/json/fce.dev.json", b'{"id": "1", "text": "a"}\n{"id": 2,\n',
     r"fce\.dev\.json: line 2: invalid JSON"),
    ("bea19", {}, "bea19/fce/json/fce.dev.json", b'{"id": "1"}\n',
     r"fce\.dev\.json: line 1: needs string fields 'id' and 'text'"),
    ("bea19", {}, "bea19/wi+locness/json/A.dev.json", b'{"id": "1", "userid": "u", "text": "a"}\n',
     r"A\.dev\.json: line 1: no 'cefr' field"),
    ("icle500", {}, "icle500/m.csv", b"filename,cefr\nA1.txt,B1\n", r"m\.csv: row 1: text file"),
    ("icle500", {}, "icle500/m.csv", b"name,cefr\nA1,B1\n", r"m\.csv: header row: no file-name"),
    ("universalcefr", {}, "universalcefr/a.json", b'[{"text": "a", "lang": "en", "cefr_level": '
     b'"A1"}, {"text": "b"', r"a\.json: invalid JSON at line 1"),
    ("universalcefr", {}, "universalcefr/a.json", b'[{"text": "' + LATIN1 + b'"}]',
     r"a\.json: line \d+: not UTF-8"),
    ("universalcefr", {}, "universalcefr/a.jsonl", b'{"text": "a", "lang": "en"}\n',
     r"a\.jsonl: line 1: missing field\(s\) cefr_level"),
    ("cefr-sp", {}, "cefr-sp/CEFR-SP_x_dev.txt", b"A sentence.\t1\t" + LATIN1 + b"\n",
     r"CEFR-SP_x_dev\.txt: line \d+: not UTF-8"),
    ("cefr-sp", {}, "cefr-sp/CEFR-SP_x_dev.txt", b"A sentence.\t1\n",
     r"CEFR-SP_x_dev\.txt: line 1: expected 3 tab-separated"),
    ("table", {"path": "t.csv", "language": "en"}, "t.csv", b"text\n" + LATIN1 + b"\n",
     r"t\.csv: line \d+: not UTF-8"),
    ("table", {"path": "t.jsonl", "language": "en", "strict": True}, "t.jsonl",
     b'{"text": "a"}\n[1]\n',
     r"t\.jsonl: line 2: expected a JSON object"),
    ("table", {"path": "t.xlsx", "language": "en"}, "t.xlsx", b"not a zip",
     r"t\.xlsx: cannot read xlsx"),
    ("table", {"path": "t.csv", "language": "en", "strict": True}, "t.csv",
     b"text,id\na,1\nb\n",
     r"t\.csv: row 2 .*1 fields, header has 2"),
]


@pytest.mark.parametrize("corpus,options,rel,data,match", MALFORMED,
                         ids=[f"{c}-{i}" for i, (c, *_) in enumerate(MALFORMED)])
def test_malformed_files_name_file_and_row(tmp_path, corpus, options, rel, data, match):
    _write(tmp_path, rel, data)
    if corpus == "icle500":
        (tmp_path / "icle500" / "Texts").mkdir()
    with pytest.raises(DataFormatError, match=match):
        load_corpus(corpus, root=tmp_path, **options)


def test_unknown_loader_option_is_a_config_error():
    with pytest.raises(ConfigError, match=r"corpus 'merlin-de': unknown option\(s\) 'langs'; "
                       r"accepted: labels, on_error, path, strict"):
        load_corpus("merlin-de", root=GOOD, langs=["de"])
