"""Shared reading helpers for the loaders: locate files, read rows with their numbers, and turn
every format problem into a DataFormatError that names the file and the row."""

from __future__ import annotations

import contextlib
import contextvars
import csv
import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from learnerprobe import textinput
from learnerprobe.cefr import parse_cefr
from learnerprobe.errors import ConfigError, CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

ENV = "LEARNERPROBE_DATA"
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".xlsx")

# Large essays (EFCAMDAT, COWS-L2H corrections) exceed the csv module's 128 KiB default.
csv.field_size_limit(1 << 30)


def corpus_places(root: Path, candidates: Sequence[str]) -> list[Path]:
    """Where a corpus may sit, in the order tried: ``root`` as a data root holding the corpus
    folder (``root/icle500``), then ``root`` as the corpus folder itself (each candidate without
    its first part: ``cowsl2h/csv`` -> ``root/csv``). ``root`` itself is not listed: see
    :func:`is_corpus_folder`. One rule for every loader, so ``--root`` may name either."""
    out: list[Path] = [root / c for c in candidates]
    for c in candidates:
        parts = Path(c).parts
        if len(parts) > 1:
            out.append(root.joinpath(*parts[1:]))
    return list(dict.fromkeys(out))


def is_corpus_folder(root: Path, candidates: Sequence[str], markers: Sequence[str] = ()) -> bool:
    """``root`` is the corpus folder itself: it carries a candidate's folder name (any case) or
    holds one of ``markers`` (glob patterns, e.g. ``Texts``)."""
    if not root.is_dir():
        return False
    names = {Path(c).parts[-1].lower() for c in candidates if Path(c).parts}
    return root.name.lower() in names or any(any(root.glob(m)) for m in markers)


def not_found(
    root: Path, looked: Sequence[Path], *, corpus: str, url: str, what: str = "folder",
    names: Sequence[str] = (), markers: Sequence[str] = (),
) -> CorpusNotFoundError:
    """The error of a corpus not found: every place looked at, the root itself included."""
    tried = "\n  ".join(str(p) for p in looked)
    named = " or ".join(dict.fromkeys(Path(n).parts[-1] for n in names if Path(n).parts))
    shown: dict[str, str] = {}  # "Texts", not "Texts or texts or TEXTS"
    for m in markers:
        shown.setdefault(m.lower(), m)
    holding = f", or holding {' or '.join(shown.values())}" if markers else ""
    missing = "" if root.is_dir() else " (it does not exist)"
    itself = (f"\nand at {root}{missing} itself as the corpus folder (a folder named {named}"
              f"{holding})") if names else ""
    return CorpusNotFoundError(
        f"corpus {corpus!r} not found. Looked for the {what} at:\n  {tried}{itself}\n"
        f"Set ${ENV} (now: data root {root}) or pass --root / root= (the data root holding the "
        f"corpus folder, or the corpus folder itself). Get the official release from {url}"
    )


