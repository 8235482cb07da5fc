"""Write/read corpora as Parquet or JSONL, and count what a corpus contains.

Parquet has a fixed schema, so ``meta`` (whose keys differ between corpora) is stored there as a
JSON string column; JSONL keeps it as a nested object. :func:`read_records` reads both back.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from learnerprobe.corpora._common import read_jsonl
from learnerprobe.errors import DataFormatError, LearnerprobeError
from learnerprobe.records import LearnerText

NONE_KEY = "(none)"
_COLUMNS = ("id", "corpus", "language", "text", "text_corrected", "cefr", "cefr_raw", "l1",
            "l1_raw", "author_id", "task", "split")


def write_records(records: Sequence[LearnerText], out: str | Path) -> Path:
    """Write records to ``out``; the format follows the suffix (.parquet or .jsonl)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".jsonl"):
        raise LearnerprobeError(f"--out {out}: use a .parquet or .jsonl file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        with open(out, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r.to_dict(), ensure_ascii=False, default=str) + "\n")
        return out
    import pyarrow as pa
    import pyarrow.parquet as pq

    data: dict[str, list[Any]] = {c: [getattr(r, c) for r in records] for c in _COLUMNS}
    data["hash"] = [r.hash for r in records]
    data["meta"] = [json.dumps(r.meta, ensure_ascii=False, default=str) for r in records]
    schema = pa.schema([(c, pa.string()) for c in (*_COLUMNS, "hash", "meta")])
    pq.write_table(pa.table(data, schema=schema), out)
    return out


def read_records(path: str | Path) -> list[LearnerText]:
    """Records from a file written by :func:`write_records`."""
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        return [LearnerText.from_dict(d) for _, d in read_jsonl(path)]
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
        out = []
        for i, d in enumerate(rows, 1):
            try:
                d["meta"] = json.loads(d.get("meta") or "{}")
            except json.JSONDecodeError:
                raise DataFormatError(f"{path}: row {i}: meta is not valid JSON") from None
            out.append(LearnerText.from_dict(d))
        return out
    raise LearnerprobeError(f"{path}: expected a .parquet or .jsonl file")


def _count(values: Iterable[Any]) -> dict[str, int]:
    c = Counter(NONE_KEY if v is None else str(v) for v in values)
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def corpus_stats(records: Sequence[LearnerText]) -> dict[str, Any]:
    """Counts for ``corpus stats``: n_texts and label -> count maps (None counted as "(none)"),
    plus ``load_report`` (skipped edits, files, unparseable labels ...) for records from
    :func:`learnerprobe.corpora.load_corpus` when anything was skipped or counted."""
    stats: dict[str, Any] = {
        "n_texts": len(records),
        "n_authors": len({r.author_id for r in records if r.author_id is not None}),
        "by_corpus": _count(r.corpus for r in records),
        "by_language": _count(r.language for r in records),
        "by_cefr": _count(r.cefr for r in records),
        "by_l1": _count(r.l1 for r in records),
        "by_split": _count(r.split for r in records),
        "n_with_correction": sum(r.text_corrected is not None for r in records),
        "mean_chars": round(sum(len(r.text) for r in records) / len(records), 1) if records else 0,
    }
    if any("level" in r.meta for r in records):
        stats["by_level"] = _count(r.meta.get("level") for r in records)
    report = getattr(records, "report", None)  # set by load_corpus: what loading skipped
    if report:
        stats["load_report"] = report.to_dict()
    return stats
