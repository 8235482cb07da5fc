"""CEFR-ASAG (Tack et al. 2017): short English answers by university learners, one TEI file each.

``corpus/labelled/*.xml`` (299 answers rated by three CEFR-certified examiners) and
``corpus/unlabelled/*.xml`` (409 answers without ratings). Each TEI header describes the
participant (age, sex, education, ``langKnown level="native" tag="fr"``) and, in the labelled
files, the examiners; the body holds the question (with the CEFR level it targets), the
answer paragraphs and, when labelled, a ``grading`` div with one label per examiner and a
``majority-vote`` label. Files are read with :func:`learnerprobe.corpora._xml.read_xml`.

Mapping
- ``id`` = the file stem (unique over both folders); ``language`` = "en"; ``text`` = the answer
  paragraphs joined by newlines; ``task`` = the question; ``meta["prompt_level"]`` = the level
  the question targets (the level the learner was placed in, not a rating of the answer).
- ``cefr`` = the majority of the examiners: a level given by more than half of them (an
  examiner's "NA" counts as no rating). Every examiner's raw rating is in
  ``meta["examiners"]`` (``{"examiner.1": "B1", ...}``), their comments in
  ``meta["examiner_comments"]``, the release's own majority-vote label in
  ``meta["majority_vote_raw"]`` (``cefr_raw``) and the agreement in ``meta["agreement"]``
  ("unanimous", "majority" or "none").
- No majority (18 answers: three different ratings, or two different ones and an "NA"):
  ``no_majority="release"`` (default) takes the release's majority-vote label, which is the
  middle of the three ratings in every such case (ratings are ordinal); ``"unlabelled"`` keeps
  the answer with ``cefr`` None; ``"drop"`` leaves it out.
- ``l1``: the participant's native languages through
  :func:`learnerprobe.corpora.languages.normalise_l1` (two native languages become a joined
  label, "Dutch/French"); ``l1_raw`` = the language tags, comma-separated.
- ``author_id`` = None: the release has no participant id (answers cannot be grouped by
  learner), so each answer is its own group in grouped splits.

Options: ``subset`` ("labelled", default; "unlabelled": the answers without ratings, ``cefr``
None; "all"), ``no_majority``, ``path``, ``on_error`` ("skip" default / "error"), ``strict``
(refuse malformed files and unrecognised examiner ratings).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal
from xml.etree.ElementTree import Element

from learnerprobe.corpora._common import cefr_label, check_unique_ids, files_in, locate, note
from learnerprobe.corpora._xml import (
    check_load_options,
    child,
    descendants,
    local,
    read_xml,
    text_of,
)
from learnerprobe.corpora.languages import normalise_l1
from learnerprobe.errors import ConfigError, CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://github.com/anaistack/cefr-asag-corpus (Tack et al. 2017)"
SUBSETS = ("labelled", "unlabelled")
NoMajority = Literal["release", "unlabelled", "drop"]
_NOT_RATED = {"", "na", "n/a", "none"}


def find_root(root: Path, path: str | Path | None = None) -> Path:
    """The folder holding ``labelled/`` and ``unlabelled/``."""
    return locate(root, ["cefr-asag/corpus", "cefr-asag-corpus/corpus", "cefr-asag"],
                  corpus="cefr-asag", url=URL, path=path)


def _div(body: Element, kind: str) -> Element | None:
    return next((d for d in descendants(body, "div") if d.get("type") == kind), None)


def _span(label: Element | None) -> str | None:
    return text_of(child(label, "span")) if label is not None else None


def _participant(path: Path, tei: Element) -> dict[str, Any]:
    person = next((p for p in descendants(tei, "person") if p.get("role") == "participant"), None)
    if person is None:
        raise DataFormatError(f"{path}: no <person role=\"participant\"> in the TEI header")
    langs = [(k.get("tag") or "", k.get("level") or "") for k in descendants(person, "langKnown")]
    native = [t for t, lv in langs if lv == "native" and t]
    edu = child(person, "education")
    return {"age": int(a) if (a := person.get("age") or "").isdigit() else None,
            "sex": person.get("sex"), "education": edu.get("type") if edu is not None else None,
            "native": native, "other_languages": [t for t, lv in langs if lv != "native"]}


def _grading(path: Path, grading: Element, strict: bool) -> dict[str, Any]:
    """Examiner ratings, comments, the release's majority label and our majority."""
    examiners: dict[str, str | None] = {}
    comments: dict[str, str] = {}
    release = None
    for lab in (x for x in grading if local(x.tag) == "label"):
        if lab.get("subtype") == "majority-vote":
            release = _span(lab)
            continue
        who = (lab.get("corresp") or f"examiner.{len(examiners) + 1}").lstrip("#")
        examiners[who] = _span(lab)
        if (c := text_of(child(lab, "note"))) is not None:
            comments[who] = c
    if not examiners:
        raise DataFormatError(f"{path}: <div type=\"grading\"> has no examiner labels")
    votes = Counter(
        lv for who, raw in examiners.items() if (raw or "").strip().lower() not in _NOT_RATED
        and (lv := cefr_label(raw, strict=strict, where=f"{path}: {who}")) is not None
    )
    top = votes.most_common(1)
    majority = top[0][0] if top and top[0][1] * 2 > len(examiners) else None
    agreement = ("none" if majority is None else
                 "unanimous" if top[0][1] == len(examiners) else "majority")
    return {"examiners": examiners, "examiner_comments": comments, "majority_vote_raw": release,
            "majority": majority, "agreement": agreement}