def locate(
    root: Path, candidates: Sequence[str], *, corpus: str, url: str, what: str = "folder",
    path: str | Path | None = None, markers: Sequence[str] = (),
) -> Path:
    """The corpus folder under ``root`` (a data root holding it, or the folder itself; see
    :func:`corpus_places`), or ``path`` (relative to ``root``); else a CorpusNotFoundError
    listing every place looked at."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_absolute():
            p = root / p
        if p.exists():
            return p
        raise not_found(root, [p], corpus=corpus, url=url, what=what)
    looked = corpus_places(root, candidates)
    for p in looked:
        if p.exists():
            return p
    if is_corpus_folder(root, candidates, markers):
        return root
    raise not_found(root, looked, corpus=corpus, url=url, what=what, names=candidates,
                    markers=markers)


# --------------------------------------------------------------------------- load report
class CorpusWarning(UserWarning):
    """Something a loader skipped or could not read, counted in the load report."""


#: report key -> what it counts (used in warnings and ``corpus stats``)
REPORT_KEYS: dict[str, str] = {
    "unparseable_cefr": "unparseable CEFR rating(s) loaded as unrated (pass strict=True to refuse)",
    "unlabelled": "text(s) loaded without a label: the label column or field is missing or empty "
                  "(labels='optional')",
    "no_author_column": "text(s) from a table without an author column, each treated as its own "
                        "author (map columns.author_id=COLUMN so a learner's texts stay together)",
    "skipped_empty_text": "row(s) with an empty text skipped (pass strict=True to refuse)",
    "skipped_bad_text": "text(s) skipped: not a string, or holding a NUL byte (pass strict=True "
                        "to refuse)",
    "skipped_bad_row": "unreadable row(s) skipped (pass strict=True to refuse)",
    "skipped_dir": "folder(s) named like a corpus file skipped",
    "skipped_broken_link": "broken symbolic link(s) skipped",
    "skipped_bad_file": "malformed file(s) skipped (on_error='skip')",
    "duplicate_table": "duplicate metadata table(s) ignored (same table in another format)",
    "ids_suffixed": "row id(s) repeated within a group, made unique as <id>#<n>",
    "edits_detection_only": "edit(s) with a null correction (error detected, text kept as written)",
    "edits_skipped_overlap": "edit(s) skipped: overlapping an earlier edit",
    "edits_skipped_malformed": "edit(s) skipped: malformed (not [start, end, correction])",
    "edits_skipped_offsets": "edit(s) skipped: offsets outside the text",
    "edits_skipped_cross_paragraph": "edit(s) skipped: span crosses a paragraph break",
    "edits_malformed_field": "text(s) whose 'edits' field is malformed (no corrected text)",
}


#: keys that are counted but not warned about: the user asked for them or they are annotation
INFO_KEYS = frozenset({"edits_detection_only", "ids_suffixed"})


@dataclass
class LoadReport:
    """What a load skipped or could not read: counts per key plus a few examples (file, row)."""

    corpus: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key: str, where: str, n: int = 1) -> None:
        if n <= 0:
            return
        self.counts[key] += n
        ex = self.examples.setdefault(key, [])
        if len(ex) < 5:
            ex.append(where)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items())),
                "examples": {k: list(v) for k, v in sorted(self.examples.items())}}

    def messages(self) -> list[str]:
        out = []
        for key, n in sorted(self.counts.items()):
            what = REPORT_KEYS.get(key, key)
            eg = "; ".join(self.examples.get(key, []))
            more = ", ..." if n > len(self.examples.get(key, [])) else ""
            out.append(f"{self.corpus or 'corpus'}: {n} {what} (e.g. {eg}{more})")
        return out

    def warn(self) -> None:
        for key, msg in zip(sorted(self.counts), self.messages(), strict=True):
            if key not in INFO_KEYS:
                warnings.warn(msg, CorpusWarning, stacklevel=4)


_REPORT: contextvars.ContextVar[LoadReport | None] = contextvars.ContextVar("load_report",
                                                                           default=None)


@contextlib.contextmanager
def collecting(corpus: str) -> Iterator[LoadReport]:
    """Collect :func:`note` calls of the loaders run inside into one LoadReport."""
    rep = LoadReport(corpus)
    token = _REPORT.set(rep)
    try:
        yield rep
    finally:
        _REPORT.reset(token)


def note(key: str, where: str, n: int = 1) -> None:
    """Count something skipped/unreadable in the current load report (no-op outside one)."""
    rep = _REPORT.get()
    if rep is not None:
        rep.add(key, where, n)
    elif key not in INFO_KEYS:  # a loader called directly: warn at once
        warnings.warn(f"{where}: {n} {REPORT_KEYS.get(key, key)}", CorpusWarning, stacklevel=3)


class Records(list):
    """The records of a load (a plain list) with its :class:`LoadReport` as ``.report``."""

    def __init__(self, items: Iterable[LearnerText] = (), report: LoadReport | None = None):
        super().__init__(items)
        self.report = report if report is not None else LoadReport()


def cefr_label(raw: Any, *, strict: bool, where: str) -> str | None:
    """Canonical CEFR label of ``raw``; an unparseable one is refused (``strict``) or counted
    in the load report and loaded as unrated (a warning names the file and row)."""
    try:
        return parse_cefr(raw, strict=True)
    except ValueError:
        if strict:
            raise DataFormatError(f"{where}: unrecognised CEFR label {raw!r} (strict=True; "
                                  "without it the text loads unrated with a warning)") from None
        note("unparseable_cefr", f"{where}: {raw!r}")
        return None


LabelsMode = Literal["required", "optional"]


def check_labels_mode(labels: str) -> None:
    if labels not in ("required", "optional"):
        raise ConfigError(f"labels must be 'required' or 'optional', not {labels!r}")


def missing_labels(where: str, problem: str, *, labels: LabelsMode, n: int) -> None:
    """A label column (or field) missing or empty in every row of ``where``: a DataFormatError
    for a labelled load (the default, ``labels="required"``), else ``n`` texts counted in the
    load report as loaded without a label, with a warning. ``problem`` names the column."""
    if labels == "required":
        raise DataFormatError(f"{where}: {problem}. Pass labels='optional' to load the texts "
                              "unlabelled")
    note("unlabelled", f"{where}: {problem}", n)


# --------------------------------------------------------------------------- reading files
def read_text_file(path: Path) -> str:
    """Whole file as UTF-8 text (BOM tolerated); decoding and OS errors name the file."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = bytes(e.object[: e.start]).count(b"\n") + 1
        raise DataFormatError(f"{path}: line {line}: not UTF-8 text (bad byte at offset "
                              f"{e.start}); re-save the file as UTF-8") from None
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read ({_os_reason(e, path)})") from None


