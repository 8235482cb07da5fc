"""EFCAMDAT, cleaned subcorpus (Shatz 2020): ``Final database (main prompts).xlsx`` and
``Final database (alternative prompts).xlsx`` (or the same tables saved as CSV).

Users bring the files (registration with the EF Research Lab) and put them in
``$LEARNERPROBE_DATA/efcamdat/``. Columns used: writing_id, learner_id, nationality, l1, cefr,
level (EF course level 1-16), unit, topic (and topic_id), text, text_corrected; any other column
(date, grade, wordcount, mtld, cefr_numeric ...) is kept in ``meta``.

Mapping: ``id`` = writing_id, ``author_id`` = learner_id, ``task`` = topic, ``cefr`` from cefr
(falls back to cefr_numeric), ``meta["prompts"]`` = "main" or "alternative" from the file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learnerprobe.corpora._common import (
    LabelsMode,
    cefr_label,
    check_labels_mode,
    check_unique_ids,
    checked_text,
    clean_str,
    files_in,
    locate,
    missing_labels,
    read_table,
)
from learnerprobe.corpora.languages import normalise_l1
from learnerprobe.errors import CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://ef-lab.mmll.cam.ac.uk/EFCAMDAT.html"
REQUIRED = ("writing_id", "learner_id", "text")
LABEL_COLUMNS = {"cefr", "cefr_numeric"}
_USED = {"writing_id", "learner_id", "l1", "cefr", "topic", "text", "text_corrected"}


def load(
    root: Path, *, path: str | Path | None = None, labels: LabelsMode = "required",
    strict: bool = False,
) -> list[LearnerText]:
    """All rows of every EFCAMDAT table found (xlsx preferred over a CSV of the same name).

    ``labels="optional"`` loads a table without a cefr/cefr_numeric column, or with those
    empty in every row, unlabelled with a warning (else a DataFormatError names the table and
    the columns found); ``strict`` refuses an unrecognised CEFR label (else it loads unrated,
    counted in the load report with a warning) and a row whose text is empty, not a string or
    holds a NUL byte (else skipped and counted).
    """
    check_labels_mode(labels)
    base = locate(root, ["efcamdat", "EFCAMDAT"], corpus="efcamdat", url=URL, path=path,
                  markers=("Final database*",))
    files = files_in(base, (".xlsx", ".csv"))
    stems = {f.stem for f in files if f.suffix == ".xlsx"}
    files = [f for f in files if f.suffix == ".xlsx" or f.stem not in stems]
    if not files:
        raise CorpusNotFoundError(
            f"corpus 'efcamdat': no .xlsx/.csv tables in {base}. Get it from {URL}"
        )
    out: list[LearnerText] = []
    for f in files:
        out.extend(_read(f, labels=labels, strict=strict))
    check_unique_ids(out, str(base))
    return out


def _read(f: Path, *, labels: LabelsMode, strict: bool) -> list[LearnerText]:
    """The records of one table; its label column is checked once the table is read."""
    prompts = "alternative" if "alternative" in f.stem.lower() else "main"
    out: list[LearnerText] = []
    header: list[str] = []
    for i, row in read_table(f, required=REQUIRED):
        header = header or list(map(str, row))
        wid, lid = clean_str(row.get("writing_id")), clean_str(row.get("learner_id"))
        if wid is None or lid is None:
            raise DataFormatError(f"{f}: row {i}: empty writing_id or learner_id")
        text = checked_text(row.get("text"), where=f"{f}: row {i} (writing_id {wid})",
                            strict=strict)
        if text is None:
            continue
        cefr_raw = clean_str(row.get("cefr")) or clean_str(row.get("cefr_numeric"))
        cefr = cefr_label(cefr_raw, strict=strict, where=f"{f}: row {i} (writing_id {wid})")
        l1_raw = clean_str(row.get("l1"))
        meta: dict[str, Any] = {k: _plain(v) for k, v in row.items() if k not in _USED}
        meta |= {"prompts": prompts, "source": f"{f.name}:{i}"}
        out.append(LearnerText(
            id=_intlike(wid), corpus="efcamdat", language="en", text=text,
            text_corrected=clean_str(row.get("text_corrected")),
            cefr=cefr, cefr_raw=cefr_raw, l1=normalise_l1(l1_raw), l1_raw=l1_raw,
            author_id=_intlike(lid), task=clean_str(row.get("topic")), meta=meta,
        ))
    if not header:
        return out
    if not LABEL_COLUMNS & set(header):
        missing_labels(f"{f}: header row", "no CEFR label column (cefr or cefr_numeric); found "
                       f"{', '.join(header)}", labels=labels, n=len(out))
    elif out and all(r.cefr_raw is None for r in out):
        missing_labels(str(f), f"CEFR label column(s) {', '.join(LABEL_COLUMNS & set(header))} "
                       f"empty in all {len(out)} rows", labels=labels, n=len(out))
    return out


def _intlike(s: str) -> str:
    """Excel gives 123.0 for integer ids; ids are strings without the spurious '.0'."""
    return s[:-2] if s.endswith(".0") and s[:-2].isdigit() else s


def _plain(v: Any) -> Any:
    """JSON-friendly scalar (Excel dates/NaN/numpy types -> str/None/float)."""
    if v is None:
        return None
    if isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return None if v != v else v
    if hasattr(v, "item"):
        return _plain(v.item())
    return str(v)
