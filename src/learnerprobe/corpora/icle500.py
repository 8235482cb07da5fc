"""ICLE500: 500 ICLE essays with CEFR ratings; a metadata CSV plus a ``Texts/`` folder.

Layout under ``$LEARNERPROBE_DATA/icle500/``: one metadata table (``*.csv``/``*.tsv``/``*.xlsx``)
with a row per essay and a ``Texts/`` folder with one ``.txt`` per essay. Column names are
matched case-insensitively: file name (filename | file | text_id | id), L1 (l1 |
native_language | native language | mother_tongue), prompt (prompt | title | topic), CEFR
(cefr | cefr_level | level). Other columns go to ``meta``. ``id`` = the file name without
``.txt``; ICLE file names carry the learner (e.g. ``GEAU1001``), so ``author_id`` = the id.
ICLE itself is distributed by UCLouvain (CECL) under licence; users bring the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learnerprobe.corpora._common import check_unique_ids, clean_str, files_in, locate, read_table
from learnerprobe.errors import CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://uclouvain.be/en/research-institutes/ilc/cecl/icle.html"
ALIASES = {
    "filename": ("filename", "file", "file_name", "text_id", "id"),
    "l1": ("l1", "native_language", "native language", "mother_tongue", "mother tongue"),
    "prompt": ("prompt", "title", "topic"),
    "cefr": ("cefr", "cefr_level", "level"),
}


def _resolve(columns: list[str], path: Path) -> dict[str, str | None]:
    low = {c.strip().lower(): c for c in columns}
    out: dict[str, str | None] = {}
    for key, names in ALIASES.items():
        out[key] = next((low[n] for n in names if n in low), None)
    if out["filename"] is None:
        raise DataFormatError(
            f"{path}: header row: no file-name column (one of {', '.join(ALIASES['filename'])})"
        )
    return out


def load(root: Path, *, path: str | Path | None = None) -> list[LearnerText]:
    """Essays listed in the metadata table, text read from ``Texts/<filename>``."""
    from learnerprobe.cefr import parse_cefr
    from learnerprobe.corpora.languages import normalise_l1

    base = locate(root, ["icle500", "ICLE500"], corpus="icle500", url=URL, path=path)
    folder = base if base.is_dir() else base.parent
    tables = [base] if base.is_file() else [
        f for f in files_in(base, (".csv", ".tsv", ".xlsx")) if f.parent == base
    ]
    if not tables:
        raise CorpusNotFoundError(f"corpus 'icle500': no metadata table in {base}. See {URL}")
    texts = next((folder / d for d in ("Texts", "texts", "TEXTS") if (folder / d).is_dir()), None)
    if texts is None:
        raise CorpusNotFoundError(f"corpus 'icle500': no Texts/ folder in {folder}. See {URL}")
    out: list[LearnerText] = []
    for t in tables:
        cols: dict[str, str | None] | None = None
        for i, row in read_table(t):
            if cols is None:
                cols = _resolve(list(row), t)
            fname = clean_str(row.get(cols["filename"]))
            if not fname:
                raise DataFormatError(f"{t}: row {i}: empty file name")
            fp = texts / (fname if fname.lower().endswith(".txt") else fname + ".txt")
            if not fp.is_file():
                raise DataFormatError(f"{t}: row {i}: text file {fp} does not exist")
            cefr_raw = clean_str(row.get(cols["cefr"])) if cols["cefr"] else None
            try:
                cefr = parse_cefr(cefr_raw, strict=True)
            except ValueError:
                raise DataFormatError(f"{t}: row {i}: unrecognised CEFR label {cefr_raw!r}") from None
            l1_raw = clean_str(row.get(cols["l1"])) if cols["l1"] else None
            used = {c for c in cols.values() if c}
            meta: dict[str, Any] = {k: clean_str(v) for k, v in row.items() if k not in used}
            meta["source"] = f"{t.name}:{i}"
            tid = fp.stem
            out.append(LearnerText(
                id=tid, corpus="icle500", language="en",
                text=fp.read_text(encoding="utf-8-sig").strip(),
                cefr=cefr, cefr_raw=cefr_raw, l1=normalise_l1(l1_raw), l1_raw=l1_raw,
                author_id=tid, task=clean_str(row.get(cols["prompt"])) if cols["prompt"] else None,
                meta=meta,
            ))
    check_unique_ids(out, str(base))
    return out