def _os_reason(e: OSError, path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return f"broken symbolic link to {os.readlink(path)}"
    if path.is_dir():
        return "it is a folder, not a file"
    return e.strerror or str(e)


class _utf8:
    """Open a text file as UTF-8 (BOM tolerated); a decoding error becomes a DataFormatError."""

    def __init__(self, path: Path, newline: str | None = None) -> None:
        try:
            self.path, self.f = path, open(path, encoding="utf-8-sig", newline=newline)
        except OSError as e:
            raise DataFormatError(f"{path}: cannot read ({_os_reason(e, path)})") from None

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb) -> None:
        self.f.close()
        if isinstance(e, UnicodeDecodeError):
            read_text_file(self.path)  # raises with the line of the first bad byte
            raise DataFormatError(f"{self.path}: not UTF-8 text; re-save it as UTF-8") from None

    def __iter__(self):
        return iter(self.f)


def clean_str(v: Any) -> str | None:
    """Cell value -> stripped string, None for empty/NaN (pandas/pyarrow give NaN/None)."""
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    s = str(v).replace("\xa0", " ").strip()
    return s or None


def text_problem(v: Any) -> str | None:
    """Why ``v`` cannot be a learner text (None when it can): the one text rule of
    ``learnerprobe.textinput`` (empty or invisible-only, binary control characters, lone
    surrogates), phrased for a corpus row, plus the table cases: a missing cell, or a value that
    is not a string (a number, list or object would load as its Python form)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "empty text"
    if not isinstance(v, str):
        return f"text is not a string but {type(v).__name__} {str(v)[:40]!r}"
    if "\x00" in v:
        return f"NUL byte in the text (character {v.index(chr(0)) + 1})"
    problem = textinput.text_problem(v)
    if problem is not None and problem.startswith("text is empty"):
        return "empty text"
    return problem


def checked_text(
    v: Any, *, where: str, strict: bool, allow_empty: bool = False,
) -> str | None:
    """``v`` stripped, or None when it cannot be a text (see :func:`text_problem`): the row is
    then skipped and counted in the load report, or refused (DataFormatError) with ``strict``.
    ``allow_empty``: an empty string passes (a whole file whose parser reports it)."""
    problem = text_problem(v)
    if problem is None or (allow_empty and problem == "empty text" and isinstance(v, str)):
        return v.strip()
    if strict:
        raise DataFormatError(f"{where}: {problem} (strict=True; without it the row is skipped "
                              "and counted)")
    note("skipped_empty_text" if problem == "empty text" else "skipped_bad_text",
         f"{where}: {problem}")
    return None


BadRows = Literal["error", "skip"]


def _bad_row(bad_rows: BadRows, where: str, problem: str) -> None:
    """A row that cannot be read: a DataFormatError, or skipped and counted (``"skip"``)."""
    if bad_rows == "error":
        raise DataFormatError(f"{where}: {problem}")
    note("skipped_bad_row", f"{where}: {problem}")


def read_jsonl(path: Path, *, bad_rows: BadRows = "error") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; malformed JSON names file and line
    (or, with ``bad_rows="skip"``, is skipped and counted in the load report)."""
    with _utf8(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                _bad_row(bad_rows, f"{path}: line {n}", f"invalid JSON ({e.msg})")
                continue
            if not isinstance(obj, dict):
                _bad_row(bad_rows, f"{path}: line {n}", "expected a JSON object per line")
                continue
            yield n, obj


def read_json_any(
    path: Path, *, bad_rows: BadRows = "error",
) -> Iterator[tuple[int, dict[str, Any]]]:
    """A .json file that is either JSON lines or one array of objects (UniversalCEFR ships both)."""
    text = read_text_file(path)
    if not text.lstrip().startswith("["):
        yield from read_jsonl(path, bad_rows=bad_rows)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}: invalid JSON at line {e.lineno} ({e.msg})") from None
    for i, obj in enumerate(data, 1):
        if not isinstance(obj, dict):
            _bad_row(bad_rows, f"{path}: row {i}", "expected a JSON object")
            continue
        yield i, obj


