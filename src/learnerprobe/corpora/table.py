"""Any CSV/TSV/JSONL/JSON/Parquet/XLSX table, with a column mapping given as options or config.

Options: ``path`` (file, absolute or relative to the data root; required), ``columns`` (record
field -> column name; fields: id, text, text_corrected, cefr, l1, author_id, task, split,
language), ``language`` (ISO code for all rows when there is no language column), ``corpus`` (the
name written into records, default "table"), ``keep_other`` (unmapped columns go to ``meta``,
default True), ``id_column`` (= ``columns.id``), ``group_column`` (the author or script a row
belongs to, = ``columns.author_id``: splits keep a group together), ``labels`` and ``strict``.

An unmapped field is read from a column with an obvious name, any case (:data:`ALIASES`): its
own name (``text``, ``id``, ``task`` ...), for ``cefr`` also cefr_level or level, for ``l1``
native_language or mother_tongue, for ``author_id`` author, learner, learner_id, student, user or
userid. Without an author column every text counts as its own author (a warning says so: a
learner's texts could then straddle train and test).

Labels: with ``labels="required"`` (the default, for probing) a table without a cefr or l1 column,
or with one empty in every row, is a DataFormatError naming the file and the column;
``labels="optional"`` loads it unlabelled, counted in the load report with a warning.

Bad rows: a row with an empty text, a text that is not a string (a number, list or object from
JSON/Excel) or holds a NUL byte, or a row that cannot be read (wrong field count, invalid JSON
line) is skipped and counted in the load report; ``strict=True`` refuses it, as it refuses an
unrecognised CEFR label (which otherwise loads unrated with a warning).

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

from learnerprobe.corpora._common import (
    BadRows,
    LabelsMode,
    cefr_label,
    check_labels_mode,
    check_unique_ids,
    checked_text,
    clean_str,
    missing_labels,
    note,
    read_table,
)
from learnerprobe.corpora.languages import language_code, normalise_l1
from learnerprobe.errors import ConfigError, CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

FIELDS = ("id", "text", "text_corrected", "cefr", "l1", "author_id", "task", "split", "language")
#: column names (any case) a field is read from when no mapping names its column
ALIASES: dict[str, tuple[str, ...]] = {
    "cefr": ("cefr", "cefr_level", "cefr level", "level"),
    "l1": ("l1", "native_language", "native language", "mother_tongue", "mother tongue",
           "first_language"),
    "author_id": ("author_id", "author", "learner", "learner_id", "student", "student_id", "user",
                  "userid", "user_id"),
}
LABELS = ("cefr", "l1")


def load(
    root: Path, *, path: str | Path | None = None, columns: dict[str, str] | None = None,
    language: str | None = None, corpus: str = "table", keep_other: bool = True,
    id_column: str | None = None, group_column: str | None = None, strict: bool = False,
    labels: LabelsMode = "required",
) -> list[LearnerText]:
    """Records from one table using the column mapping."""
    check_labels_mode(labels)
    p = _table_path(root, path)
    cols = _mapping(columns, id_column, group_column)
    out: list[LearnerText] = []
    rows: list[int] = []  # the row number of each record
    n_read = 0
    bad_rows: BadRows = "error" if strict else "skip"
    for i, row in read_table(p, required=list(cols.values()), bad_rows=bad_rows):
        if n_read == 0:
            cols |= _recognised(list(row), set(cols), set(cols.values()))
            if "text" not in cols:
                raise DataFormatError(f"{p}: no text column (map it with columns.text=COLUMN); "
                                      f"found {', '.join(map(str, row))}")
            if "language" not in cols and not language:
                raise ConfigError(f"corpus 'table' ({p}): give language=ISO code or "
                                  "columns.language=COLUMN")
        rec = _record(p, i, row, cols, language=language, corpus=corpus, keep_other=keep_other,
                      strict=strict)
        n_read += 1
        if rec is not None:
            out.append(rec)
            rows.append(i)
    if not out:
        raise DataFormatError(f"{p}: no row with a usable text ({n_read} read; see the "
                              "warnings for the skipped ones)")
    _check_labels(p, out, cols, labels)
    if "author_id" not in cols:
        note("no_author_column", f"{p} (columns: {', '.join(sorted(set(cols.values())))})",
             len(out))
    out = _unique_ids(out, rows, p, grouped="author_id" in cols, id_col=cols.get("id"))
    check_unique_ids(out, str(p))
    return out


def _table_path(root: Path, path: str | Path | None) -> Path:
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
    return p


def _mapping(
    columns: dict[str, str] | None, id_column: str | None, group_column: str | None,
) -> dict[str, str]:
    """Field -> column as the user mapped it (``id_column``/``group_column`` folded in)."""
    cols = dict(columns or {})
    for field_name, opt, col in (("id", "id_column", id_column),
                                 ("author_id", "group_column", group_column)):
        if col is None:
            continue
        if field_name in cols and cols[field_name] != col:
            raise ConfigError(f"table: {opt}={col!r} and columns.{field_name}="
                              f"{cols[field_name]!r} disagree; give one")
        cols[field_name] = col
    bad = [k for k in cols if k not in FIELDS]
    if bad:
        raise ConfigError(f"table columns: unknown field(s) {bad}; known: {list(FIELDS)}")
    return cols


def _recognised(header: list[str], explicit: set[str], mapped: set[str]) -> dict[str, str]:
    """Unmapped fields read from a column with an obvious name (``CEFR``, ``level``,
    ``learner`` ...; :data:`ALIASES`, any case), first alias first."""
    low: dict[str, str] = {}
    for c in header:
        if c not in mapped:
            low.setdefault(str(c).strip().lower(), c)
    out: dict[str, str] = {}
    for f in FIELDS:
        if f in explicit:
            continue
        col = next((low[a] for a in ALIASES.get(f, (f,)) if a in low), None)
        if col is not None and col not in out.values():
            out[f] = col
    return out


def _record(
    p: Path, i: int, row: dict[str, Any], cols: dict[str, str], *, language: str | None,
    corpus: str, keep_other: bool, strict: bool,
) -> LearnerText | None:
    """One row as a record; None for a row skipped (empty or unusable text, counted)."""
    where = f"{p}: row {i}"
    text = checked_text(row.get(cols["text"]), where=f"{where}: column {cols['text']!r}",
                        strict=strict)
    if text is None:
        return None
    get = {k: clean_str(row.get(c)) for k, c in cols.items() if k != "text"}
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
    return LearnerText(
        # No id column but a group column: rows are parts of a group, ids <group>#<n>.
        id=get.get("id") or ("id" not in cols and get.get("author_id")) or str(i),
        corpus=corpus, language=lang, text=clean_str(text) or "",
        text_corrected=get.get("text_corrected"), cefr=cefr, cefr_raw=cefr_raw,
        l1=normalise_l1(get.get("l1")), l1_raw=get.get("l1"),
        author_id=get.get("author_id"), task=get.get("task"), split=get.get("split"),
        meta=meta,
    )


def _check_labels(p: Path, out: list[LearnerText], cols: dict[str, str], labels: LabelsMode,
                  ) -> None:
    """A table with no label column, or a label column empty in every row, is refused for a
    labelled load (``labels="required"``) and counted with a warning otherwise."""
    present = [f for f in LABELS if f in cols]
    if not present:
        names = "; ".join(f"{f}: {', '.join(ALIASES[f])}" for f in LABELS)
        missing_labels(str(p), f"no label column ({names}; any case; or map one with "
                       f"columns.cefr=COLUMN / columns.l1=COLUMN)", labels=labels, n=len(out))
        return
    for f in present:
        if all(getattr(r, f"{f}_raw") is None for r in out):
            missing_labels(str(p), f"label column {cols[f]!r} ({f}) is empty in every row",
                           labels=labels, n=len(out))


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
