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

``text_corrected`` applies the first annotator's character-offset edits to ``text`` following the
official ``json_to_m2.py`` of the shared task (see :func:`correct`): a null correction marks an
error without correcting it (the text is kept as written), several edits may share an offset,
and overlapping or malformed edits are skipped, never failing the corpus; what was skipped is
counted per text in ``meta["edits_skipped"]`` and per load in the load report (``corpus
stats --json``: ``load_report``). ``split`` comes from the file name.

Options: ``subsets`` (["wi", "fce"]) or ``subset`` ("wi"), ``path`` (folder or file),
``strict`` (an unrecognised W&I ``cefr`` is refused instead of loading unrated with a warning,
and so is an empty text or one holding a NUL byte instead of being skipped and counted),
``labels`` ("required": a W&I line without a ``cefr`` field is an error; "optional").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learnerprobe.corpora._common import (
    LabelsMode,
    cefr_label,
    check_labels_mode,
    check_unique_ids,
    checked_text,
    clean_str,
    corpus_places,
    files_in,
    is_corpus_folder,
    note,
    read_jsonl,
)
from learnerprobe.corpora.languages import normalise_l1
from learnerprobe.errors import CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://www.cl.cam.ac.uk/research/nl/bea2019st/"
SUBSETS = {
    "wi": ("bea19/wi+locness/json", "bea19/wi+locness", "wi+locness/json", "wi+locness"),
    "fce": ("bea19/fce/json", "bea19/fce", "fce/json", "fce"),
}


def _in_paragraph(text: str, start: int, end: int) -> bool:
    """json_to_m2.py splits essays at newlines and keeps only edits inside one paragraph."""
    if start < end:
        return "\n" not in text[start:end]
    # An insertion belongs to a paragraph when a neighbouring character is not a newline.
    return (start > 0 and text[start - 1] != "\n") or (start < len(text) and text[start] != "\n")


def _annotator_edits(edits: Any) -> list[Any] | None:
    """The first annotator's edit list of ``[[annotator, [[start, end, corr, ...], ...]], ...]``."""
    if not isinstance(edits, list) or not edits:
        return None
    first = edits[0]
    if not isinstance(first, (list, tuple)) or len(first) != 2 or not isinstance(first[1], list):
        return None
    return first[1]


def correct(text: str, edits: Any) -> tuple[str | None, dict[str, int]]:
    """Corrected text and counts, following the BEA-2019 ``json_to_m2.py`` semantics.

    ``edits`` is ``[[annotator_id, [[start, end, correction(, type)], ...]], ...]`` with character
    offsets into ``text``; the first annotator's edits are applied. As in the official script:
    a null correction is a detection edit (an error marked without a correction), so the text is
    kept as written; an edit whose span crosses a newline (paragraph break) is ignored; edits are
    ordered by offsets with ties kept in file order (several insertions at one offset all apply,
    in order); an edit overlapping an already applied one is dropped. An edit that is not
    ``[int, int, str|None, ...]`` or whose offsets fall outside the text is skipped. Nothing
    here raises for one bad edit: the counts say what was applied, detection-only and skipped
    (the ``edits_*`` keys of :data:`learnerprobe.corpora._common.REPORT_KEYS`).
    """
    counts = {"applied": 0, "detection_only": 0, "skipped_overlap": 0, "skipped_malformed": 0,
              "skipped_offsets": 0, "skipped_cross_paragraph": 0}
    if edits is None or edits == []:
        return None, counts
    spans = _annotator_edits(edits)
    if spans is None:
        counts["malformed_field"] = 1
        return None, counts
    valid: list[tuple[int, int, str]] = []
    for e in spans:
        if (not isinstance(e, (list, tuple)) or len(e) < 3
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in e[:2])
                or not (e[2] is None or isinstance(e[2], str))):
            counts["skipped_malformed"] += 1
            continue
        start, end, corr = e[0], e[1], e[2]
        if not 0 <= start <= end <= len(text):
            counts["skipped_offsets"] += 1
            continue
        if not _in_paragraph(text, start, end):
            counts["skipped_cross_paragraph"] += 1
            continue
        if corr is None:
            counts["detection_only"] += 1  # keeps the span as written: nothing to apply
            continue
        valid.append((start, end, corr))
    # Sort on offsets only (a stable sort keeps same-offset edits in file order): sorting on
    # (start, end, correction) would compare None with str and fail.
    valid.sort(key=lambda x: (x[0], x[1]))
    out, pos = [], 0
    for start, end, corr in valid:
        if start < pos:
            counts["skipped_overlap"] += 1
            continue
        out.append(text[pos:start])
        out.append(corr)
        pos = end
        counts["applied"] += 1
    out.append(text[pos:])
    return "".join(out), counts