def read_csv(
    path: Path, *, required: Iterable[str] = (), delimiter: str | None = None,
    bad_rows: BadRows = "error",
) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number, row) of a CSV/TSV; row 1 is the first data row (header excluded).

    A row with the wrong number of fields is an error, or skipped and counted with
    ``bad_rows="skip"``; a quoting error always stops (the rest of the file is unreliable)."""
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with _utf8(path, newline="") as f:
        # strict: an unterminated quote is an error instead of swallowing the rest of the file.
        reader = csv.reader(f, delimiter=delimiter, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise DataFormatError(f"{path}: empty file (no header row)") from None
        except csv.Error as e:
            raise DataFormatError(f"{path}: header: {e}") from None
        _check_columns(path, header, required)
        i = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise DataFormatError(f"{path}: row {i + 1} (near line {reader.line_num}): {e}; "
                                      "check the quoting of that row") from None
            i += 1
            if not cells:
                continue
            if len(cells) != len(header):
                _bad_row(bad_rows, f"{path}: row {i} (ending at line {reader.line_num})",
                         f"{len(cells)} fields, header has {len(header)}")
                continue
            yield i, dict(zip(header, cells, strict=True))


def _check_columns(path: Path, header: Sequence[str], required: Iterable[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(
            f"{path}: header row: missing column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, header))}"
        )


def read_table(
    path: Path, *, required: Iterable[str] = (), bad_rows: BadRows = "error",
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of any supported table format, numbered from 1, with required columns checked.

    ``bad_rows="skip"``: a row that cannot be read (wrong field count, invalid JSON line, JSON
    line without a required field) is skipped and counted in the load report."""
    suffix = path.suffix.lower()
    required = list(required)
    if suffix in (".csv", ".tsv"):
        yield from read_csv(path, required=required, bad_rows=bad_rows)
        return
    if suffix in (".jsonl", ".json"):
        for n, obj in read_json_any(path, bad_rows=bad_rows):
            missing = [c for c in required if c not in obj]
            if missing:
                _bad_row(bad_rows, f"{path}: line {n}", f"missing field(s) {', '.join(missing)}")
                continue
            yield n, obj
        return
    if suffix in (".parquet", ".xlsx"):
        import pandas as pd

        try:
            if suffix == ".parquet":
                df = pd.read_parquet(path)
            else:
                df = pd.read_excel(path, sheet_name=0, dtype=object)
        except Exception as e:  # any reader failure is a format problem here
            raise DataFormatError(f"{path}: cannot read {suffix[1:]} file ({e})") from None
        _check_columns(path, [str(c) for c in df.columns], required)
        # Excel row 1 is the header, so data row i sits on spreadsheet row i + 1.
        for i, row in enumerate(df.to_dict(orient="records"), 1):
            yield i, {str(k): v for k, v in row.items()}
        return
    raise DataFormatError(f"{path}: unsupported file type {suffix!r}; use one of {TABLE_SUFFIXES}")


def check_unique_ids(records: Sequence[LearnerText], where: str) -> None:
    """Text ids must be unique: splits, caches and predictions are keyed by them."""
    seen: dict[str, int] = {}
    for i, r in enumerate(records):
        if r.id in seen:
            src = r.meta.get("source", where)
            raise DataFormatError(
                f"{src}: duplicate text id {r.id!r} (records {seen[r.id] + 1} and {i + 1})"
            )
        seen[r.id] = i


def files_in(
    folder: Path, suffixes: Sequence[str], *, recursive: bool = True,
    broken_links: Literal["error", "skip"] = "error",
) -> list[Path]:
    """Sorted files with one of ``suffixes`` in (and below) ``folder``, or the file itself.

    A folder whose name ends in a corpus suffix (``notes.txt/``) is skipped with a warning; a
    broken symbolic link is a DataFormatError naming it (or skipped and counted with
    ``broken_links="skip"``): a corpus silently missing a file would change every count.
    """
    if folder.is_symlink() and not folder.exists():
        raise DataFormatError(f"{folder}: broken symbolic link (to {os.readlink(folder)})")
    if folder.is_file():
        return [folder]
    cands = folder.rglob("*") if recursive else folder.iterdir()
    out = []
    for p in cands:
        if p.suffix.lower() not in suffixes:
            continue
        if p.is_symlink() and not p.exists():
            if broken_links == "skip":
                note("skipped_broken_link", str(p))
                continue
            raise DataFormatError(f"{p}: broken symbolic link (points to {os.readlink(p)}); "
                                  "fix or remove it")
        if p.is_dir():
            note("skipped_dir", str(p))
            continue
        if p.is_file():
            out.append(p)
    return sorted(out)
