"""Any CSV/TSV/JSONL/JSON/Parquet/XLSX table, with a column mapping given as options or config.

Options: ``path`` (file, absolute or relative to the data root; required), ``columns`` (record
field -> column name; ``text`` is required, others: id, text_corrected, cefr, l1, author_id,
task, split, language), ``language`` (ISO code for all rows when there is no language column),
``corpus`` (the name written into records, default "table"); a column named exactly like a
field (``id``, ``cefr``, ``l1`` ...) is used for it unless mapped otherwise; ``keep_other`` (unmapped columns go
to ``meta``, default True), ``id_column`` (= ``columns.id``), ``group_column`` (the author or
script a row belongs to, = ``columns.author_id``: splits keep a group together), ``strict`` (an
unrecognised CEFR label is refused instead of loading unrated with a warning).

Ids must be unique. When they repeat because rows are parts of one script (FCE flattened to one
row per answer repeats the script id), give ``group_column``: repeated ids (or, with no id
column, the group values) then become
``<id>#<n>`` (n = 1, 2, ... in file order within the id; the original id is kept in
``meta["id_raw"]``), or give ``id_column`` naming a column that is unique. Without either,
repeated ids are a DataFormatError saying so. A config file (TOML or JSON) for ``learnerprobe
corpus ... table --config FILE`` holds the same keys, e.g.::

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

from learnerprobe.corpora._common import cefr_label, check_unique_ids, clean_str, note, read_table
from learnerprobe.errors import ConfigError, CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

FIELDS = ("id", "text", "text_corrected", "cefr", "l1", "author_id", "task", "split", "language")


def load(
    root: Path, *, path: str | Path | None = None, columns: dict[str, str] | None = None,
    language: str | None = None, corpus: str = "table", keep_other: bool = True,
    id_column: str | None = None, group_column: str | None = None, strict: bool = False,
) -> list[LearnerText]:
    """Records from one table using the column mapping."""
    from learnerprobe.corpora.languages import language_code, normalise_l1

    if path is None:
        raise ConfigError("corpus 'table' needs path=FILE (and columns={text: ...}); "
                          "pass --config FILE or -o path=FILE -o columns.text=COLUMN")
    p = Path(path).expanduser()
    p = p if p.is_absolute() else root / p
    if p.is_symlink() and not p.exists():
        raise DataFormatError(f"corpus 'table': {p} is a broken symbolic link")
    if p.is_dir():
        raise DataFormatError(f"corpus 'table': {p} is a folder; path= must name one table file")
    if not p.is_file():
        raise CorpusNotFoundError(f"corpus 'table': file {p} not found (path={path!r}, data "
                                  f"root {root}, $LEARNERPROBE_DATA)")
    cols = {"text": "text", **(columns or {})}
    for field_name, opt, col in (("id", "id_column", id_column),
                                 ("author_id", "group_column", group_column)):
        if col is None:
            continue
        if field_name in (columns or {}) and cols[field_name] != col:
            raise ConfigError(f"table: {opt}={col!r} and columns.{field_name}="
                              f"{cols[field_name]!r} disagree; give one")
        cols[field_name] = col
    bad = [k for k in cols if k not in FIELDS]
    if bad:
        raise ConfigError(f"table columns: unknown field(s) {bad}; known: {list(FIELDS)}")
    out: list[LearnerText] = []
    rows: list[int] = []
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
        cefr = cefr_label(cefr_raw, strict=strict, where=where)
        used = set(cols.values())
        meta: dict[str, Any] = (
            {k: clean_str(v) for k, v in row.items() if k not in used} if keep_other else {}
        )
        meta["source"] = f"{p.name}:{i}"
        rows.append(i)
        out.append(LearnerText(
            # No id column but a group column: rows are parts of a group, ids <group>#<n>.
            id=get.get("id") or ("id" not in cols and get.get("author_id")) or str(i),
            corpus=corpus, language=lang, text=get["text"],
            text_corrected=get.get("text_corrected"), cefr=cefr, cefr_raw=cefr_raw,
            l1=normalise_l1(get.get("l1")), l1_raw=get.get("l1"),
            author_id=get.get("author_id"), task=get.get("task"), split=get.get("split"),
            meta=meta,
        ))
    out = _unique_ids(out, rows, p, grouped="author_id" in cols, id_col=cols.get("id"))
    check_unique_ids(out, str(p))
    return out


def _unique_ids(
    out: list[LearnerText], rows: list[int], p: Path, *, grouped: bool, id_col: str | None,
) -> list[LearnerText]:
    """Repeated ids: ``<id>#<n>`` when rows belong to groups, else an error that says what to do."""
    from collections import Counter
    from dataclasses import replace

    counts = Counter(r.id for r in out)
    repeated = {k for k, n in counts.items() if n > 1}
    if not repeated:
        return out
    if not grouped:
        first = next(r.id for r in out if r.id in repeated)
        where = [str(rows[i]) for i, r in enumerate(out) if r.id == first][:3]
        raise DataFormatError(
            f"{p}: rows {', '.join(where)}: ids repeat (id {first!r} in column "
            f"{id_col!r}; {len(repeated)} repeated id(s)). If rows are answers of one script or "
            "author, pass group_column=COLUMN (the script/author; ids become <id>#<n>), or "
            "id_column=COLUMN naming a column with one value per row"
        )
    seen: Counter[str] = Counter()
    fixed = []
    for r in out:
        if r.id in repeated:
            seen[r.id] += 1
            note("ids_suffixed", f"{p}: {r.id}#{seen[r.id]}")
            r = replace(r, id=f"{r.id}#{seen[r.id]}", meta={**r.meta, "id_raw": r.id})
        fixed.append(r)
    return fixed
