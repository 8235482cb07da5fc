"""CEFR-SP (Arase et al. 2022): English sentences rated by two annotators on levels 1-6 (A1-C2).

Files are tab-separated without a header: ``sentence<TAB>level_annotator_1<TAB>level_annotator_2``
(e.g. ``CEFR-SP/SCoRE/CEFR-SP_SCoRE_train.txt``, ``.../Wiki-Auto/CEFR-SP_Wikiauto_dev.txt``).
Put them under ``$LEARNERPROBE_DATA/cefr-sp/``.

Label: ``cefr`` = the rounded-down mean of the two levels (``agg="floor"``, default: a sentence
is only as hard as both annotators agree it is at least; (3, 4) -> B1); ``agg="mean"`` keeps
the half step as a canonical "+" label ((3, 4) -> B1+). Both annotator levels are kept in
``meta["annotator_1"]``/``["annotator_2"]``; ``cefr_raw`` = "3,4". ``split`` and
``meta["source_name"]`` (SCoRE / Wiki-Auto) come from the file name; ``id`` =
``<file stem>.<line>``. Sentences have no author: ``author_id`` is None.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Literal

from learnerprobe.cefr import LEVELS, parse_cefr
from learnerprobe.corpora._common import _utf8, check_unique_ids, checked_text, files_in, locate
from learnerprobe.errors import CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://github.com/yukiar/CEFR-SP"


def _split(name: str) -> str | None:
    low = name.lower()
    return next((s for s in ("train", "dev", "test") if s in low), None)


def parse_file(
    path: Path, agg: Literal["floor", "mean"] = "floor", *, strict: bool = False,
) -> list[LearnerText]:
    out = []
    with _utf8(path, newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for n, cells in enumerate(_rows(rows, path), 1):
            if not cells or not "".join(cells).strip():
                continue
            if len(cells) != 3:
                raise DataFormatError(f"{path}: line {n}: expected 3 tab-separated fields "
                                      f"(sentence, level, level), got {len(cells)}")
            a, b = cells[1].strip(), cells[2].strip()
            try:
                la, lb = int(a), int(b)
                if not (1 <= la <= 6 and 1 <= lb <= 6):
                    raise ValueError
            except ValueError:
                raise DataFormatError(f"{path}: line {n}: levels must be integers 1-6, got "
                                      f"{a!r} and {b!r}") from None
            sent = checked_text(cells[0], where=f"{path}: line {n}", strict=strict)
            if sent is None:
                continue
            mean = (la + lb) / 2
            cefr = LEVELS[math.floor(mean) - 1] if agg == "floor" else parse_cefr(mean)
            low = path.stem.lower()
            out.append(LearnerText(
                id=f"{path.stem}.{n}", corpus="cefr-sp", language="en", text=sent, cefr=cefr,
                cefr_raw=f"{la},{lb}", split=_split(path.stem),
                meta={"annotator_1": la, "annotator_2": lb,
                      "source_name": "SCoRE" if "score" in low else
                      ("Wiki-Auto" if "wiki" in low else None),
                      "source": f"{path.name}:{n}"},
            ))
    return out


def _rows(reader, path: Path):
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataFormatError(f"{path}: line {reader.line_num}: {e}") from None


def load(
    root: Path, *, agg: Literal["floor", "mean"] = "floor", path: str | Path | None = None,
    strict: bool = False,
) -> list[LearnerText]:
    """All sentences of every CEFR-SP .txt/.tsv file found; an empty sentence or one holding
    a NUL byte is skipped and counted in the load report (refused with ``strict``)."""
    if agg not in ("floor", "mean"):
        raise DataFormatError(f"cefr-sp: agg must be 'floor' or 'mean', not {agg!r}")
    base = locate(root, ["cefr-sp", "CEFR-SP"], corpus="cefr-sp", url=URL, path=path,
                  markers=("CEFR-SP_*", "*/CEFR-SP_*"))
    files = files_in(base, (".txt", ".tsv"))
    files = [f for f in files if f.name.lower() not in ("readme.txt", "license.txt")]
    if not files:
        raise CorpusNotFoundError(f"corpus 'cefr-sp': no .txt/.tsv files in {base}. See {URL}")
    out: list[LearnerText] = []
    for f in files:
        out.extend(parse_file(f, agg, strict=strict))
    check_unique_ids(out, str(base))
    return out