def apply_edits(text: str, edits: Any, where: str) -> str | None:
    """Corrected text (see :func:`correct`); skipped edits are counted in the load report."""
    corrected, counts = correct(text, edits)
    _note_edits(counts, where)
    return corrected


def _note_edits(counts: dict[str, int], where: str) -> None:
    for k, n in counts.items():
        if n and k != "applied":
            note(f"edits_{k}", where, n)


def _corrected(text: str, edits: Any, where: str, meta: dict[str, Any]) -> str | None:
    corrected, counts = correct(text, edits)
    _note_edits(counts, where)
    # Per text: edits applied, detection-only, and skipped (by reason); zero counts left out.
    meta["edit_counts"] = {k: n for k, n in counts.items() if n}
    if isinstance(edits, list):
        meta["n_annotators"] = len(edits)
    return corrected.strip() if corrected else None


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


def _wi(path: Path, strict: bool, labels: LabelsMode) -> list[LearnerText]:
    out = []
    for n, obj in read_jsonl(path):
        where = f"{path}: line {n}"
        tid, text = clean_str(obj.get("id")), obj.get("text")
        if tid is None or not isinstance(text, str):
            raise DataFormatError(f"{where}: needs string fields 'id' and 'text'")
        if checked_text(text, where=where, strict=strict) is None:
            continue
        if "cefr" not in obj and labels == "required":
            raise DataFormatError(f"{where}: no 'cefr' field (found {', '.join(obj)}); pass "
                                  "labels='optional' to load W&I texts unlabelled")
        cefr_raw = clean_str(obj.get("cefr"))
        native = cefr_raw is not None and cefr_raw.upper() == "N"
        cefr = None if native else cefr_label(cefr_raw, strict=strict, where=where)
        meta: dict[str, Any] = {"subset": "locness" if native else "wi", "native": native,
                                "source": f"{path.name}:{n}"}
        out.append(LearnerText(
            id=f"wi.{tid}", corpus="bea19", language="en", text=text.strip(),
            text_corrected=_corrected(text, obj.get("edits"), where, meta),
            cefr=cefr, cefr_raw=cefr_raw,
            l1="English" if native else None, l1_raw=None,
            author_id=clean_str(obj.get("userid")), split=_split_of(path), meta=meta,
        ))
    return out


def _fce(path: Path, strict: bool) -> list[LearnerText]:
    out = []
    for n, obj in read_jsonl(path):
        where = f"{path}: line {n}"
        sid, text = clean_str(obj.get("id")), obj.get("text")
        if sid is None or not isinstance(text, str):
            raise DataFormatError(f"{where}: needs string fields 'id' and 'text'")
        if checked_text(text, where=where, strict=strict) is None:
            continue
        q = clean_str(obj.get("q")) or str(n)
        l1_raw = clean_str(obj.get("l1"))
        meta: dict[str, Any] = {"subset": "fce", "question": q, "age": clean_str(obj.get("age")),
                                "answer_score": _num(obj.get("answer-s")),
                                "script_score": _num(obj.get("script-s")),
                                "source": f"{path.name}:{n}"}
        out.append(LearnerText(
            id=f"fce.{sid}.q{q}", corpus="bea19", language="en", text=text.strip(),
            text_corrected=_corrected(text, obj.get("edits"), where, meta),
            l1=normalise_l1(l1_raw), l1_raw=l1_raw, author_id=sid, task=f"q{q}",
            split=_split_of(path), meta=meta,
        ))
    return out


def load(
    root: Path, *, subsets: list[str] | tuple[str, ...] | None = None, subset: str | None = None,
    path: str | Path | None = None, strict: bool = False, labels: LabelsMode = "required",
) -> list[LearnerText]:
    """W&I+LOCNESS and/or FCE essays (``subsets``; default: every subset that is present)."""
    check_labels_mode(labels)
    if subset is not None:
        if subsets:
            raise DataFormatError("bea19: give subset= or subsets=, not both")
        subsets = [subset]
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
            # root: a data root holding bea19/ (or wi+locness/, fce/), or one of those folders.
            folders = corpus_places(root, SUBSETS[sub])
            if is_corpus_folder(root, SUBSETS[sub]):
                folders.append(root)
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
            out.extend(_fce(f, strict) if sub == "fce" else _wi(f, strict, labels))
    # Explicitly requested subsets must all exist; by default any present subset is enough.
    if missing and (subsets or len(missing) == len(wanted)):
        tried = "\n  ".join(map(str, looked))
        raise CorpusNotFoundError(
            f"corpus 'bea19' ({', '.join(missing)}) not found. Looked for JSON files at:\n"
            f"  {tried}\nand at {root} itself as the corpus folder (bea19, wi+locness or fce)\n"
            f"Set $LEARNERPROBE_DATA or pass --root (the data root holding the corpus folder, or "
            f"the corpus folder itself). Get the releases from {URL}"
        )
    check_unique_ids(out, "bea19")
    return out
