"""ICLE500: 500 ICLE essays with CEFR ratings; a metadata table plus a ``Texts/`` folder.

Layout under ``$LEARNERPROBE_DATA/icle500/``: one metadata table (``*.csv``/``*.tsv``/``*.xlsx``)
with a row per essay and a ``Texts/`` folder with one ``.txt`` per essay. The release's table has
the columns filename, L1, prompt, length_in_words, fair_mean_avge_MFRM, measure_MFRM,
rank_rubric_MFRM, CEFR_MFRM, and ships as .csv and .xlsx side by side: the same table in two
formats is read once (csv preferred over tsv over xlsx, with a warning; if the two disagree on
the essays or their labels, DataFormatError). Column names are matched case-insensitively: file
name (filename | file | file_name | text_id | id), L1 (l1 | native_language | native language |
mother_tongue), prompt (prompt | title | topic), CEFR (cefr_mfrm | cefr | cefr_level | level).
Other columns go to ``meta``. ``id`` = the ICLE id (e.g. ``GEAU1001``; ICLE ids carry the
learner, so ``author_id`` = the id).

Text files: the release names them ``001_BGSU1004.txt`` (a running number before the ICLE id),
five with a suffix (``270_KRBF1041_relabelled.txt``, ``meta["relabelled"] = True``), while the
table says ``BGSU1004``; ``BGSU1004.txt`` is read too. The file is looked up in the listing of
``Texts/`` (``meta["text_file"]``), never built from the table's value: a name that is not a
plain file name (``../../x``) is refused, and an id with two candidate files is an error naming
both. A text that holds a NUL byte is skipped and counted (refused with ``strict``).

Options: ``labels`` ("required": a table without a CEFR column, or with one empty in every row,
is a DataFormatError listing the columns found; "optional": load unlabelled with a warning, e.g.
for export or stats), ``strict`` (an
unrecognised CEFR label is refused instead of loading unrated with a warning), ``path``.
ICLE itself is distributed by UCLouvain (CECL) under licence; users bring the files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from learnerprobe.cefr import parse_cefr
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
    note,
    read_table,
    read_text_file,
)
from learnerprobe.corpora.languages import normalise_l1
from learnerprobe.errors import CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://uclouvain.be/en/research-institutes/ilc/cecl/icle.html"
ALIASES = {
    "filename": ("filename", "file", "file_name", "text_id", "id"),
    "l1": ("l1", "native_language", "native language", "mother_tongue", "mother tongue"),
    "prompt": ("prompt", "title", "topic"),
    "cefr": ("cefr_mfrm", "cefr", "cefr_level", "level"),
}
_FORMAT_ORDER = (".csv", ".tsv", ".xlsx")
TEXT_FOLDERS = ("Texts", "texts", "TEXTS")
# The release names texts ``001_BGSU1004.txt``; five carry ``_relabelled``; ``BGSU1004.txt`` too.
_NAME = re.compile(r"^(?:\d+_)?(?P<id>.+?)(?P<relabelled>_relabelled)?$", re.I)


def _resolve(columns: list[str], path: Path, labels: LabelsMode) -> dict[str, str | None]:
    low = {c.strip().lower(): c for c in columns}
    out: dict[str, str | None] = {}
    for key, names in ALIASES.items():
        out[key] = next((low[n] for n in names if n in low), None)
    found = ", ".join(map(str, columns))
    if out["filename"] is None:
        raise DataFormatError(
            f"{path}: header row: no file-name column (one of {', '.join(ALIASES['filename'])}); "
            f"found {found}"
        )
    if out["cefr"] is None and labels == "required":
        raise DataFormatError(
            f"{path}: header row: no CEFR label column (one of {', '.join(ALIASES['cefr'])}, "
            f"any case); found {found}. Pass labels='optional' to load the essays unlabelled"
        )
    return out


def _tables(base: Path) -> list[Path]:
    """One table per stem: the same table saved as .csv and .xlsx is read once (csv first)."""
    found = [f for f in files_in(base, _FORMAT_ORDER, recursive=False)]
    by_stem: dict[str, list[Path]] = {}
    for f in found:
        by_stem.setdefault(f.stem.lower(), []).append(f)
    out = []
    for group in by_stem.values():
        group.sort(key=lambda f: _FORMAT_ORDER.index(f.suffix.lower()))
        out.append(group[0])
        for other in group[1:]:
            _check_same(group[0], other)
            # Counted in the load report, which warns: "... ignored (e.g. x.xlsx (read x.csv))".
            note("duplicate_table", f"{base / other.name} (same rows as {group[0].name}, "
                 f"which is read)")
    return sorted(out)


def _keyed_rows(t: Path) -> list[tuple[str | None, str | None]]:
    rows = list(read_table(t))
    if not rows:
        return []
    cols = _resolve(list(rows[0][1]), t, "optional")
    return [(clean_str(r.get(cols["filename"])),
             clean_str(r.get(cols["cefr"])) if cols["cefr"] else None) for _, r in rows]


def _check_same(a: Path, b: Path) -> None:
    ra, rb = _keyed_rows(a), _keyed_rows(b)

    def norm(rows):
        out = []
        for f, c in rows:
            try:
                c = parse_cefr(c, strict=True)
            except ValueError:
                pass
            out.append(((f or "").removesuffix(".txt"), c))
        return out

    na, nb = norm(ra), norm(rb)
    if na == nb:
        return
    if len(na) != len(nb):
        diff = f"{len(na)} rows vs {len(nb)} rows"
    else:
        i = next(i for i, (x, y) in enumerate(zip(na, nb, strict=True)) if x != y)
        diff = f"row {i + 1}: {na[i]} vs {nb[i]}"
    raise DataFormatError(
        f"icle500: {a} and {b} are the same table in two formats but disagree ({diff}); "
        f"keep the one you trust (or pass path= to one of them)"
    )


def load(
    root: Path, *, path: str | Path | None = None, labels: LabelsMode = "required",
    strict: bool = False,
) -> list[LearnerText]:
    """Essays listed in the metadata table, text read from their file in ``Texts/``."""
    check_labels_mode(labels)
    base = locate(root, ["icle500", "ICLE500"], corpus="icle500", url=URL, path=path,
                  markers=TEXT_FOLDERS)
    folder = base if base.is_dir() else base.parent
    tables = [base] if base.is_file() else _tables(base)
    if not tables:
        raise CorpusNotFoundError(f"corpus 'icle500': no metadata table in {base}. See {URL}")
    texts = next((folder / d for d in TEXT_FOLDERS if (folder / d).is_dir()), None)
    if texts is None:
        raise CorpusNotFoundError(f"corpus 'icle500': no Texts/ folder in {folder}. See {URL}")
    index = _text_index(texts)
    out: list[LearnerText] = []
    for t in tables:
        out.extend(_read_table(t, texts, index, labels=labels, strict=strict))
    check_unique_ids(out, str(base))
    return out


def _read_table(
    t: Path, texts: Path, index: dict[str, list[Path]], *, labels: LabelsMode, strict: bool,
) -> list[LearnerText]:
    out: list[LearnerText] = []
    cols: dict[str, str | None] | None = None
    for i, row in read_table(t):
        if cols is None:
            cols = _resolve(list(row), t, labels)
        fname = clean_str(row.get(cols["filename"]))
        if not fname:
            raise DataFormatError(f"{t}: row {i}: empty file name")
        tid, fp = _text_file(t, i, fname, texts, index)
        text = checked_text(read_text_file(fp), where=f"{t}: row {i}: {fp}", strict=strict)
        if text is None:
            continue
        cefr_raw = clean_str(row.get(cols["cefr"])) if cols["cefr"] else None
        cefr = cefr_label(cefr_raw, strict=strict, where=f"{t}: row {i}")
        l1_raw = clean_str(row.get(cols["l1"])) if cols["l1"] else None
        used = {c for c in cols.values() if c}
        meta: dict[str, Any] = {k: clean_str(v) for k, v in row.items() if k not in used}
        meta["source"] = f"{t.name}:{i}"
        meta["text_file"] = fp.name
        if _NAME.match(fp.stem).group("relabelled"):  # type: ignore[union-attr]
            meta["relabelled"] = True
        out.append(LearnerText(
            id=tid, corpus="icle500", language="en", text=text,
            cefr=cefr, cefr_raw=cefr_raw, l1=normalise_l1(l1_raw), l1_raw=l1_raw,
            author_id=tid, task=clean_str(row.get(cols["prompt"])) if cols["prompt"] else None,
            meta=meta,
        ))
    if cols is not None and out:
        if cols["cefr"] is None:
            # labels="required" was refused at the header (_resolve), so this counts them.
            missing_labels(str(t), "no CEFR label column", labels=labels, n=len(out))
        elif all(r.cefr_raw is None for r in out):
            missing_labels(str(t), f"CEFR label column {cols['cefr']!r} is empty in every row",
                           labels=labels, n=len(out))
    return out


def _icle_id(name: str) -> str:
    """The ICLE id in a file name: ``270_KRBF1041_relabelled.txt`` -> ``KRBF1041``."""
    m = _NAME.match(name.removesuffix(".txt").removesuffix(".TXT"))
    return m.group("id") if m else name  # type: ignore[union-attr]


def _text_index(texts: Path) -> dict[str, list[Path]]:
    """ICLE id (upper case) -> the ``.txt`` entries of ``Texts/`` named for it: ``<id>.txt``
    and the release's ``NNN_<id>.txt`` / ``NNN_<id>_relabelled.txt``."""
    index: dict[str, list[Path]] = {}
    for f in sorted(texts.iterdir()):
        if f.suffix.lower() == ".txt":
            index.setdefault(_icle_id(f.name).upper(), []).append(f)
    return index


