"""Icelandic L2 Error Corpus (Ingason et al. 2021): ``iceErrorCorpusL2/data/``.

101 TEI files (``rit*.xml``: essays and thesis chapters; ``verk*.xml``: course assignments) with
sentences of tokens (``<s>``, ``<w>``, ``<c>``) and error annotation: each error is a
``<revision>`` holding the learner's ``<original>`` tokens, the ``<corrected>`` tokens and the
error types. ``metadata.tsv`` gives per file the first language(s), other languages, length of
residence and of study (years) and the CEFR level, every value in brackets (``[serbian]``,
``[english, norwegian]``, ``[C1]``, ``[]`` for none); its lines end in ``\\r\\r\\n`` or a bare
``\\r``, which is read as a line break.

Mapping
- ``id`` = the file stem; ``language`` = "is"; ``meta["subset"]`` = "rit" or "verk".
- ``text`` = the learner's own forms: tokens outside revisions plus each revision's
  ``<original>`` (never the corrections), sentences joined by spaces. ``text_corrected`` = the
  same with each revision's ``<corrected>`` tokens. The release is tokenised without spacing, so
  tokens are joined by a space except before ``. , ; : ! ? ) ] } %`` and after ``( [ {`` and
  the Icelandic opening quote ``„`` (other quotes are ambiguous and keep their spaces).
- ``cefr`` = ``level`` (``[]`` -> None, 2 texts; the ``*_raw`` fields hold the values without
  their brackets); ``l1`` = ``1st language`` through
  :func:`learnerprobe.corpora.languages.normalise_l1` (two first languages become a joined label,
  "English/Italian"); other languages, residence and study years are in ``meta``;
  ``meta["n_revisions"]`` counts the annotated errors.
- ``author_id``: the release has no learner id, but one learner's texts share a metadata row
  (rit001-rit005 are chapters of one thesis, verk053-verk059 one learner's exercises). Texts
  with the same L1, other languages, residence, study and level get one ``author_id``
  ("profile-<hash>") so that grouped splits keep them together; learners with identical
  profiles are grouped too, which only makes splits more conservative.

Options: ``path`` (the data folder), ``on_error`` ("skip" default: a malformed or refused file
is skipped and counted in the load report; "error" refuses), ``strict`` (refuse malformed files
and unrecognised CEFR levels).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal
from xml.etree.ElementTree import Element

from learnerprobe.corpora._common import (
    cefr_label,
    check_unique_ids,
    files_in,
    locate,
    note,
    read_text_file,
)
from learnerprobe.corpora._xml import check_load_options, descendants, local, read_xml
from learnerprobe.corpora.languages import normalise_l1
from learnerprobe.errors import CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://github.com/antonkarl/iceErrorCorpusSpecialized (Icelandic L2 Error Corpus)"
COLUMNS = {
    "file": "file name", "l1": "1st language", "other": "2nd language(s)",
    "residence": "length of residence (in years)", "study": "length of study", "level": "level",
}
_SKIP = {"corrected", "errors", "error", "reframing"}
_NO_SPACE_BEFORE = re.compile(r" ([.,;:!?)\]}%])")
_NO_SPACE_AFTER = re.compile(r"([(\[{„]) ")


def find_root(root: Path, path: str | Path | None = None) -> Path:
    return locate(root, ["icelandic-l2/iceErrorCorpusL2/data", "iceErrorCorpusL2/data",
                         "icelandic-l2/data", "icelandic-l2"],
                  corpus="icelandic-l2", url=URL, path=path)


# --------------------------------------------------------------------------- metadata.tsv
def _unbracket(v: str) -> str | None:
    v = v.strip()
    if v.startswith("[") and v.endswith("]"):
        v = v[1:-1].strip()
    return v or None


def _years(v: str | None) -> float | None:
    try:
        return float(v) if v else None
    except ValueError:
        return None


def _langs(v: str | None) -> list[str]:
    return [x for x in re.split(r"[,\s]+", v or "") if x]


def read_metadata(path: Path) -> dict[str, dict[str, Any]]:
    """File stem -> metadata row (values unbracketed), with the source row number."""
    lines = [ln for ln in read_text_file(path).splitlines() if ln.strip()]
    if not lines:
        raise DataFormatError(f"{path}: empty file (no header row)")
    header = [h.strip() for h in lines[0].split("\t")]
    missing = [c for c in COLUMNS.values() if c not in header]
    if missing:
        raise DataFormatError(f"{path}: header row: missing column(s) {', '.join(missing)}; "
                              f"found {', '.join(header)}")
    out: dict[str, dict[str, Any]] = {}
    for i, line in enumerate(lines[1:], 1):
        cells = line.split("\t")
        if len(cells) != len(header):
            raise DataFormatError(f"{path}: row {i}: {len(cells)} fields, header has "
                                  f"{len(header)}")
        row = dict(zip(header, cells, strict=True))
        raw = {k: row[c].strip() for k, c in COLUMNS.items()}
        name = _unbracket(raw["file"])
        if not name:
            raise DataFormatError(f"{path}: row {i}: empty file name")
        out[name.removesuffix(".xml")] = {
            "row": i, "raw": raw, **{k: _unbracket(v) for k, v in raw.items() if k != "file"},
        }
    return out


# --------------------------------------------------------------------------- TEI text
def _tokens(el: Element, side: str) -> list[str]:
    """Tokens below ``el``: a revision gives its ``side`` ("original" or "corrected")."""
    tag = local(el.tag)
    if tag in ("w", "c") and not any(local(k.tag) in ("w", "c", "revision") for k in el):
        tok = "".join(el.itertext()).strip()
        return [tok] if tok else []
    if tag == "revision":
        keep = {side} if side == "original" else {"corrected", "w", "c"}
        out = []
        for k in el:
            if local(k.tag) in keep:
                out += _inner(k, side) if local(k.tag) == side else _tokens(k, side)
        return out
    return _inner(el, side)


def _inner(el: Element, side: str) -> list[str]:
    """Tokens of ``el``'s own text, children (annotation skipped) and their tails."""
    out = el.text.split() if el.text and el.text.strip() else []
    for k in el:
        if local(k.tag) not in _SKIP:
            out += _tokens(k, side)
        if k.tail and k.tail.strip():
            out += k.tail.split()
    return out


