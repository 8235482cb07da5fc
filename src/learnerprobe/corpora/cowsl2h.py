"""COWS-L2H: essays by university learners of Spanish (L2 and heritage), ``csv/<prompt>.<quarter>.csv``.

Mapping
- ``id`` = ``<prompt>.<quarter>.<student id>`` (the same student writes in several quarters and
  prompts, so the student id alone is not unique); ``author_id`` = the student id.
- ``text`` = essay; ``text_corrected`` = corrected1 (instructor correction, None when absent;
  corrected2 is in ``meta``); ``task`` = prompt; ``language`` = "es"; ``cefr`` = None (COWS-L2H
  has no CEFR rating).
- Course -> ordinal proficiency proxy in ``meta`` (raw course kept as ``course``):

  ======================  ==============  =========================  ===============
  course                  meta["level"]   meta["level_ordinal"]      meta["track"]
  ======================  ==============  =========================  ===============
  SPA 1, 2, 3 (1Y, 3V..)  beginner        0                          L2
  SPA 21, 22, 23, 24      intermediate    1                          L2
  SPA 100+ / "Other       advanced        2                          L2 (upper div.)
  upper division courses"
  SPA 31, 32, 33          heritage        None (separate scale)      heritage
  empty / unknown         None            None                       None
  ======================  ==============  =========================  ===============

  ``meta["course_number"]`` is the course number with suffix letters dropped ("SPA 22V" -> 22),
  a finer ordinal within each track.
- L1: the questionnaire changed in W21 and S21 (see the corpus README): in those files the
  "l1 language" column holds answers to a different question (a count such as "3" or
  "4 or more") and the mother tongue(s) sit in "other l1 language(s)". We read the L1 from the
  right column per quarter; ``l1_raw`` keeps the raw answer. Several L1s ("English,Spanish")
  normalise to a joined label ("English/Spanish"), see :mod:`learnerprobe.corpora.languages`.
  For the other quarters, the remaining self-rating answers are kept under their CSV names in
  ``meta["questionnaire"]``; for W21/S21 the CSV headers do not describe the answers, so they
  are kept with ``meta["questionnaire_version"] = 2``.
- Age/gender: in some files (W18, S18) the two columns are swapped; we detect a gender answer
  in the age column and swap back. ``age`` is the first integer in the answer or None.
- Rows are kept as released: none is empty in v2 of the CSVs (5,382 rows), 13 are very short
  (fragments such as "Hola."). Dropping those is a preparation decision (``prep.clean``). An
  empty essay or one holding a NUL byte is skipped and counted (refused with ``strict``).
- Labels: a file without its L1 column, or with the L1 or course column empty in every row, is
  a DataFormatError naming the file and column (``labels="optional"``: loaded with a warning).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from learnerprobe.corpora._common import (
    LabelsMode,
    check_labels_mode,
    check_unique_ids,
    checked_text,
    files_in,
    locate,
    missing_labels,
    read_csv,
)
from learnerprobe.corpora.languages import normalise_l1
from learnerprobe.errors import CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://github.com/ucdaviscl/cowsl2h"
REQUIRED = ("id", "prompt", "quarter", "course", "essay")
V2_QUARTERS = frozenset({"W21", "S21"})
_QUESTIONNAIRE = (
    "other l1 language(s)", "language(s) used at home", "language(s) studied",
    "listening comprehension", "reading comprehension", "speaking ability", "writing ability",
    "study abroad",
)
_COURSE = re.compile(r"^\s*SPA\s*(\d+)\s*([A-Z]*)\s*$", re.I)
_INT = re.compile(r"\b(\d{1,2})\b")


def course_level(course: str | None) -> dict[str, Any]:
    """Ordinal proficiency proxy for a course name (see the table in the module docstring)."""
    out: dict[str, Any] = {"level": None, "level_ordinal": None, "track": None,
                           "course_number": None}
    if not course:
        return out
    m = _COURSE.match(course)
    if m:
        n = int(m.group(1))
        out["course_number"] = n
        if n in (1, 2, 3):
            out.update(level="beginner", level_ordinal=0, track="L2")
        elif 21 <= n <= 24:
            out.update(level="intermediate", level_ordinal=1, track="L2")
        elif 31 <= n <= 33:
            out.update(level="heritage", track="heritage")
        elif n >= 100:
            out.update(level="advanced", level_ordinal=2, track="L2")
    elif "upper division" in course.lower():
        out.update(level="advanced", level_ordinal=2, track="L2")
    return out


def _looks_gender(s: str) -> bool:
    t = s.lower()
    return any(w in t for w in ("female", "male", "identify", "prefer not"))


def _age(s: str | None) -> int | None:
    if not s:
        return None
    m = _INT.search(s)
    return int(m.group(1)) if m else None


def find_root(root: Path, path: str | Path | None = None) -> Path:
    return locate(root, ["cowsl2h/csv", "cowsl2h", "cowsl2h-master/csv"],
                  corpus="cowsl2h", url=URL, path=path)


def parse_file(
    path: Path, *, labels: LabelsMode = "required", strict: bool = False,
) -> list[LearnerText]:
    """All essays of one ``<prompt>.<quarter>.csv`` file (see :func:`load` for the options)."""
    out: list[LearnerText] = []
    header: list[str] = []
    for i, row in read_csv(path, required=REQUIRED):
        header = header or list(row)
        rec = _record(path, i, row, strict=strict)
        if rec is not None:
            out.append(rec)
    if out:
        _check_labels(path, header, out, labels)
    return out


def _check_labels(
    path: Path, header: list[str], out: list[LearnerText], labels: LabelsMode,
) -> None:
    """The L1 column of the file's questionnaire version and the course column (the level
    proxy) must exist and hold a value in some row, else no essay of the file is labelled."""
    l1_col = "other l1 language(s)" if out[0].meta["quarter"] in V2_QUARTERS else "l1 language"
    if l1_col not in header:
        missing_labels(f"{path}: header row", f"no L1 column {l1_col!r}; found "
                       f"{', '.join(c for c in header if c)}", labels=labels, n=len(out))
    elif all(r.l1_raw is None for r in out):
        missing_labels(str(path), f"L1 column {l1_col!r} is empty in every row", labels=labels,
                       n=len(out))
    if all(r.meta["course"] is None for r in out):
        missing_labels(str(path), "course column 'course' (the level) is empty in every row",
                       labels=labels, n=len(out))


def _record(path: Path, i: int, row: dict[str, str], *, strict: bool) -> LearnerText | None:
    """One essay; None for an essay skipped (empty or holding a NUL byte, counted)."""
    sid = row["id"].strip()
    prompt, quarter = row["prompt"].strip(), row["quarter"].strip()
    if not sid or not prompt or not quarter:
        raise DataFormatError(f"{path}: row {i}: empty id, prompt or quarter")
    text = checked_text(row["essay"], where=f"{path}: row {i}: column 'essay'", strict=strict)
    if text is None:
        return None
    l1_col = "other l1 language(s)" if quarter in V2_QUARTERS else "l1 language"
    l1_raw = (row.get(l1_col) or "").replace("\xa0", " ").strip() or None
    return LearnerText(
        id=f"{prompt}.{quarter}.{sid}",
        corpus="cowsl2h",
        language="es",
        text=text,
        text_corrected=(row.get("corrected1") or "").strip() or None,
        l1=normalise_l1(l1_raw),
        l1_raw=l1_raw,
        author_id=sid,
        task=prompt,
        meta=_meta(path, i, row, quarter, l1_col),
    )


def _meta(path: Path, i: int, row: dict[str, str], quarter: str, l1_col: str) -> dict[str, Any]:
    v2 = quarter in V2_QUARTERS
    age_raw, gender_raw = (row.get("age") or "").strip(), (row.get("gender") or "").strip()
    if _looks_gender(age_raw) and not _looks_gender(gender_raw):
        age_raw, gender_raw = gender_raw, age_raw
    course = (row.get("course") or "").strip() or None
    return {
        "quarter": quarter,
        "course": course,
        **course_level(course),
        "age": _age(age_raw),
        "age_raw": age_raw or None,
        "gender": gender_raw.lower() or None,
        "corrected2": (row.get("corrected2") or "").strip() or None,
        "questionnaire_version": 2 if v2 else 1,
        "questionnaire": {k: row[k] for k in _QUESTIONNAIRE if k in row and k != l1_col}
        | ({"l1 language": row.get("l1 language", "")} if v2 else {}),
        "source": f"{path.name}:{i}",
    }


def load(
    root: Path, *, path: str | Path | None = None, labels: LabelsMode = "required",
    strict: bool = False,
) -> list[LearnerText]:
    """All COWS-L2H essays from the CSV release, in file order.

    ``labels="optional"`` loads a file without its L1 column (or with it, or the course,
    empty in every row) unlabelled with a warning; by default that is a DataFormatError naming
    the file and the column. ``strict`` refuses an essay that is empty or holds a NUL byte
    (by default skipped and counted in the load report)."""
    check_labels_mode(labels)
    base = find_root(root, path)
    files = files_in(base, (".csv",), recursive=False)
    if not files:
        raise CorpusNotFoundError(f"corpus 'cowsl2h': no .csv files in {base}. Get it from {URL}")
    out: list[LearnerText] = []
    for f in files:
        out.extend(parse_file(f, labels=labels, strict=strict))
    check_unique_ids(out, str(base))
    return out