def _text_file(
    t: Path, i: int, fname: str, texts: Path, index: dict[str, list[Path]],
) -> tuple[str, Path]:
    """(text id, file) for a metadata row; the file is looked up in the listing of ``Texts/``,
    never built from the table's value, so a name like ``../../x`` cannot reach outside."""
    if fname in (".", "..") or Path(fname).name != fname or "\\" in fname:
        raise DataFormatError(f"{t}: row {i}: file name {fname!r} is not a plain file name; "
                              f"the metadata must name a file inside {texts}")
    tid = _icle_id(fname)
    found = index.get(tid.upper(), [])
    if len(found) > 1:
        raise DataFormatError(f"{t}: row {i}: two text files for {tid!r}: "
                              f"{' and '.join(str(f) for f in found)}; keep one")
    if not found:
        raise DataFormatError(f"{t}: row {i}: text file {texts / (tid + '.txt')} does not exist "
                              f"(nor NNN_{tid}.txt or NNN_{tid}_relabelled.txt)")
    fp = found[0]
    if fp.is_symlink() and not fp.exists():
        raise DataFormatError(f"{t}: row {i}: text file {fp} is a broken symbolic link")
    if fp.is_dir():
        raise DataFormatError(f"{t}: row {i}: {fp} is a folder, not a text file")
    return tid, fp
