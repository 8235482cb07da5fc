"""UniversalCEFR-style records: JSON (array or lines), JSONL or Parquet files with one text per
record and the fields ``text``, ``lang``, ``cefr_level``, ``source_name`` and optionally
``title``, ``format``, ``category``, ``license``, ``id``.

Put the files under ``$LEARNERPROBE_DATA/universalcefr/`` (any sub-folders). ``language`` =
``lang`` normalised to ISO 639-1; ``id`` = ``id`` if given, else ``<source_name>.<file>.<row>``;
``meta["source_name"]`` and the other fields are kept so studies can filter by source (the
collection mixes learner texts and graded reading texts, each with its own licence).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learnerprobe.corpora._common import (
    cefr_label,
    check_unique_ids,
    clean_str,
    files_in,
    locate,
    read_table,
)
from learnerprobe.errors import CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://huggingface.co/UniversalCEFR (https://universalcefr.github.io/)"
REQUIRED = ("text", "lang", "cefr_level")
_USED = {"id", "text", "lang", "cefr_level"}


def load(
    root: Path, *, path: str | Path | None = None, strict: bool = False,
) -> list[LearnerText]:
    """All records of every .json/.jsonl/.parquet file found (``strict``: an unrecognised
    cefr_level is refused instead of loading unrated with a warning)."""
    from learnerprobe.corpora.languages import language_code

    base = locate(root, ["universalcefr", "UniversalCEFR"], corpus="universalcefr", url=URL,
                  path=path)
    files = files_in(base, (".json", ".jsonl", ".parquet"))
    if not files:
        raise CorpusNotFoundError(f"corpus 'universalcefr': no json/jsonl/parquet in {base}. "
                                  f"Get it from {URL}")
    out: list[LearnerText] = []
    for f in files:
        rel = f.relative_to(base).as_posix() if f != base else f.name
        for i, row in read_table(f, required=REQUIRED):
            where = f"{f}: row {i}"
            text = clean_str(row.get("text"))
            if text is None:
                raise DataFormatError(f"{where}: empty text")
            lang_raw = clean_str(row.get("lang"))
            lang = language_code(lang_raw) if lang_raw else None
            if lang is None:
                raise DataFormatError(f"{where}: unknown language {lang_raw!r} in 'lang'")
            cefr_raw = clean_str(row.get("cefr_level"))
            cefr = cefr_label(cefr_raw, strict=strict, where=where)
            src = clean_str(row.get("source_name")) or "unknown"
            tid = clean_str(row.get("id")) or f"{src}.{Path(rel).stem}.{i}"
            meta: dict[str, Any] = {k: clean_str(v) for k, v in row.items() if k not in _USED}
            meta["source"] = f"{rel}:{i}"
            out.append(LearnerText(
                id=tid, corpus="universalcefr", language=lang, text=text, cefr=cefr,
                cefr_raw=cefr_raw, task=meta.get("title"), meta=meta,
            ))
    check_unique_ids(out, str(base))
    return out
