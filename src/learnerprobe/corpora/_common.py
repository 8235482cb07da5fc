"""Shared reading helpers for the loaders: locate files, read rows with their numbers, and turn
every format problem into a DataFormatError that names the file and the row."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from learnerprobe.errors import CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

ENV = "LEARNERPROBE_DATA"
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".xlsx")

# Large essays (EFCAMDAT, COWS-L2H corrections) exceed the csv module's 128 KiB default.
csv.field_size_limit(1 << 30)


def locate(
    root: Path, candidates: Sequence[str], *, corpus: str, url: str, what: str = "folder",
    path: str | Path | None = None,
) -> Path:
    """First existing ``root / candidate``; else a CorpusNotFoundError saying where we looked."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_absolute():
            p = root / p
        if p.exists():
            return p
        looked = [p]
    else:
        looked = [root / c for c in candidates]
        for p in looked:
            if p.exists():
                return p
    tried = "\n  ".join(str(p) for p in looked)
    raise CorpusNotFoundError(
        f"corpus {corpus!r} not found. Looked for the {what} at:\n  {tried}\n"
        f"Set ${ENV} (now: data root {root}) or pass --root / root=. "
        f"Get the official release from {url}"
    )


class _utf8:
    """Open a text file as UTF-8 (BOM tolerated); a decoding error becomes a DataFormatError."""

    def __init__(self, path: Path, newline: str | None = None) -> None:
        self.path, self.f = path, open(path, encoding="utf-8-sig", newline=newline)

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb) -> None:
        self.f.close()
        if isinstance(e, UnicodeDecodeError):
            raise DataFormatError(f"{self.path}: not UTF-8 text (bad byte at offset {e.start} of "
                                  "a read block); re-save the file as UTF-8") from None

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


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; malformed JSON names file and line."""
    with _utf8(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataFormatError(f"{path}: line {n}: expected a JSON object per line")
            yield n, obj


def read_json_any(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """A .json file that is either JSON lines or one array of objects (UniversalCEFR ships both)."""
    with open(path, encoding="utf-8") as f:
        head = f.read(1 << 12).lstrip()
    if not head.startswith("["):
        yield from read_jsonl(path)
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}: invalid JSON at line {e.lineno} ({e.msg})") from None
    for i, obj in enumerate(data, 1):
        if not isinstance(obj, dict):
            raise DataFormatError(f"{path}: row {i}: expected a JSON object")
        yield i, obj


def read_csv(
    path: Path, *, required: Iterable[str] = (), delimiter: str | None = None,
) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number, row) of a CSV/TSV; row 1 is the first data row (header excluded)."""
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with _utf8(path, newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
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
                raise DataFormatError(f"{path}: row {i + 1}: {e}") from None
            i += 1
            if not cells:
                continue
            if len(cells) != len(header):
                raise DataFormatError(
                    f"{path}: row {i} (ending at line {reader.line_num}): {len(cells)} fields, "
                    f"header has {len(header)}"
                )
            yield i, dict(zip(header, cells, strict=True))


def _check_columns(path: Path, header: Sequence[str], required: Iterable[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(
            f"{path}: header row: missing column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, header))}"
        )


def read_table(path: Path, *, required: Iterable[str] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of any supported table format, numbered from 1, with required columns checked."""
    suffix = path.suffix.lower()
    required = list(required)
    if suffix in (".csv", ".tsv"):
        yield from read_csv(path, required=required)
        return
    if suffix in (".jsonl", ".json"):
        for n, obj in read_json_any(path):
            missing = [c for c in required if c not in obj]
            if missing:
                raise DataFormatError(f"{path}: line {n}: missing field(s) {', '.join(missing)}")
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


def files_in(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Sorted files with one of ``suffixes`` directly in or below ``folder`` (or the file itself)."""
    if folder.is_file():
        return [folder]
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
