"""Any CSV/TSV/JSONL/JSON/Parquet/XLSX table, with a column mapping given as options or config.

Options: ``path`` (file, absolute or relative to the data root; required), ``columns`` (record
field -> column name; ``text`` is required, others: id, text_corrected, cefr, l1, author_id,
task, split, language), ``language`` (ISO code for all rows when there is no language column),
``corpus`` (the name written into records, default "table"); a column named exactly like a
field (``id``, ``cefr``, ``l1`` ...) is used for it unless mapped otherwise; ``keep_other`` (unmapped columns go
to ``meta``, default True). A config file (TOML or JSON) for ``learnerprobe corpus ... table
--config FILE`` holds the same keys, e.g.::

    path = "my_essays.csv"
    language = "en"
    [columns]
    text = "essay"
    cefr = "level"
    l1 = "native_language"
    author_id = "student"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learnerprobe.corpora._common import check_unique_ids, clean_str, read_table
from learnerprobe.errors import ConfigError, CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

FIELDS = ("id", "text", "text_corrected", "cefr", "l1", "author_id", "task", "split", "language")


def load(
    root: Path, *, path: str | Path | None = None, columns: dict[str, str] | None = None,
    language: str | None = None, corpus: str = "table", keep_other: bool = True,
) -> list[LearnerText]:
    """Records from one table using the column mapping."""
    from learnerprobe.cefr import parse_cefr
    from learnerprobe.corpora.languages import language_code, normalise_l1

    if path is None:
        raise ConfigError("corpus 'table' needs path=FILE (and columns={text: ...}); "
                          "pass --config FILE or -o path=FILE -o columns.text=COLUMN")
    p = Path(path).expanduser()
    p = p if p.is_absolute() else root / p
    if not p.is_file():
        raise CorpusNotFoundError(f"corpus 'table': file {p} not found (path={path!r}, data "
                                  f"root {root}, $LEARNERPROBE_DATA)")
    cols = {"text": "text", **(columns or {})}
    bad = [k for k in cols if k not in FIELDS]
    if bad:
        raise ConfigError(f"table columns: unknown field(s) {bad}; known: {list(FIELDS)}")
    out: list[LearnerText] = []
    explicit = set(cols)
    for i, row in read_table(p, required=list(cols.values())):
        if i == 1:
            # Columns named like a record field ("id", "cefr", "l1", ...) map to it by default.
            mapped = set(cols.values())
            cols |= {f: f for f in FIELDS if f not in explicit and f in row and f not in mapped}
            if "language" not in cols and not language:
                raise ConfigError(f"corpus 'table' ({p}): give language=ISO code or "
                                  "columns.language=COLUMN")
        where = f"{p}: row {i}"
        get = {k: clean_str(row.get(c)) for k, c in cols.items()}
        if get["text"] is None:
            raise DataFormatError(f"{where}: empty text in column {cols['text']!r}")
        lang_raw = get.get("language") or language
        lang = language_code(lang_raw) if lang_raw else None
        if lang is None:
            raise DataFormatError(f"{where}: unknown language {lang_raw!r}")
        cefr_raw = get.get("cefr")
        try:
            cefr = parse_cefr(cefr_raw, strict=True)
        except ValueError:
            raise DataFormatError(f"{where}: unrecognised CEFR label {cefr_raw!r}") from None
        used = set(cols.values())
        meta: dict[str, Any] = (
            {k: clean_str(v) for k, v in row.items() if k not in used} if keep_other else {}
        )
        meta["source"] = f"{p.name}:{i}"
        out.append(LearnerText(
            id=get.get("id") or str(i), corpus=corpus, language=lang, text=get["text"],
            text_corrected=get.get("text_corrected"), cefr=cefr, cefr_raw=cefr_raw,
            l1=normalise_l1(get.get("l1")), l1_raw=get.get("l1"),
            author_id=get.get("author_id"), task=get.get("task"), split=get.get("split"),
            meta=meta,
        ))
    check_unique_ids(out, str(p))
    return out
