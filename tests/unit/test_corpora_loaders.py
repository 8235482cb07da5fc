"""Every loader on a small fixture in its real format, including a malformed file each."""

import csv
import re

import pytest

from learnerprobe.corpora import CORPORA, get_corpus, load_corpus
from learnerprobe.corpora.bea19 import apply_edits
from learnerprobe.corpora.cowsl2h import course_level
from learnerprobe.errors import (
    ConfigError,
    CorpusNotFoundError,
    DataFormatError,
    LearnerprobeError,
)
from tests.helpers.corpus_fixtures import fixture_tree

FIX = fixture_tree()  # tests/fixtures/corpora plus the MERLIN/COWS-L2H files written at test time
GOOD, BAD = FIX / "good", FIX / "bad"


def by_id(recs):
    return {r.id: r for r in recs}


def bad_load(name, match, **options):
    """Loading must fail with a DataFormatError whose message names the file and a row/line."""
    with pytest.raises(DataFormatError) as e:
        load_corpus(name, root=BAD, **options)
    msg = str(e.value)
    assert re.search(match, msg), msg
    assert re.search(r"(row|line)s? \d+", msg), msg
    return msg


# --- registry ---------------------------------------------------------------------------------

def test_registry_names_and_entries():
    want = {"merlin", "merlin-cs", "merlin-de", "merlin-it", "cowsl2h", "efcamdat", "bea19",
            "icle500", "universalcefr", "cefr-sp", "alc", "cefr-asag", "icelandic-l2", "table"}
    assert set(CORPORA) == want
    for e in CORPORA.values():
        assert e.url and e.licence and e.label_types and callable(e.loader)
    assert get_corpus("merlin-it").languages == ("it",)


def test_unknown_corpus_lists_known_names():
    with pytest.raises(LearnerprobeError, match="known: merlin, merlin-cs"):
        get_corpus("merlin-fr")


