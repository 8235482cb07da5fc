"""Loaders refuse what they used to swallow, and read the shapes users really have.

- A missing or empty label column is a DataFormatError for a labelled load (the default) and a
  warning with counts with ``labels="optional"`` (COWS-L2H, MERLIN, table, EFCAMDAT, ICLE500);
  ``table`` recognises the obvious names (``CEFR``, ``level``, ``learner`` ...).
- ICLE500's release file names (``001_BGSU1004.txt``, ``270_KRBF1041_relabelled.txt``); a
  metadata name like ``../../x`` never reads outside ``Texts/``.
- NUL bytes and non-string texts are skipped and counted (refused with ``strict``); ``table``
  skips empty and unreadable rows the same way.
- ``root`` may be the data root or the corpus folder itself, for every loader.

Fixtures are built in ``tmp_path`` from the shared ones (``tests/helpers/corpus_fixtures.py``).
"""

import csv
import json
import shutil
import warnings

import pytest
from typer.testing import CliRunner

from learnerprobe.cli import app
from learnerprobe.corpora import load_corpus
from learnerprobe.corpora._common import CorpusWarning
from learnerprobe.errors import CorpusNotFoundError, DataFormatError
from tests.helpers.corpus_fixtures import fixture_tree

FIX = fixture_tree()
GOOD, HARD = FIX / "good", FIX / "hard"


def by_id(recs):
    return {r.id: r for r in recs}


