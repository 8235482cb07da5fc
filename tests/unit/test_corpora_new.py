"""The ALC, CEFR-ASAG and Icelandic L2 loaders on small fixtures written here in each release's
shape (ALC: UTF-16 with the real internal DTD; the others: TEI), including crafted XML that
must be refused (billion laughs, external entities, external DTDs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from learnerprobe.corpora import load_corpus
from learnerprobe.corpora.alc import level_of
from learnerprobe.corpora.alc import parse_file as alc_file
from learnerprobe.corpora.icelandic_l2 import detokenise
from learnerprobe.errors import ConfigError, CorpusNotFoundError, DataFormatError

# --------------------------------------------------------------------------- ALC fixtures
ALC_DTD = """<!DOCTYPE doc [
<!ELEMENT doc (header,text)>
<!ATTLIST doc
ID ID #REQUIRED
>
<!ELEMENT header (learner_profile,text_profile)>
<!ELEMENT learner_profile (age,gender,nationality,mothertongue,nativeness,No_languages_spoken,\
No_years_learning_Arabic,No_years_Arabic_countries,general_level,level_study,year_or_semester,\
educational_institution)>
<!ELEMENT age (#PCDATA)>
<!ELEMENT gender (#PCDATA)>
<!ELEMENT nationality (#PCDATA)>
<!ELEMENT mothertongue (#PCDATA)>
<!ELEMENT nativeness (#PCDATA)>
<!ELEMENT text (title,text_body)>
<!ELEMENT title (#PCDATA)>
<!ELEMENT text_body (#PCDATA)>
]>"""


def alc_xml(doc_id: str, *, tongue="Moore", nativeness="NNAS", level="Diploma course",
            mode="Written", body="جملة أولى.\r\n\r\n  جملة ثانية.  ", dtd=ALC_DTD) -> str:
    """An ALC file as the release writes it (CRLF lines; encode as UTF-16 to store)."""
    general = "University" if level in ("BA", "MA") else "Pre-university"
    medium = "Recorded interview" if mode == "Spoken" else "Written by hand"
    return (
        '<?xml version="1.0"?>\r\n<!--Arabic Learner Corpus_v2_2014-->\r\n' + dtd + "\r\n"
        f'<doc ID="{doc_id}">\r\n\t<header>\r\n\t\t<learner_profile>\r\n'
        "\t\t\t<age>20</age>\r\n\t\t\t<gender>Male</gender>\r\n"
        "\t\t\t<nationality>Burkina Faso</nationality>\r\n"
        f"\t\t\t<mothertongue>{tongue}</mothertongue>\r\n"
        f"\t\t\t<nativeness>{nativeness}</nativeness>\r\n"
        "\t\t\t<No_languages_spoken>4</No_languages_spoken>\r\n"
        "\t\t\t<No_years_learning_Arabic>14</No_years_learning_Arabic>\r\n"
        "\t\t\t<No_years_Arabic_countries>3</No_years_Arabic_countries>\r\n"
        f"\t\t\t<general_level>{general}</general_level>\r\n"
        f"\t\t\t<level_study>{level}</level_study>\r\n"
        "\t\t\t<year_or_semester>Second semester</year_or_semester>\r\n"
        "\t\t\t<educational_institution>Arabic Inst. at Imam Uni</educational_institution>\r\n"
        "\t\t</learner_profile>\r\n\t\t<text_profile>\r\n"
        "\t\t\t<genre>Narrative</genre>\r\n\t\t\t<where>In class</where>\r\n"
        "\t\t\t<year>2012</year>\r\n\t\t\t<country>Saudi Arabia</country>\r\n"
        "\t\t\t<city>Riyadh</city>\r\n\t\t\t<timed>Yes</timed>\r\n"
        "\t\t\t<ref_used>No</ref_used>\r\n\t\t\t<grammar_ref_used>No</grammar_ref_used>\r\n"
        "\t\t\t<mono_dic_used>No</mono_dic_used>\r\n\t\t\t<bi_dic_used>No</bi_dic_used>\r\n"
        "\t\t\t<other_ref_used>No</other_ref_used>\r\n"
        f"\t\t\t<mode>{mode}</mode>\r\n\t\t\t<medium>{medium}</medium>\r\n"
        "\t\t\t<length>4</length>\r\n\t\t</text_profile>\r\n\t</header>\r\n"
        "\t<text>\r\n\t\t<title>الرحلة</title>\r\n"
        f"\t\t<text_body>{body}</text_body>\r\n\t</text>\r\n</doc>"
    )


def write_alc(root: Path, doc_id: str, **kw) -> Path:
    folder = root / "alc-v2" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{doc_id}.xml"
    p.write_bytes(alc_xml(doc_id, **kw).encode("utf-16"))  # BOM + little-endian, as released
    return p


@pytest.fixture()
def alc_root(tmp_path: Path) -> Path:
    write_alc(tmp_path, "S001_T1_M_Pre_NNAS_W_C")
    write_alc(tmp_path, "S001_T2_M_Pre_NNAS_W_C", level="Language course")
    write_alc(tmp_path, "S500_T1_M_Pre_NAS_W_C", tongue="Arabic", nativeness="NAS",
              level="Secondary school")
    write_alc(tmp_path, "S002_T1_F_Pre_NNAS_S_C", tongue="Cambodian", mode="Spoken",
              body="نص منطوق")
    return tmp_path


# --------------------------------------------------------------------------- CEFR-ASAG fixtures
def asag_xml(*, grades: tuple[str, ...] | None = ("B1", "B2", "B1"), release: str | None = "B1",
             natives=("fr",), level="B1", answer=("First line.", "Second line."),
             dtd: str = "") -> str:
    """A CEFR-ASAG TEI file (grades=None: the unlabelled layout, no examiners or grading)."""
    langs = "".join(f'<langKnown level="native" tag="{t}"/>' for t in natives)
    examiners = "" if grades is None else (
        '<listPerson type="examiners">' + "".join(
            f'<person role="examiner" sex="F" xml:id="examiner.{i}"/>'
            for i in range(1, len(grades) + 1)) + "</listPerson>")
    grading = "" if grades is None else (
        '<div type="grading">' + "".join(
            f'<label corresp="#examiner.{i}" subtype="writing" type="level"><span>{g}</span>'
            f'<note type="comment">{"vocab" if i == 2 else ""}</note></label>'
            for i, g in enumerate(grades, 1))
        + (f'<label subtype="majority-vote" type="level"><span>{release}</span></label>'
           if release else "") + "</div>")
    paras = "".join(f"<p>{a}</p>" for a in answer)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + dtd + "<TEI><teiHeader><fileDesc><titleStmt>"
        "<title/></titleStmt></fileDesc><profileDesc><particDesc>"
        '<person age="22" role="participant" sex="M"><education type="higher-secondary"/>'
        f"<langKnowledge>{langs}</langKnowledge></person>{examiners}</particDesc>"
        "<settingDesc><p>collected in a university-level language learning classroom</p>"
        "</settingDesc></profileDesc></teiHeader><text><body>"
        '<div type="question"><p>What are your daily habits?</p>'
        f'<note type="word-limit">(at least 30 words)</note><label type="level"><span>{level}'
        f'</span></label></div><div type="answer">{paras}</div>{grading}</body></text></TEI>'
    )


def write_asag(root: Path, sub: str, stem: str, **kw) -> Path:
    folder = root / "cefr-asag" / "corpus" / sub
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{stem}.xml"
    p.write_text(asag_xml(**kw), encoding="utf-8")
    return p


@pytest.fixture()
def asag_root(tmp_path: Path) -> Path:
    write_asag(tmp_path, "labelled", "0001")  # B1 B2 B1 -> majority B1
    write_asag(tmp_path, "labelled", "0002", grades=("A2", "A2", "A2"), release="A2",
               natives=("fr", "nl"))
    write_asag(tmp_path, "labelled", "0003", grades=("B2", "C2", "C1"), release="C1")  # none
    write_asag(tmp_path, "labelled", "0004", grades=("C1", "NA", "B2"), release="C1")  # none
    write_asag(tmp_path, "labelled", "0005", grades=("B1", "NA", "B1"), release="B1")
    write_asag(tmp_path, "unlabelled", "0100", grades=None, level="A2")
    return tmp_path


# --------------------------------------------------------------------------- Icelandic fixtures
TEI_NS = "http://www.tei-c.org/ns/1.0"
#: one sentence: plain tokens, a substitution, a missing word (empty original), an extra word
#: (empty correction), a nested <w>, <hi> in a token, and the malformed revision shape of the
#: release (corrected tokens loose in the revision between two empty <corrected/>)
ICE_BODY = """<s n="1">
  <w>Ég</w>
  <revision id="1">
    <original><w>fór</w><w>til</w></original>
    <corrected><w>fór</w><w>í</w></corrected>
    <errors><error xtype="wrong-prep" eid="0" /></errors>
  </revision>
  <revision id="2">
    <original></original>
    <corrected><w>gær</w></corrected>
    <errors><error xtype="missing-word" eid="0" /></errors>
  </revision>
  <w><hi>bíó</hi></w>
  <revision id="3">
    <original><w>með</w><w>því</w></original>
    <corrected></corrected>
    <errors><error xtype="extra-words" eid="0" /></errors>
  </revision>
  <c>(</c>
  <w>og</w>
  <c>)</c>
  <revision id="4">
    <original><w>afturábak</w></original>
    <corrected />
      <w>aftur</w>
    <corrected />
    <errors><error xtype="merged-words" idx="4-1" /></errors>
  </revision>
  <c>.</c>
</s>
<s n="2">
  <w><w>Það</w><w>var</w></w>
  <revision id="5">
    <original><w>gamann</w></original>
    <corrected><w>gaman</w></corrected>
    <errors><error xtype="extra-letter" eid="0" /></errors>
  </revision>
  <c>!</c>
</s>"""


def ice_xml(name: str, body: str = ICE_BODY, dtd: str = "") -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n{dtd}<TEI xmlns="{TEI_NS}"><teiHeader>'
            f"<fileDesc><titleStmt><title>{name}.xml</title></titleStmt></fileDesc></teiHeader>"
            f'<text><body><p n="1">\n{body}\n</p></body></text></TEI>')


ICE_META = [
    ("rit001", "[serbian]", "[english, norwegian]", "[4]", "[4]", "[C1]"),
    ("rit002", "[serbian]", "[english, norwegian]", "[4]", "[4]", "[C1]"),
    ("verk001", "[english, italian]", "[]", "[0.3]", "[3]", "[A2]"),
    ("verk002", "[polish]", "[]", "[14]", "[8]", "[]"),
]
ICE_HEADER = ("file name", "1st language", "2nd language(s)", "length of residence (in years)",
              "length of study", "level")


def write_ice(root: Path, names=("rit001", "rit002", "verk001", "verk002"),
              meta=ICE_META) -> Path:
    folder = root / "icelandic-l2" / "iceErrorCorpusL2" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / f"{n}.xml").write_text(ice_xml(n), encoding="utf-8")
    rows = ["\t".join(ICE_HEADER)] + ["\t".join(r) for r in meta]
    # The release ends lines with \r\r\n and, in places, with a bare \r\r.
    tsv = "\r\r\n".join(rows[:3]) + "\r\r" + "\r\r\n".join(rows[3:]) + "\r\r\n"
    (folder / "metadata.tsv").write_bytes(tsv.encode("utf-8"))
    return folder


# --------------------------------------------------------------------------- crafted XML
LAUGHS = ('<!DOCTYPE doc [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;">'
          '<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>')
XXE = '<!DOCTYPE doc [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
PARAM = '<!DOCTYPE doc [<!ENTITY % ext SYSTEM "file:///etc/passwd"> %ext;]>'
EXT_DTD = '<!DOCTYPE doc SYSTEM "file:///etc/passwd">'
ATTACKS = {"billion-laughs": (LAUGHS, "&lol2;"), "external-entity": (XXE, "&xxe;"),
           "parameter-entity": (PARAM, ""), "external-dtd": (EXT_DTD, "")}


def _crafted(corpus: str, root: Path, dtd: str, ref: str) -> Path:
    """A crafted file next to a good one, in the corpus's own layout."""
    if corpus == "alc":
        write_alc(root, "S001_T1_M_Pre_NNAS_W_C")
        return write_alc(root, "S009_T1_M_Pre_NNAS_W_C", dtd=dtd, body=f"نص {ref}")
    if corpus == "cefr-asag":
        write_asag(root, "labelled", "0001")
        return write_asag(root, "labelled", "0666", dtd=dtd, answer=(f"text {ref}",))
    folder = write_ice(root, names=("rit001",))
    p = folder / "rit002.xml"
    p.write_text(ice_xml("rit002", body=f"<s><w>orð</w><w>{ref}</w></s>", dtd=dtd),
                 encoding="utf-8")
    return p


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("corpus", ["alc", "cefr-asag", "icelandic-l2"])
def test_crafted_xml_is_refused_with_one_line_naming_the_file(corpus, attack, tmp_path):
    bad = _crafted(corpus, tmp_path, *ATTACKS[attack])
    with pytest.raises(DataFormatError) as e:
        load_corpus(corpus, root=tmp_path, strict=True)
    msg = str(e.value)
    assert str(bad) in msg and "refused" in msg and "\n" not in msg, msg
    assert "root:" not in msg  # nothing of /etc/passwd was read into the message


@pytest.mark.parametrize("corpus", ["alc", "cefr-asag", "icelandic-l2"])
def test_crafted_file_is_skipped_and_counted_by_default(corpus, tmp_path):
    bad = _crafted(corpus, tmp_path, *ATTACKS["external-entity"])
    with pytest.warns(UserWarning, match="malformed file"):
        recs = load_corpus(corpus, root=tmp_path)
    assert len(recs) == 1 and all("passwd" not in r.text and "root:" not in r.text for r in recs)
    assert recs.report.counts["skipped_bad_file"] == 1
    assert str(bad) in recs.report.examples["skipped_bad_file"][0]
    with pytest.raises(DataFormatError, match=re.escape(str(bad))):
        load_corpus(corpus, root=tmp_path, on_error="error")


def test_alc_real_dtd_without_entities_loads(tmp_path):
    p = write_alc(tmp_path, "S001_T1_M_Pre_NNAS_W_C")
    assert p.read_bytes()[:2] == b"\xff\xfe"
    assert alc_file(p).text == "جملة أولى.\nجملة ثانية."


@pytest.mark.parametrize("corpus", ["alc", "cefr-asag", "icelandic-l2"])
def test_malformed_xml_names_file_and_line(corpus, tmp_path):
    bad = _crafted(corpus, tmp_path, "", "")
    bad.write_bytes(bad.read_bytes()[:-40])  # cut short
    with pytest.raises(DataFormatError, match=re.escape(str(bad)) + r": line \d+, column \d+: "
                       r"malformed XML"):
        load_corpus(corpus, root=tmp_path, strict=True)


@pytest.mark.parametrize("corpus", ["alc", "cefr-asag", "icelandic-l2"])
def test_missing_corpus_and_bad_options(corpus, tmp_path):
    with pytest.raises(CorpusNotFoundError, match="LEARNERPROBE_DATA"):
        load_corpus(corpus, root=tmp_path)
    _crafted(corpus, tmp_path, "", "")
    with pytest.raises(ConfigError, match=r"option strict='maybe'"):
        load_corpus(corpus, root=tmp_path, strict="maybe")
    with pytest.raises(ConfigError, match=r"on_error"):
        load_corpus(corpus, root=tmp_path, on_error="ignore")


# --------------------------------------------------------------------------- ALC
def test_alc_learners_written_only_by_default(alc_root):
    recs = {r.id: r for r in load_corpus("alc", root=alc_root)}
    assert set(recs) == {"S001_T1_M_Pre_NNAS_W_C", "S001_T2_M_Pre_NNAS_W_C"}
    r = recs["S001_T1_M_Pre_NNAS_W_C"]
    assert (r.corpus, r.language, r.cefr, r.task, r.author_id) == (
        "alc", "ar", None, "Narrative", "S001")
    assert (r.l1, r.l1_raw) == ("Mossi", "Moore")
    assert r.text == "جملة أولى.\nجملة ثانية."
    assert r.meta["level"] == "Diploma course" and r.meta["level_ordinal"] == 1
    assert r.meta["track"] == "L2" and r.meta["general_level"] == "Pre-university"
    assert r.meta["native"] is False and r.meta["spoken"] is False
    assert r.meta["years_learning_arabic"] == 14 and r.meta["title"] == "الرحلة"
    assert recs["S001_T2_M_Pre_NNAS_W_C"].meta["level_ordinal"] == 0
    assert recs["S001_T2_M_Pre_NNAS_W_C"].author_id == "S001"


def test_alc_natives_and_spoken_on_request(alc_root):
    assert len(load_corpus("alc", root=alc_root, natives=True)) == 3
    assert len(load_corpus("alc", root=alc_root, spoken=True)) == 3
    recs = {r.id: r for r in load_corpus("alc", root=alc_root, natives=True, spoken=True)}
    nat = recs["S500_T1_M_Pre_NAS_W_C"]
    assert nat.meta["native"] is True and nat.l1 == "Arabic"
    assert nat.meta["track"] == "native" and nat.meta["level_ordinal"] is None
    sp = recs["S002_T1_F_Pre_NNAS_S_C"]
    assert sp.meta["spoken"] is True and sp.meta["mode"] == "spoken" and sp.l1 == "Khmer"
    with pytest.raises(ConfigError, match=r"option natives='maybe'"):
        load_corpus("alc", root=alc_root, natives="maybe")


def test_alc_level_proxy_table():
    got = {s: level_of(s, native=False)["level_ordinal"]
           for s in ("Language course", "Diploma course", "BA", "MA", "Secondary school")}
    assert got == {"Language course": 0, "Diploma course": 1, "BA": 2, "MA": 3,
                   "Secondary school": None}
    assert level_of("BA", native=True) == {"level": "BA", "track": "native",
                                           "level_ordinal": None}


def test_alc_bad_nativeness_is_a_file_error(tmp_path):
    p = write_alc(tmp_path, "S001_T1_M_Pre_NNAS_W_C", nativeness="maybe")
    with pytest.raises(DataFormatError, match=re.escape(str(p)) + ".*nativeness"):
        alc_file(p)


# --------------------------------------------------------------------------- CEFR-ASAG
def test_asag_majority_and_examiners(asag_root):
    recs = {r.id: r for r in load_corpus("cefr-asag", root=asag_root)}
    assert set(recs) == {"0001", "0002", "0003", "0004", "0005"}
    r = recs["0001"]
    assert (r.language, r.cefr, r.cefr_raw, r.l1, r.l1_raw) == ("en", "B1", "B1", "French", "fr")
    assert r.meta["examiners"] == {"examiner.1": "B1", "examiner.2": "B2", "examiner.3": "B1"}
    assert r.meta["examiner_comments"] == {"examiner.2": "vocab"}
    assert r.meta["agreement"] == "majority" and r.meta["prompt_level"] == "B1"
    assert r.text == "First line.\nSecond line." and r.task == "What are your daily habits?"
    assert r.author_id is None  # no participant id in the release
    assert recs["0002"].meta["agreement"] == "unanimous"
    assert recs["0002"].l1 == "Dutch/French" and recs["0002"].l1_raw == "fr,nl"
    # "NA" is no rating, but two of three examiners still agree
    assert recs["0005"].cefr == "B1" and recs["0005"].meta["agreement"] == "majority"


def test_asag_no_majority_choices(asag_root):
    rel = {r.id: r for r in load_corpus("cefr-asag", root=asag_root)}
    assert (rel["0003"].cefr, rel["0003"].meta["agreement"]) == ("C1", "none")
    assert rel["0004"].cefr == "C1"
    unl = {r.id: r.cefr for r in load_corpus("cefr-asag", root=asag_root,
                                             no_majority="unlabelled")}
    assert unl["0003"] is None and unl["0004"] is None and unl["0001"] == "B1"
    drop = {r.id for r in load_corpus("cefr-asag", root=asag_root, no_majority="drop")}
    assert drop == {"0001", "0002", "0005"}
    with pytest.raises(ConfigError, match="no_majority"):
        load_corpus("cefr-asag", root=asag_root, no_majority="vote")


def test_asag_majority_computed_not_copied(tmp_path):
    """Where two examiners agree, their level wins over a differing release label."""
    write_asag(tmp_path, "labelled", "0001", grades=("A2", "A2", "B1"), release="B1")
    (r,) = load_corpus("cefr-asag", root=tmp_path)
    assert r.cefr == "A2" and r.cefr_raw == "B1"


def test_asag_subsets(asag_root):
    unl = load_corpus("cefr-asag", root=asag_root, subset="unlabelled")
    assert [(r.id, r.cefr, r.meta["prompt_level"]) for r in unl] == [("0100", None, "A2")]
    assert len(load_corpus("cefr-asag", root=asag_root, subset="all")) == 6
    write_asag(asag_root, "labelled", "0009", grades=None)  # a labelled file without grading
    with pytest.warns(UserWarning, match="malformed file"):
        recs = load_corpus("cefr-asag", root=asag_root)
    assert "0009" not in {r.id for r in recs}
    with pytest.raises(DataFormatError, match=r"0009\.xml: no <div type=\"grading\">"):
        load_corpus("cefr-asag", root=asag_root, strict=True)


# --------------------------------------------------------------------------- Icelandic L2
def test_icelandic_text_is_the_learners_original(tmp_path):
    write_ice(tmp_path)
    recs = {r.id: r for r in load_corpus("icelandic-l2", root=tmp_path)}
    r = recs["rit001"]
    assert r.text == "Ég fór til bíó með því (og) afturábak. Það var gamann!"
    assert r.text_corrected == "Ég fór í gær bíó (og) aftur. Það var gaman!"
    assert (r.language, r.cefr, r.cefr_raw, r.l1, r.l1_raw) == (
        "is", "C1", "C1", "Serbian", "serbian")
    assert r.meta["other_languages"] == ["English", "Norwegian"]
    assert r.meta["residence_years"] == 4.0 and r.meta["n_revisions"] == 5
    assert r.meta["subset"] == "rit" and recs["verk001"].meta["subset"] == "verk"


def test_icelandic_metadata_brackets_and_line_ends(tmp_path):
    write_ice(tmp_path)
    recs = {r.id: r for r in load_corpus("icelandic-l2", root=tmp_path)}
    assert set(recs) == {"rit001", "rit002", "verk001", "verk002"}  # the bare-\r row too
    assert recs["verk001"].l1 == "English/Italian" and recs["verk001"].cefr == "A2"
    assert recs["verk001"].meta["other_languages"] == []
    assert recs["verk002"].cefr is None and recs["verk002"].cefr_raw is None
    # one learner's texts share a metadata row -> one author; other profiles differ
    assert recs["rit001"].author_id == recs["rit002"].author_id
    assert len({r.author_id for r in recs.values()}) == 3


def test_icelandic_file_without_metadata_row(tmp_path):
    folder = write_ice(tmp_path, names=("rit001", "rit003"), meta=ICE_META[:1])
    with pytest.warns(UserWarning, match="malformed file"):
        recs = load_corpus("icelandic-l2", root=tmp_path)
    assert [r.id for r in recs] == ["rit001"]
    with pytest.raises(DataFormatError, match=re.escape(str(folder / "rit003.xml"))):
        load_corpus("icelandic-l2", root=tmp_path, strict=True)


def test_icelandic_metadata_missing_or_malformed(tmp_path):
    folder = write_ice(tmp_path)
    (folder / "metadata.tsv").write_text("file name\tlevel\nrit001\t[C1]\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"metadata\.tsv: header row: missing column"):
        load_corpus("icelandic-l2", root=tmp_path)
    (folder / "metadata.tsv").unlink()
    with pytest.raises(CorpusNotFoundError, match="metadata table"):
        load_corpus("icelandic-l2", root=tmp_path)


def test_detokenise():
    assert detokenise(["Hún", "sagði", "„", "já", "“", "(", "sjá", "1", ")", ",", "en",
                       "..."]) == "Hún sagði „já “ (sjá 1), en..."