@pytest.mark.parametrize("name", [n for n in CORPORA if n != "table"])
def test_missing_corpus_says_where_and_how(name, tmp_path):
    with pytest.raises(CorpusNotFoundError) as e:
        load_corpus(name, root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "LEARNERPROBE_DATA" in msg
    assert get_corpus(name).url.split()[0] in msg


def test_default_root_is_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNERPROBE_DATA", str(GOOD))
    assert len(load_corpus("cefr-sp")) == 12
    monkeypatch.setenv("LEARNERPROBE_DATA", str(tmp_path))
    with pytest.raises(CorpusNotFoundError, match=re.escape(str(tmp_path))):
        load_corpus("cefr-sp")


# --- merlin -----------------------------------------------------------------------------------

def test_merlin_fixture():
    recs = load_corpus("merlin", root=GOOD)
    assert [r.language for r in recs] == ["cs", "cs", "de", "de", "de", "it", "it"]
    d = by_id(recs)
    r = d["1031_0000001"]
    assert r.cefr == "A2" and r.l1 == "Russian" and r.task == "write to a friend"
    # A learner's own dashed line does not cut the text; the first line's indent survives.
    assert r.text.endswith("----------------\nViele Grüße") and "\n  Ich komme" in r.text
    assert r.text_corrected.startswith("Liebe Anna , ich habe deinen")
    assert r.meta["target_hypothesis_2"].startswith("Liebe Anna , ich habe Deinen")
    assert d["1031_0000002"].l1 is None and d["1031_0000002"].meta["age_range"] == "20-29"
    unrated = d["1031_0000003"]
    assert unrated.cefr is None and unrated.cefr_raw == "unrated" and unrated.l1 == "Russian"
    assert unrated.meta["gender"] is None and unrated.text_corrected is None
    assert d["PHA0000001"].l1 == "Chinese/English"
    assert d["1385_0000001"].l1 == "German/Other"
    assert [r.id for r in load_corpus("merlin-it", root=GOOD)] == ["1385_0000001", "1385_0000002"]


def test_merlin_malformed():
    msg = bad_load("merlin-de", "missing 'Learner text:' section", path="merlin")
    assert "1031_0000009.txt" in msg
    msg = bad_load("merlin-de", "unknown test language 'Klingon'", path="merlin_lang")
    assert "1031_0000010.txt: line 5" in msg


# --- cowsl2h ----------------------------------------------------------------------------------

def test_cowsl2h_fixture():
    recs = load_corpus("cowsl2h", root=GOOD)
    d = by_id(recs)
    assert len(recs) == 7 and set(d) >= {"famous.F17.100001", "famous.W21.100001"}
    r = d["famous.F17.100001"]
    assert r.author_id == "100001" and r.task == "famous" and r.language == "es"
    assert r.text == "Mi persona famosa es Frida Kahlo.\n\nElla es una pintora de México."
    assert r.text_corrected.startswith("Mi persona famosa") and r.cefr is None
    assert r.meta["level"] == "beginner" and r.meta["level_ordinal"] == 0
    swapped = d["famous.F17.100002"]
    assert swapped.meta["age"] == 20 and swapped.meta["gender"] == "male"
    assert swapped.l1 == "English/Spanish" and swapped.meta["course_number"] == 22
    assert d["famous.F17.100003"].meta["level"] == "heritage"
    assert d["famous.F17.100003"].meta["level_ordinal"] is None
    assert d["famous.F17.100003"].meta["corrected2"] == "Yo admiro a César Chávez."
    assert d["famous.F17.100004"].meta["level"] is None
    assert d["famous.F17.100005"].meta["level"] == "advanced" and d["famous.F17.100005"].l1 is None
    # W21: the L1 is in "other l1 language(s)"; "4 or more" is an answer to another question.
    w = d["famous.W21.100001"]
    assert w.l1 == "English/Other" and w.l1_raw == "English,Other"
    assert w.meta["questionnaire_version"] == 2
    assert d["famous.W21.100006"].l1 == "Mandarin"


@pytest.mark.parametrize("course,level,ordinal", [
    ("SPA 1", "beginner", 0), ("SPA 1Y", "beginner", 0), ("SPA22", "intermediate", 1),
    ("SPA 24", "intermediate", 1), ("SPA 31", "heritage", None), ("SPA 111N", "advanced", 2),
    ("Other upper division courses", "advanced", 2), (None, None, None), ("SPA 9", None, None),
])
def test_cowsl2h_course_levels(course, level, ordinal):
    c = course_level(course)
    assert (c["level"], c["level_ordinal"]) == (level, ordinal)


def test_cowsl2h_malformed():
    msg = bad_load("cowsl2h", "8 fields, header has 27", path="cowsl2h")
    assert "famous.S19.csv: row 2" in msg


# --- efcamdat ---------------------------------------------------------------------------------

def test_efcamdat_csv_fixture():
    recs = load_corpus("efcamdat", root=GOOD)
    assert len(recs) == 8
    d = by_id(recs)
    r = d["3"]
    assert (r.author_id, r.cefr, r.l1, r.task) == ("102", "A2", "Mandarin",
                                                   "Describing your favourite day")
    assert r.text_corrected == "My favourite day is Sunday because I can sleep late."
    assert r.meta["level"] in (5, "5") and r.meta["nationality"] == "cn"
    assert d["5"].text_corrected is None
    assert d["7"].meta["prompts"] == "alternative" and d["1"].meta["prompts"] == "main"


def test_efcamdat_xlsx(tmp_path):
    from openpyxl import Workbook

    src = GOOD / "efcamdat" / "Final database (main prompts).csv"
    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet 1"
    with open(src, encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            ws.append([int(c) if i and c.isdigit() else c for c in row])
    (tmp_path / "efcamdat").mkdir()
    wb.save(tmp_path / "efcamdat" / "Final database (main prompts).xlsx")
    recs = load_corpus("efcamdat", root=tmp_path)
    assert [r.id for r in recs] == ["1", "2", "3", "4", "5", "6"]  # no "1.0" from Excel ints
    assert recs[0].author_id == "101" and recs[5].cefr == "C1" and recs[0].l1 == "Portuguese"


def test_efcamdat_malformed():
    bad_load("efcamdat", r"Final database \(main prompts\)\.csv: row 3 \(writing_id 3\): "
             r"unrecognised CEFR label 'Z9'", strict=True)
    with pytest.warns(UserWarning, match=r"main prompts\)\.csv: row 3 .*'Z9'"):
        recs = load_corpus("efcamdat", root=BAD)
    assert by_id(recs)["3"].cefr is None and by_id(recs)["3"].cefr_raw == "Z9"
    assert recs.report.counts["unparseable_cefr"] == 1


# --- bea19 ------------------------------------------------------------------------------------

def test_bea19_fixture():
    recs = load_corpus("bea19", root=GOOD)
    d = by_id(recs)
    assert len(recs) == 7
    wi = d["wi.1-1"]
    assert (wi.cefr, wi.cefr_raw, wi.author_id, wi.split) == ("A2+", "A2.ii", "21007", "train")
    assert wi.text_corrected == "My town is very beautiful. There are a lot of parks."
    assert d["wi.1-2"].text_corrected == "I agree with you about this topic."
    assert d["wi.1-3"].text_corrected == "Yesterday I went to the cinema."  # first annotator
    native = d["wi.WR_5-1"]
    assert native.cefr is None and native.l1 == "English" and native.meta["native"]
    assert native.split == "dev" and native.text_corrected == native.text
    fce = d["fce.TR1*0102*2000*01.q1"]
    assert (fce.l1, fce.l1_raw, fce.author_id, fce.cefr) == ("Catalan", "ca",
                                                             "TR1*0102*2000*01", None)
    assert fce.meta["answer_score"] == 3.3 and fce.meta["script_score"] == 27.0
    assert fce.text_corrected == "Dear Mrs Ryan, I am writing to tell you about my holidays."
    assert d["fce.TR2*0100*2000*02.q1"].l1 == "Spanish"
    assert {r.id for r in load_corpus("bea19", root=GOOD, subsets=["fce"])} == {
        r.id for r in recs if r.id.startswith("fce.")}


def test_bea19_apply_edits():
    assert apply_edits("a b c", [[0, [[2, 3, None], [4, 5, "d"]]]], "x") == "a b d"
    assert apply_edits("abc", [[0, [[0, 0, "X"]]]], "x") == "Xabc"
    # An edit outside the text is skipped (and counted), never fatal for the corpus.
    with pytest.warns(UserWarning, match="f.json: line 3: 1 edit.*outside the text"):
        assert apply_edits("abc", [[0, [[2, 9, "x"]]]], "f.json: line 3") == "abc"


def test_bea19_malformed():
    bad_load("bea19", r"fce\.dev\.json: line 3: invalid JSON", path="bea19/fce/json")
    bad_load("bea19", r"B\.dev\.json: line 2: unrecognised CEFR label 'Q9'",
             path="bea19_cefr/wi+locness/json", strict=True)


def test_bea19_explicit_missing_subset():
    with pytest.raises(CorpusNotFoundError, match=r"\(fce\)"):
        load_corpus("bea19", root=GOOD / "..", subsets=["fce"])


# --- icle500 ----------------------------------------------------------------------------------

def test_icle500_fixture():
    recs = load_corpus("icle500", root=GOOD)
    d = by_id(recs)
    assert list(d) == ["GEAU1001", "FRUC1002", "SPM01003", "CNUK1004", "PO001005"]
    r = d["SPM01003"]
    assert (r.cefr, r.cefr_raw, r.l1, r.task) == ("B2+", "B2+", "Spanish", "University degrees")
    assert r.text.startswith("Most university degrees") and r.meta["Words"] == "14"
    assert d["PO001005"].cefr == "C2" and d["GEAU1001"].author_id == "GEAU1001"


def test_icle500_malformed():
    bad_load("icle500", r"metadata\.csv: row 2: text file .*GEAU1099\.txt does not exist")


# --- universalcefr ----------------------------------------------------------------------------

def test_universalcefr_jsonl_and_json_array():
    recs = load_corpus("universalcefr", root=GOOD)
    assert len(recs) == 8
    assert {r.language for r in recs} == {"en", "de", "es", "it", "cs", "fr", "pt", "nl"}
    d = by_id(recs)
    r = d["merlin.mixed.2"]
    assert (r.language, r.cefr, r.task) == ("de", "A2", "essay_12")
    assert r.meta["source_name"] == "merlin" and r.meta["license"] == "CC BY-SA 4.0"
    assert d["elg-nl.elg.3"].cefr == "C2"


def test_universalcefr_parquet(tmp_path):
    import pandas as pd

    rows = pd.read_json(GOOD / "universalcefr" / "mixed.jsonl", lines=True)
    (tmp_path / "universalcefr").mkdir()
    rows.to_parquet(tmp_path / "universalcefr" / "part-0.parquet")
    recs = load_corpus("universalcefr", root=tmp_path)
    assert [r.cefr for r in recs] == ["B1", "A2", "C1", "B2", "A1"]
    assert recs[2].language == "es"


def test_universalcefr_malformed():
    bad_load("universalcefr", r"broken\.jsonl: row 4: unrecognised CEFR label 'Q7'", strict=True)
    with pytest.warns(UserWarning, match=r"broken\.jsonl: row 4: 'Q7'"):
        recs = load_corpus("universalcefr", root=BAD)
    assert recs.report.counts == {"unparseable_cefr": 1}


# --- cefr-sp ----------------------------------------------------------------------------------

def test_cefrsp_floor_and_mean():
    recs = load_corpus("cefr-sp", root=GOOD)
    assert len(recs) == 12
    d = by_id(recs)
    r = d["CEFR-SP_SCoRE_train.4"]
    assert (r.cefr, r.cefr_raw, r.split) == ("B1", "3,4", "train")
    assert (r.meta["annotator_1"], r.meta["annotator_2"]) == (3, 4)
    assert d["CEFR-SP_SCoRE_train.6"].text == 'He said "fine" and left.'  # quotes kept
    assert d["CEFR-SP_Wikiauto_dev.1"].cefr == "A1" and d["CEFR-SP_Wikiauto_dev.1"].split == "dev"
    assert d["CEFR-SP_SCoRE_train.8"].cefr == "C1"  # (6, 5) -> 5.5 -> C1
    mean = by_id(load_corpus("cefr-sp", root=GOOD, agg="mean"))
    assert mean["CEFR-SP_SCoRE_train.4"].cefr == "B1+"
    assert mean["CEFR-SP_SCoRE_train.1"].cefr == "A1"


def test_cefrsp_malformed():
    bad_load("cefr-sp", r"CEFR-SP_SCoRE_dev\.txt: line 3: levels must be integers 1-6")


# --- table ------------------------------------------------------------------------------------

COLS = {"id": "essay_id", "text": "essay", "cefr": "level", "l1": "native_language",
        "author_id": "student", "language": "lang", "task": "prompt"}


def test_table_mapping():
    recs = load_corpus("table", root=GOOD, path="table/my_essays.csv", columns=COLS,
                       corpus="my-essays")
    d = by_id(recs)
    assert [r.language for r in recs] == ["de", "it", "de", "cs", "en"]
    assert d["e1"].l1 == "English" and d["e5"].l1 == "German"  # "Englisch", "Deutsch"
    assert d["e3"].cefr == "B1+" and d["e4"].cefr is None and d["e5"].cefr == "B2"
    assert d["e1"].corpus == "my-essays" and d["e1"].author_id == "s1"
    assert d["e1"].meta == {"source": "my_essays.csv:1"}


def test_table_needs_path_and_language():
    with pytest.raises(ConfigError, match="needs path"):
        load_corpus("table", root=GOOD)
    with pytest.raises(ConfigError, match="language"):
        load_corpus("table", root=GOOD, path="table/my_essays.csv", columns={"text": "essay"})
    with pytest.raises(DataFormatError, match="missing column"):
        load_corpus("table", root=GOOD, path="table/my_essays.csv", columns={"text": "body"},
                    language="en")


def test_table_malformed():
    opts = dict(path="table/my_essays.csv", labels="optional",
                columns={"id": "essay_id", "text": "essay", "language": "lang"})
    bad_load("table", r"my_essays\.csv: row 3: column 'essay': empty text", strict=True, **opts)
    # Without strict the empty row is skipped and counted (a user's 851-row CSV with one
    # empty text used to fail as a whole).
    recs = load_corpus("table", root=BAD, **opts)
    assert [r.id for r in recs] == ["e1", "e2"]
    assert recs.report.counts["skipped_empty_text"] == 1


def test_non_utf8_file_is_a_format_error(tmp_path):
    (tmp_path / "latin1.csv").write_bytes("id,text\n1,Gr\xfc\xdfe aus K\xf6ln\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.csv: line 2: not UTF-8"):
        load_corpus("table", root=tmp_path, path="latin1.csv", language="de")


def test_option_of_wrong_type_is_refused_when_loaded_by_name(tmp_path):
    """`load_corpus(name, strict="maybe")` must not reach the loader as a truthy string."""
    from learnerprobe.corpora.registry import load_corpus
    from learnerprobe.errors import ConfigError

    with pytest.raises(ConfigError, match=r"option strict='maybe'"):
        load_corpus("cowsl2h", root=tmp_path, strict="maybe")