def parse_file(
    path: Path, *, subset: str = "labelled", no_majority: NoMajority = "release",
    strict: bool = False,
) -> LearnerText | None:
    """One answer (None when it has no majority and ``no_majority="drop"``)."""
    tei = read_xml(path)
    body = next((b for b in descendants(tei, "body")), None)
    answer = _div(body, "answer") if body is not None else None
    paras = [t for p in descendants(answer, "p") if (t := text_of(p))] if answer is not None else []
    if not paras:
        raise DataFormatError(f"{path}: no answer text (<div type=\"answer\"> with <p>)")
    question = _div(body, "question")
    person = _participant(path, tei)
    meta: dict[str, Any] = {
        "subset": subset,
        "prompt_level": _span(child(question, "label")) if question is not None else None,
        "word_limit": text_of(child(question, "note")) if question is not None else None,
        "age": person["age"], "sex": person["sex"], "education": person["education"],
        "other_languages": person["other_languages"],
        "setting": text_of(next(iter(descendants(tei, "settingDesc")), None)),
        "source": f"{path.parent.name}/{path.name}",
    }
    cefr = None
    grading = _div(body, "grading")
    if grading is not None:
        g = _grading(path, grading, strict)
        cefr = g.pop("majority")
        meta.update(g)
        if cefr is None and no_majority == "drop":
            return None
        if cefr is None and no_majority == "release" and g["majority_vote_raw"]:
            cefr = cefr_label(g["majority_vote_raw"], strict=strict,
                              where=f"{path}: majority-vote label")
    elif subset == "labelled":
        raise DataFormatError(f"{path}: no <div type=\"grading\"> in a labelled answer")
    l1_raw = ",".join(person["native"]) or None
    return LearnerText(
        id=path.stem, corpus="cefr-asag", language="en", text="\n".join(paras),
        cefr=cefr, cefr_raw=meta.get("majority_vote_raw"), l1=normalise_l1(l1_raw),
        l1_raw=l1_raw, author_id=None,
        task=text_of(child(question, "p")) if question is not None else None, meta=meta,
    )


def load(
    root: Path, *, subset: Literal["labelled", "unlabelled", "all"] = "labelled",
    no_majority: NoMajority = "release", path: str | Path | None = None,
    on_error: Literal["error", "skip"] = "skip", strict: bool = False,
) -> list[LearnerText]:
    """CEFR-ASAG answers of ``subset``, labelled before unlabelled, each sorted by file name."""
    check_load_options("cefr-asag", on_error, strict=strict)
    if subset not in (*SUBSETS, "all"):
        raise ConfigError(f"cefr-asag: subset must be one of {', '.join(SUBSETS)}, all; "
                          f"not {subset!r}")
    if no_majority not in ("release", "unlabelled", "drop"):
        raise ConfigError(f"cefr-asag: no_majority must be release, unlabelled or drop, not "
                          f"{no_majority!r}")
    base = find_root(root, path)
    out: list[LearnerText] = []
    for sub in SUBSETS if subset == "all" else (subset,):
        folder = base / sub
        files = files_in(folder, (".xml",), recursive=False) if folder.is_dir() else []
        if not files:
            raise CorpusNotFoundError(f"corpus 'cefr-asag': no .xml files in {folder}. "
                                      f"Get it from {URL}")
        for f in files:
            try:
                rec = parse_file(f, subset=sub, no_majority=no_majority, strict=strict)
            except DataFormatError as e:
                if strict or on_error == "error":
                    raise
                note("skipped_bad_file", str(e))
                continue
            if rec is not None:
                out.append(rec)
    check_unique_ids(out, str(base))
    return out