def detokenise(tokens: list[str]) -> str:
    """Tokens joined by spaces, without a space before closing or after opening punctuation."""
    s = " ".join(tokens)
    return _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", s))


def texts(path: Path, tei: Element) -> tuple[str, str, int]:
    """(learner's original text, corrected text, number of revisions) of a TEI document."""
    sents = descendants(tei, "s")
    if not sents:
        raise DataFormatError(f"{path}: no <s> sentences in the TEI body")
    orig = " ".join(t for s in sents if (t := detokenise(_tokens(s, "original"))))
    corr = " ".join(t for s in sents if (t := detokenise(_tokens(s, "corrected"))))
    if not orig:
        raise DataFormatError(f"{path}: no learner text (the sentences hold no tokens)")
    return orig, corr, len(descendants(tei, "revision"))


# --------------------------------------------------------------------------- records
def _author(meta: dict[str, Any]) -> str:
    key = "|".join(str(meta["raw"][k]).lower() for k in ("l1", "other", "residence", "study",
                                                         "level"))
    return "profile-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]


def parse_file(path: Path, meta_row: dict[str, Any] | None, tsv: Path, *,
               strict: bool = False) -> LearnerText:
    """One TEI file with its metadata row (a file without one is a DataFormatError)."""
    if meta_row is None:
        raise DataFormatError(f"{path}: no row for {path.stem!r} in {tsv}")
    original, corrected, n_rev = texts(path, read_xml(path))
    level = meta_row["level"]
    cefr = cefr_label(level, strict=strict, where=f"{tsv}: row {meta_row['row']}") if level else None
    l1_raw = meta_row["l1"]
    return LearnerText(
        id=path.stem, corpus="icelandic-l2", language="is", text=original,
        text_corrected=corrected or None, cefr=cefr, cefr_raw=level,
        l1=normalise_l1(l1_raw), l1_raw=l1_raw, author_id=_author(meta_row),
        meta={
            "subset": re.sub(r"\d+$", "", path.stem) or None,
            "other_languages": [n for x in _langs(meta_row["other"]) if (n := normalise_l1(x))],
            "other_languages_raw": meta_row["other"],
            "residence_years": _years(meta_row["residence"]),
            "study_years": _years(meta_row["study"]),
            "n_revisions": n_rev, "source": path.name,
        },
    )


def load(
    root: Path, *, path: str | Path | None = None, on_error: Literal["error", "skip"] = "skip",
    strict: bool = False,
) -> list[LearnerText]:
    """All texts of the Icelandic L2 Error Corpus, sorted by file name."""
    check_load_options("icelandic-l2", on_error, strict=strict)
    base = find_root(root, path)
    tsv = locate(base, ["metadata.tsv"], corpus="icelandic-l2", url=URL,
                 what="metadata table")
    meta = read_metadata(tsv)
    files = files_in(base, (".xml",), recursive=False)
    if not files:
        raise CorpusNotFoundError(f"corpus 'icelandic-l2': no .xml files in {base}. "
                                  f"Get it from {URL}")
    out: list[LearnerText] = []
    for f in files:
        try:
            out.append(parse_file(f, meta.get(f.stem), tsv, strict=strict))
        except DataFormatError as e:
            if strict or on_error == "error":
                raise
            note("skipped_bad_file", str(e))
    check_unique_ids(out, str(base))
    return out
