"""BEA-2019 shared-task releases: Write & Improve + LOCNESS and the CLC FCE, as JSON lines.

- W&I+LOCNESS (``wi+locness/json/{A,B,C,N}.{train,dev}.json``): one essay per line with
  ``id``, ``userid``, ``cefr`` (``A2.ii``-style; LOCNESS native essays have ``N``), ``text`` and
  ``edits``. ``cefr`` is parsed with :func:`learnerprobe.cefr.parse_cefr` (A2.ii -> A2+);
  LOCNESS essays get ``cefr`` None, ``l1`` "English" and ``meta["native"] = True``.
  ``author_id`` = userid. W&I gives no L1.
- CLC FCE (``fce/json/fce.{train,dev,test}.json``): one answer per line with ``id`` (the exam
  script, shared by the answers of one candidate), ``q`` (question), ``l1`` (a language code or
  name), ``age``, ``answer-s`` and ``script-s`` (scores, kept in ``meta`` as answer_score and
  script_score), ``text``, ``edits``. ``id`` = ``fce.<script>.q<q>``, ``author_id`` = script id,
  ``cefr`` None (FCE is a single-level B2 exam; use the scores).

``text_corrected`` applies the first annotator's character-offset edits to ``text`` (an edit
whose correction is null keeps the original span); ``split`` comes from the file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learnerprobe.corpora._common import check_unique_ids, clean_str, files_in, read_jsonl
from learnerprobe.errors import CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://www.cl.cam.ac.uk/research/nl/bea2019st/"
SUBSETS = {
    "wi": ("bea19/wi+locness/json", "bea19/wi+locness", "wi+locness/json", "wi+locness"),
    "fce": ("bea19/fce/json", "bea19/fce", "fce/json", "fce"),
}


def apply_edits(text: str, edits: Any, where: str) -> str | None:
    """Corrected text from BEA-style edits ``[[annotator, [[start, end, corr, ...], ...]], ...]``."""
    if not edits:
        return None
    try:
        first = edits[0][1]
        spans = sorted((int(e[0]), int(e[1]), e[2]) for e in first)
    except (TypeError, ValueError, IndexError, KeyError):
        raise DataFormatError(f"{where}: malformed 'edits' (expected [[annotator, "
                              "[[start, end, correction], ...]], ...])") from None
    out, pos = [], 0
    for start, end, corr in spans:
        if start < pos or end < start or end > len(text):
            raise DataFormatError(f"{where}: edit offsets {start}..{end} outside the text or "
                                  "overlapping")
        out.append(text[pos:start])
        out.append(text[start:end] if corr is None else str(corr))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _split_of(path: Path) -> str | None:
    for s in ("train", "dev", "test"):
        if f".{s}." in path.name or path.stem.endswith(s):
            return s
    return None


def _num(v: Any) -> float | None:
    try:
        return None if v is None or v == "" else float(v)
    except (TypeError, ValueError):
        return None


def _wi(path: Path) -> list[LearnerText]:
    from learnerprobe.cefr import parse_cefr

    out = []
    for n, obj in read_jsonl(path):
        where = f"{path}: line {n}"
        tid, text = clean_str(obj.get("id")), obj.get("text")
        if tid is None or not isinstance(text, str):
            raise DataFormatError(f"{where}: needs string fields 'id' and 'text'")
        cefr_raw = clean_str(obj.get("cefr"))
        native = cefr_raw is not None and cefr_raw.upper() == "N"
        try:
            cefr = None if native else parse_cefr(cefr_raw, strict=True)
        except ValueError:
            raise DataFormatError(f"{where}: unrecognised CEFR label {cefr_raw!r}") from None
        out.append(LearnerText(
            id=f"wi.{tid}", corpus="bea19", language="en", text=text.strip(),
            text_corrected=(c.strip() if (c := apply_edits(text, obj.get("edits"), where)) else None),
            cefr=cefr, cefr_raw=cefr_raw,
            l1="English" if native else None, l1_raw=None,
            author_id=clean_str(obj.get("userid")), split=_split_of(path),
            meta={"subset": "locness" if native else "wi", "native": native,
                  "source": f"{path.name}:{n}"},
        ))
    return out


def _fce(path: Path) -> list[LearnerText]:
    from learnerprobe.corpora.languages import normalise_l1

    out = []
    for n, obj in read_jsonl(path):
        where = f"{path}: line {n}"
        sid, text = clean_str(obj.get("id")), obj.get("text")
        if sid is None or not isinstance(text, str):
            raise DataFormatError(f"{where}: needs string fields 'id' and 'text'")
        q = clean_str(obj.get("q")) or str(n)
        l1_raw = clean_str(obj.get("l1"))
        out.append(LearnerText(
            id=f"fce.{sid}.q{q}", corpus="bea19", language="en", text=text.strip(),
            text_corrected=(c.strip() if (c := apply_edits(text, obj.get("edits"), where)) else None),
            l1=normalise_l1(l1_raw), l1_raw=l1_raw, author_id=sid, task=f"q{q}",
            split=_split_of(path),
            meta={"subset": "fce", "question": q, "age": clean_str(obj.get("age")),
                  "answer_score": _num(obj.get("answer-s")),
                  "script_score": _num(obj.get("script-s")),
                  "source": f"{path.name}:{n}"},
        ))
    return out


def load(
    root: Path, *, subsets: list[str] | tuple[str, ...] | None = None,
    path: str | Path | None = None,
) -> list[LearnerText]:
    """W&I+LOCNESS and/or FCE essays (``subsets``; default: every subset that is present)."""
    wanted = list(subsets) if subsets else list(SUBSETS)
    bad = [s for s in wanted if s not in SUBSETS]
    if bad:
        raise DataFormatError(f"bea19: unknown subset(s) {bad}; known: {list(SUBSETS)}")
    out: list[LearnerText] = []
    looked: list[Path] = []
    missing: list[str] = []
    for sub in wanted:
        if path is not None:
            p = Path(path).expanduser()
            folders = [p if p.is_absolute() else root / p]
        else:
            folders = [root / c for c in SUBSETS[sub]]
        folder = next((f for f in folders if f.exists()), None)
        files = [] if folder is None else [
            f for f in files_in(folder, (".json", ".jsonl"))
            if f.name.lower().startswith("fce") == (sub == "fce")
        ]
        if not files:
            looked += folders
            missing.append(sub)
            continue
        for f in files:
            out.extend(_fce(f) if sub == "fce" else _wi(f))
    # Explicitly requested subsets must all exist; by default any present subset is enough.
    if missing and (subsets or len(missing) == len(wanted)):
        tried = "\n  ".join(map(str, looked))
        raise CorpusNotFoundError(
            f"corpus 'bea19' ({', '.join(missing)}) not found. Looked for JSON files at:\n"
            f"  {tried}\nSet $LEARNERPROBE_DATA or pass --root. Get the releases from {URL}"
        )
    check_unique_ids(out, "bea19")
    return out
