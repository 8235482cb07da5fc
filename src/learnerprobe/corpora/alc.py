"""Arabic Learner Corpus v2 (Alfaifi, Atwell and Hedaya 2014): ``data/*.xml``, one text a file.

Each file is UTF-16 XML with an internal DTD (read with :func:`learnerprobe.corpora._xml.read_xml`:
entity declarations and external references are refused): ``<doc ID="S001_T1_M_Pre_NNAS_W_C">``
with a learner profile (age, gender, nationality, mothertongue, nativeness NAS/NNAS,
No_languages_spoken, No_years_learning_Arabic, No_years_Arabic_countries, general_level,
level_study, year_or_semester, educational_institution), a text profile (genre, where, year,
country, city, timed, ref_used ..., mode Written/Spoken, medium, length), a title and the body.

Mapping
- ``id`` = the doc ID (the file stem); ``author_id`` = the learner number before ``_T``
  ("S001": the same learner wrote up to five texts); ``task`` = genre (Narrative/Discussion);
  ``language`` = "ar"; ``text`` = the body (lines stripped, blank lines dropped), the title kept
  in ``meta["title"]``; ``cefr`` = None (ALC has no CEFR rating).
- Natives: ``nativeness`` NAS (native Arabic-speaking students learning written standard Arabic;
  790 texts) are kept apart as LOCNESS is in ``bea19``: left out by default, loaded with
  ``natives=True`` (``meta["native"] = True``, ``l1`` "Arabic").
- Spoken: ``mode`` Spoken (59 transcripts of recorded interviews) are marked
  ``meta["spoken"] = True`` and left out by default (``spoken=True`` loads them).
- Level: ALC records study level, not CEFR. Like COWS-L2H courses, the raw values are kept
  (``general_level``, ``level_study``, ``year_or_semester``) and ``meta["level"]`` =
  level_study with an ordinal proxy for the learners (track "L2"):

  ===================  ================  =====================================================
  level_study          level_ordinal     evidence (non-native texts, real data)
  ===================  ================  =====================================================
  Language course      0                 pre-university, median 3 years of Arabic, 132 words
  Diploma course       1                 pre-university, median 4 years, 163 words
  BA                   2                 university, median 12 years
  MA                   3                 university, median 19 years
  ===================  ================  =====================================================

  Natives (track "native": Secondary school, BA, MA) get no ordinal: another population.
- L1: ``mothertongue`` through :func:`learnerprobe.corpora.languages.normalise_l1` (raw kept in
  ``l1_raw``); nationality answers given as a mother tongue ("Beninese", "Indian", "Ugandan")
  and unidentified names stay None.

Options: ``natives``, ``spoken``, ``path`` (folder or one file), ``on_error`` ("skip", the
default: a malformed or refused file is skipped and counted in the load report; "error"
refuses), ``strict`` (refuse any malformed file, as ``on_error="error"``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from xml.etree.ElementTree import Element

from learnerprobe.corpora._common import check_unique_ids, files_in, locate, note
from learnerprobe.corpora._xml import check_load_options, read_xml, text_of
from learnerprobe.corpora.languages import normalise_l1
from learnerprobe.errors import CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://www.arabiclearnercorpus.com/ (Alfaifi, Atwell and Hedaya 2014)"
LEARNER = (
    "age", "gender", "nationality", "mothertongue", "nativeness", "No_languages_spoken",
    "No_years_learning_Arabic", "No_years_Arabic_countries", "general_level", "level_study",
    "year_or_semester", "educational_institution",
)
TEXT = (
    "genre", "where", "year", "country", "city", "timed", "ref_used", "grammar_ref_used",
    "mono_dic_used", "bi_dic_used", "other_ref_used", "mode", "medium", "length",
)
#: level_study -> ordinal proxy for non-native learners (see the module docstring)
LEVELS = {"language course": 0, "diploma course": 1, "ba": 2, "ma": 3}
_AUTHOR = re.compile(r"^(S\d+)_T\d+", re.I)
_NUM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")


def find_root(root: Path, path: str | Path | None = None) -> Path:
    return locate(root, ["alc-v2/data", "alc/data", "alc-v2", "alc", "ALC/data", "ALC"],
                  corpus="alc", url=URL, path=path)


def _num(v: str | None) -> float | int | None:
    m = _NUM.match(v or "")
    if not m:
        return None
    x = float(m.group(1))
    return int(x) if x.is_integer() else x


def _fields(path: Path, doc: Element, section: str, names: tuple[str, ...]) -> dict[str, Any]:
    sec = doc.find(f"header/{section}")
    if sec is None:
        raise DataFormatError(f"{path}: no <header>/<{section}> element")
    return {n: text_of(sec.find(n)) for n in names}


def _body(path: Path, doc: Element) -> str:
    el = doc.find("text/text_body")
    raw = "".join(el.itertext()) if el is not None else ""
    body = "\n".join(ln.strip() for ln in raw.splitlines() if ln.strip())
    if not body:
        raise DataFormatError(f"{path}: no text in <text>/<text_body>")
    return body


def level_of(level_study: str | None, native: bool) -> dict[str, Any]:
    """``level``, ``level_ordinal`` and ``track`` for a study level (table in the docstring)."""
    key = (level_study or "").strip().lower()
    return {"level": level_study, "track": "native" if native else "L2",
            "level_ordinal": None if native else LEVELS.get(key)}


def parse_file(path: Path, data: bytes | None = None) -> LearnerText:
    """One ALC file; a malformed or unsafe file is a DataFormatError naming it."""
    doc = read_xml(path, data)
    if doc.tag != "doc":
        raise DataFormatError(f"{path}: root element <{doc.tag}>, expected <doc>")
    tid = (doc.get("ID") or path.stem).strip()
    learner = _fields(path, doc, "learner_profile", LEARNER)
    prof = _fields(path, doc, "text_profile", TEXT)
    nativeness = (learner["nativeness"] or "").upper()
    if nativeness not in ("NAS", "NNAS"):
        raise DataFormatError(f"{path}: <nativeness> is {learner['nativeness']!r}, expected "
                              "NAS or NNAS")
    native = nativeness == "NAS"
    mode = (prof["mode"] or "").lower() or None
    m = _AUTHOR.match(tid)
    l1_raw = learner["mothertongue"]
    meta: dict[str, Any] = {
        "native": native, "nativeness": nativeness, "mode": mode, "spoken": mode == "spoken",
        **level_of(learner["level_study"], native),
        "general_level": learner["general_level"], "level_study": learner["level_study"],
        "year_or_semester": learner["year_or_semester"],
        "age": _num(learner["age"]), "gender": (learner["gender"] or "").lower() or None,
        "nationality": learner["nationality"],
        "n_languages_spoken": _num(learner["No_languages_spoken"]),
        "years_learning_arabic": _num(learner["No_years_learning_Arabic"]),
        "years_in_arabic_countries": _num(learner["No_years_Arabic_countries"]),
        "institution": learner["educational_institution"],
        "title": text_of(doc.find("text/title")),
        "text_profile": {k: v for k, v in prof.items() if k not in ("genre", "mode")},
        "source": path.name,
    }
    return LearnerText(
        id=tid, corpus="alc", language="ar", text=_body(path, doc),
        l1="Arabic" if native else normalise_l1(l1_raw), l1_raw=l1_raw,
        author_id=m.group(1).upper() if m else tid, task=prof["genre"], meta=meta,
    )


def load(
    root: Path, *, path: str | Path | None = None, natives: bool = False, spoken: bool = False,
    on_error: Literal["error", "skip"] = "skip", strict: bool = False,
) -> list[LearnerText]:
    """ALC texts sorted by file name: written texts by learners unless asked for more."""
    check_load_options("alc", on_error, natives=natives, spoken=spoken, strict=strict)
    base = find_root(root, path)
    files = files_in(base, (".xml",), recursive=False)
    if not files:
        raise CorpusNotFoundError(f"corpus 'alc': no .xml files in {base}. Get it from {URL}")
    out: list[LearnerText] = []
    for f in files:
        try:
            rec = parse_file(f)
        except DataFormatError as e:
            if strict or on_error == "error":
                raise
            note("skipped_bad_file", str(e))
            continue
        if (rec.meta["native"] and not natives) or (rec.meta["spoken"] and not spoken):
            continue
        out.append(rec)
    check_unique_ids(out, str(base))
    return out