def _rewrite_csv(path, edit):
    """Rewrite a CSV file through ``edit(rows) -> rows`` (header included)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(edit(rows))


def _drop_column(name):
    def edit(rows):
        j = rows[0].index(name)
        return [r[:j] + r[j + 1:] for r in rows]
    return edit


def _empty_column(name):
    def edit(rows):
        j = rows[0].index(name)
        return [rows[0]] + [r[:j] + [""] + r[j + 1:] for r in rows[1:]]
    return edit


# --- 1. missing or empty label columns --------------------------------------------------------

def _cows(tmp_path):
    dst = tmp_path / "cowsl2h" / "csv"
    shutil.copytree(GOOD / "cowsl2h" / "csv", dst)
    return dst


def test_cowsl2h_file_without_l1_column(tmp_path):
    f = _cows(tmp_path) / "famous.F17.csv"
    _rewrite_csv(f, _drop_column("l1 language"))
    with pytest.raises(DataFormatError) as e:
        load_corpus("cowsl2h", root=tmp_path)
    msg = str(e.value)
    assert "famous.F17.csv: header row: no L1 column 'l1 language'" in msg
    assert "labels='optional'" in msg
    with pytest.warns(CorpusWarning, match=r"5 text\(s\) loaded without a label.*famous\.F17"):
        recs = load_corpus("cowsl2h", root=tmp_path, labels="optional")
    assert len(recs) == 7 and recs.report.counts["unlabelled"] == 5
    assert all(r.l1 is None for r in recs if ".F17." in r.id)


def test_cowsl2h_l1_column_empty_in_every_row(tmp_path):
    # W21 keeps the mother tongue in "other l1 language(s)": that is the column checked.
    f = _cows(tmp_path) / "famous.W21.csv"
    _rewrite_csv(f, _empty_column("other l1 language(s)"))
    with pytest.raises(DataFormatError, match=r"famous\.W21\.csv: L1 column 'other l1 "
                       r"language\(s\)' is empty in every row"):
        load_corpus("cowsl2h", root=tmp_path)


def _merlin_de(tmp_path):
    de = tmp_path / "merlin" / "meta_ltext_THs" / "german"
    shutil.copytree(GOOD / "merlin" / "meta_ltext_THs" / "german", de)
    return de


def test_merlin_file_without_overall_rating(tmp_path):
    f = _merlin_de(tmp_path) / "1031_0000002.txt"
    f.write_text("".join(ln for ln in f.read_text().splitlines(keepends=True)
                         if not ln.startswith("Overall CEFR rating")))
    with pytest.raises(DataFormatError) as e:
        load_corpus("merlin-de", root=tmp_path)
    msg = str(e.value)
    assert "1031_0000002.txt: metadata (lines 1-" in msg
    assert "no 'Overall CEFR rating' field" in msg and "labels='optional'" in msg
    with pytest.warns(CorpusWarning, match=r"1 text\(s\) loaded without a label"):
        recs = load_corpus("merlin-de", root=tmp_path, labels="optional")
    assert by_id(recs)["1031_0000002"].cefr is None
    assert recs.report.counts["unlabelled"] == 1


@pytest.mark.parametrize("cefr_col,l1_col", [("CEFR", "L1"), ("level", "Native_Language"),
                                             ("cefr_level", "mother_tongue")])
def test_table_recognises_obvious_label_names(tmp_path, cefr_col, l1_col):
    p = tmp_path / "t.csv"
    p.write_text(f"id,learner,{cefr_col},{l1_col},text\na,s1,B1,German,One.\nb,s2,c1,French,Two.\n")
    recs = load_corpus("table", root=tmp_path, path="t.csv", language="en")
    assert [(r.cefr, r.l1, r.author_id) for r in recs] == [("B1", "German", "s1"),
                                                             ("C1", "French", "s2")]
    assert recs[0].meta == {"source": "t.csv:1"}


def test_table_without_label_column(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("id,author,grade,text\na,s1,B1,One.\nb,s2,C1,Two.\n")
    with pytest.raises(DataFormatError) as e:
        load_corpus("table", root=tmp_path, path="t.csv", language="en")
    msg = str(e.value)
    assert str(p) in msg and "no label column" in msg and "columns.cefr=COLUMN" in msg
    with pytest.warns(CorpusWarning, match=r"2 text\(s\) loaded without a label"):
        recs = load_corpus("table", root=tmp_path, path="t.csv", language="en",
                           labels="optional")
    assert recs.report.counts["unlabelled"] == 2
    # mapped, it is a label again
    recs = load_corpus("table", root=tmp_path, path="t.csv", language="en",
                       columns={"cefr": "grade"})
    assert [r.cefr for r in recs] == ["B1", "C1"]


def test_table_label_column_empty_in_every_row(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("id,user,CEFR,text\na,s1,,One.\nb,s2,,Two.\n")
    with pytest.raises(DataFormatError, match=r"t\.csv: label column 'CEFR' \(cefr\) is empty "
                       r"in every row"):
        load_corpus("table", root=tmp_path, path="t.csv", language="en")


def test_efcamdat_every_cefr_empty(tmp_path):
    dst = tmp_path / "efcamdat"
    dst.mkdir()
    f = dst / "main.csv"
    shutil.copy(GOOD / "efcamdat" / "Final database (main prompts).csv", f)
    _rewrite_csv(f, lambda rows: _empty_column("cefr_numeric")(_empty_column("cefr")(rows)))
    with pytest.raises(DataFormatError) as e:
        load_corpus("efcamdat", root=tmp_path)
    msg = str(e.value)
    assert "main.csv: CEFR label column(s)" in msg and "empty in all 6 rows" in msg
    with pytest.warns(CorpusWarning, match=r"6 text\(s\) loaded without a label"):
        recs = load_corpus("efcamdat", root=tmp_path, labels="optional")
    assert len(recs) == 6 and all(r.cefr is None for r in recs)


def test_icle500_cefr_column_empty(tmp_path):
    root = tmp_path / "icle500"
    shutil.copytree(GOOD / "icle500", root)
    _rewrite_csv(root / "icle500_metadata.csv", _empty_column("CEFR"))
    with pytest.raises(DataFormatError, match=r"icle500_metadata\.csv: CEFR label column 'CEFR' "
                       r"is empty in every row"):
        load_corpus("icle500", root=tmp_path)


# --- 2. ICLE500 release file names and paths -------------------------------------------------

ICLE_META = ("filename,L1,prompt,length_in_words,fair_mean_avge_MFRM,measure_MFRM,"
             "rank_rubric_MFRM,CEFR_MFRM\n"
             "BGSU1004,German,Crime,9,3.41,0.52,12,B2\n"
             "KRBF1041,Korean,Feminism,8,4.02,1.37,3,C1\n"
             "SPM04048,Spanish,Degrees,7,2.61,-0.48,40,B1\n")


def _icle_release(tmp_path, files=None):
    """The release layout: metadata ids without a prefix, text files ``NNN_<id>[_relabelled]``."""
    root = tmp_path / "icle500"
    (root / "Texts").mkdir(parents=True)
    (root / "ICLE500_metadata.csv").write_text(ICLE_META)
    files = files or {"001_BGSU1004.txt": "Crime does not pay.\n",
                      "270_KRBF1041_relabelled.txt": "Feminism changed the world.\n",
                      "499_SPM04048.txt": "Degrees are too theoretical.\n"}
    for name, text in files.items():
        (root / "Texts" / name).write_text(text)
    return root


def test_icle500_release_file_names(tmp_path):
    _icle_release(tmp_path)
    recs = load_corpus("icle500", root=tmp_path)
    d = by_id(recs)
    assert list(d) == ["BGSU1004", "KRBF1041", "SPM04048"]
    assert d["KRBF1041"].text == "Feminism changed the world." and d["KRBF1041"].cefr == "C1"
    assert d["KRBF1041"].meta["relabelled"] is True
    assert d["KRBF1041"].meta["text_file"] == "270_KRBF1041_relabelled.txt"
    assert "relabelled" not in d["SPM04048"].meta and d["SPM04048"].author_id == "SPM04048"


def test_icle500_two_candidate_files_is_an_error(tmp_path):
    root = _icle_release(tmp_path)
    (root / "Texts" / "BGSU1004.txt").write_text("Another copy.\n")
    with pytest.raises(DataFormatError) as e:
        load_corpus("icle500", root=tmp_path)
    msg = str(e.value)
    assert "row 1: two text files for 'BGSU1004'" in msg
    assert "001_BGSU1004.txt" in msg and "Texts/BGSU1004.txt" in msg


def test_icle500_missing_file_says_what_was_looked_for(tmp_path):
    root = _icle_release(tmp_path)
    (root / "Texts" / "499_SPM04048.txt").unlink()
    with pytest.raises(DataFormatError, match=r"row 3: text file .*SPM04048\.txt does not exist "
                       r"\(nor NNN_SPM04048\.txt or NNN_SPM04048_relabelled\.txt\)"):
        load_corpus("icle500", root=tmp_path)


@pytest.mark.parametrize("name", ["../../secret", "../../secret.txt", "Texts/../../../secret",
                                  "/abs/secret.txt", "..", "sub\\..\\..\\secret"])
def test_icle500_file_name_cannot_leave_texts(tmp_path, name):
    # plain file names for the other rows: only row 1's name is at stake
    root = _icle_release(tmp_path, {"KRBF1041.txt": "Feminism.\n", "SPM04048.txt": "Degrees.\n"})
    (tmp_path / "secret.txt").write_text("outside the corpus\n")  # = Texts/../../secret.txt
    meta = root / "ICLE500_metadata.csv"
    meta.write_text(ICLE_META.replace("BGSU1004,", f'"{name}",'))
    with pytest.raises(DataFormatError) as e:
        load_corpus("icle500", root=tmp_path)
    msg = str(e.value)
    assert "row 1: file name" in msg and "is not a plain file name" in msg
    assert "outside the corpus" not in msg


# --- 3. NUL bytes and non-string texts --------------------------------------------------------

def test_table_non_string_and_nul_texts_skipped_or_refused(tmp_path):
    lines = [{"id": "ok", "text": "A real text.", "cefr": "B1"},
             {"id": "num", "text": 42, "cefr": "B1"},
             {"id": "list", "text": ["a", "b"], "cefr": "B1"},
             {"id": "obj", "text": {"a": 1}, "cefr": "B1"},
             {"id": "nul", "text": "bad\u0000text", "cefr": "B1"},
             {"id": "empty", "text": "  ", "cefr": "B1"}]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.warns(CorpusWarning, match=r"4 text\(s\) skipped: not a string, or holding a NUL"):
        recs = load_corpus("table", root=tmp_path, path="t.jsonl", language="en")
    assert [r.id for r in recs] == ["ok"]
    assert recs.report.counts["skipped_bad_text"] == 4
    assert recs.report.counts["skipped_empty_text"] == 1
    ex = " ".join(recs.report.examples["skipped_bad_text"])
    assert "row 2" in ex and "int '42'" in ex and "row 5" in ex and "NUL byte" in ex
    with pytest.raises(DataFormatError, match=r"t\.jsonl: row 2: column 'text': text is not a "
                       r"string but int"):
        load_corpus("table", root=tmp_path, path="t.jsonl", language="en", strict=True)


def test_cowsl2h_nul_in_essay(tmp_path):
    f = _cows(tmp_path) / "famous.W21.csv"
    f.write_bytes(f.read_bytes().replace(b"Me gusta mucho", b"Me gusta\x00mucho"))
    recs = load_corpus("cowsl2h", root=tmp_path)
    assert "famous.W21.100006" not in by_id(recs) and len(recs) == 6
    assert recs.report.counts["skipped_bad_text"] == 1
    with pytest.raises(DataFormatError, match=r"famous\.W21\.csv: row 2: column 'essay': NUL"):
        load_corpus("cowsl2h", root=tmp_path, strict=True)


def test_merlin_and_icle500_nul_in_text_file(tmp_path):
    f = _merlin_de(tmp_path) / "1031_0000002.txt"
    f.write_bytes(f.read_bytes().replace(b"ich interessiere", b"ich\x00interessiere"))
    recs = load_corpus("merlin-de", root=tmp_path)
    assert "1031_0000002" not in by_id(recs) and recs.report.counts["skipped_bad_text"] == 1
    with pytest.raises(DataFormatError, match=r"1031_0000002\.txt: NUL byte"):
        load_corpus("merlin-de", root=tmp_path, strict=True)
    root = _icle_release(tmp_path)
    (root / "Texts" / "001_BGSU1004.txt").write_bytes(b"Crime\x00 does not pay.\n")
    recs = load_corpus("icle500", root=tmp_path)
    assert [r.id for r in recs] == ["KRBF1041", "SPM04048"]
    assert recs.report.counts["skipped_bad_text"] == 1


# --- 4. table: empty and unreadable rows, author column ---------------------------------------

def test_table_one_empty_text_among_851_rows(tmp_path):
    p = tmp_path / "essays.csv"
    with open(p, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "student", "cefr", "text"])
        for i in range(1, 852):
            w.writerow([f"e{i}", f"s{i % 40}", "B1", "" if i == 561 else f"Essay number {i}."])
    with pytest.warns(CorpusWarning, match=r"1 row\(s\) with an empty text skipped .*row 561"):
        recs = load_corpus("table", root=tmp_path, path="essays.csv", language="en")
    assert len(recs) == 850 and "e561" not in by_id(recs)
    assert recs.report.counts == {"skipped_empty_text": 1}
    with pytest.raises(DataFormatError, match=r"essays\.csv: row 561: column 'text': empty text"):
        load_corpus("table", root=tmp_path, path="essays.csv", language="en", strict=True)


def test_table_unreadable_rows_skipped_and_counted(tmp_path):
    (tmp_path / "t.csv").write_text("id,cefr,text\na,B1,One.\nb,B2\nc,C1,Three.\n")
    recs = load_corpus("table", root=tmp_path, path="t.csv", language="en", group_column="id")
    assert [r.id for r in recs] == ["a", "c"]
    assert recs.report.counts["skipped_bad_row"] == 1
    assert "row 2 (ending at line 3): 2 fields, header has 3" in \
        recs.report.examples["skipped_bad_row"][0]
    (tmp_path / "t.jsonl").write_text('{"id": "a", "cefr": "B1", "text": "One."}\n{"id": \n'
                                      '[1]\n{"id": "d", "cefr": "B1", "text": "Four."}\n')
    recs = load_corpus("table", root=tmp_path, path="t.jsonl", language="en", group_column="id")
    assert [r.id for r in recs] == ["a", "d"] and recs.report.counts["skipped_bad_row"] == 2


def test_table_with_no_usable_row_is_an_error(tmp_path):
    (tmp_path / "t.csv").write_text("id,cefr,text\na,B1,\nb,B2,  \n")
    with pytest.raises(DataFormatError, match=r"t\.csv: no row with a usable text \(2 read"):
        load_corpus("table", root=tmp_path, path="t.csv", language="en")


@pytest.mark.parametrize("col", ["author", "learner", "learner_id", "student", "user", "userid",
                                 "Author_ID", "Learner"])
def test_table_author_column_recognised(tmp_path, col):
    (tmp_path / "t.csv").write_text(f"id,{col},cefr,text\na,s1,B1,One.\nb,s1,B2,Two.\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorpusWarning)  # no "treated as one author each"
        recs = load_corpus("table", root=tmp_path, path="t.csv", language="en")
    assert [(r.id, r.author_id) for r in recs] == [("a", "s1"), ("b", "s1")]


def test_table_without_author_column_warns(tmp_path):
    (tmp_path / "t.csv").write_text("id,cefr,text\na,B1,One.\nb,B2,Two.\n")
    with pytest.warns(CorpusWarning, match=r"2 text\(s\) from a table without an author column, "
                      r"each treated as its own author"):
        recs = load_corpus("table", root=tmp_path, path="t.csv", language="en")
    assert all(r.author_id is None for r in recs)
    assert recs.report.counts["no_author_column"] == 2


# --- 5. root: the data root or the corpus folder itself ---------------------------------------

ROOTS = [
    ("icle500", GOOD, "icle500"),
    ("efcamdat", GOOD, "efcamdat"),
    ("cefr-sp", GOOD, "cefr-sp"),
    ("universalcefr", GOOD, "universalcefr"),
    ("bea19", GOOD, "bea19"),
    ("bea19", GOOD, "bea19/wi+locness"),
    ("cowsl2h", GOOD, "cowsl2h"),
    ("cowsl2h", GOOD, "cowsl2h/csv"),
    ("merlin", GOOD, "merlin"),
    ("merlin-de", GOOD, "merlin/meta_ltext_THs"),
]


@pytest.mark.parametrize("corpus,data_root,folder", ROOTS,
                         ids=[f"{c}-{f}" for c, _, f in ROOTS])
def test_root_may_be_the_corpus_folder(corpus, data_root, folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)
        via_data_root = {r.id for r in load_corpus(corpus, root=data_root)}
        via_folder = {r.id for r in load_corpus(corpus, root=data_root / folder)}
    if folder == "bea19/wi+locness":  # that folder holds W&I only
        via_data_root = {i for i in via_data_root if i.startswith("wi.")}
    assert via_folder == via_data_root and via_folder


def test_renamed_corpus_folder_found_by_its_content(tmp_path):
    shutil.copytree(GOOD / "icle500", tmp_path / "my ICLE copy")
    assert len(load_corpus("icle500", root=tmp_path / "my ICLE copy")) == 5


def test_not_found_lists_both_places(tmp_path):
    with pytest.raises(CorpusNotFoundError) as e:
        load_corpus("icle500", root=tmp_path)
    msg = str(e.value)
    assert f"{tmp_path}/icle500" in msg
    assert f"and at {tmp_path} itself as the corpus folder (a folder named icle500" in msg
    assert "holding Texts" in msg
    with pytest.raises(CorpusNotFoundError, match=r"cowsl2h/csv\n.*\n.*/csv\n"):
        load_corpus("cowsl2h", root=tmp_path / "nowhere")


def test_cli_stats_root_is_the_corpus_folder():
    res = CliRunner().invoke(app, ["corpus", "stats", "icle500", "--root",
                                   str(GOOD / "icle500"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["n_texts"] == 5
