"""Cleaning of learner texts before any study: drop broken rows and duplicates, normalise Unicode.

Why: duplicated essays (a text submitted twice, or the same text with different spacing) leak
between train and test folds and inflate scores; empty or punctuation-only rows are not texts.
Learner errors are never corrected: the only change made to a kept text is Unicode NFC, so that
"ü" typed as "u" + combining diaeresis and "ü" are the same string.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from learnerprobe.records import LearnerText

REQUIRED_FIELDS: tuple[str, ...] = ("id", "corpus", "language", "text")
REASONS: tuple[str, ...] = (
    "missing_field",  # a required field is None/empty or the text is not a string
    "duplicate_id",  # the same (corpus, id) seen before
    "empty",  # the text is empty or whitespace only
    "no_letters",  # only punctuation, digits or symbols
    "too_short",  # fewer than min_chars non-space characters
    "duplicate_exact",  # identical text (after NFC) to an earlier row
    "duplicate_normalised",  # identical after collapsing whitespace and case
)

_SPACE = re.compile(r"\s+")


@dataclass
class CleanReport:
    """What :func:`clean` dropped and why; ``dropped`` maps reason -> record ids."""

    n_in: int = 0
    n_out: int = 0
    n_nfc_changed: int = 0
    dropped: dict[str, list[str]] = field(default_factory=lambda: {r: [] for r in REASONS})

    @property
    def counts(self) -> dict[str, int]:
        return {r: len(ids) for r, ids in self.dropped.items()}

    @property
    def n_dropped(self) -> int:
        return self.n_in - self.n_out

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_in": self.n_in,
            "n_out": self.n_out,
            "n_dropped": self.n_dropped,
            "n_nfc_changed": self.n_nfc_changed,
            "counts": self.counts,
            "dropped": {r: list(ids) for r, ids in self.dropped.items()},
        }


def normalised_key(text: str) -> str:
    """Whitespace- and case-insensitive key used to find near-verbatim duplicates."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip().casefold()


def _missing(rec: LearnerText) -> bool:
    for name in REQUIRED_FIELDS:
        v = getattr(rec, name, None)
        if v is None or (isinstance(v, str) and not v.strip() and name != "text"):
            return True
    return not isinstance(rec.text, str)


def clean(
    records: Iterable[LearnerText], *, dedupe: bool = True, min_chars: int = 1
) -> tuple[list[LearnerText], CleanReport]:
    """Drop broken rows and duplicates (the first occurrence is kept); NFC-normalise the rest.

    Duplicates are detected across all given records, whatever their corpus, because a text in
    two corpora leaks just as much. Returns new records (inputs are not modified) and a report.
    """
    report = CleanReport()
    out: list[LearnerText] = []
    seen_ids: set[tuple[str, str]] = set()
    seen_exact: set[str] = set()
    seen_norm: set[str] = set()
    for rec in records:
        report.n_in += 1
        rid = str(getattr(rec, "id", None))
        if _missing(rec):
            report.dropped["missing_field"].append(rid)
            continue
        id_key = (rec.corpus, rec.id)
        if id_key in seen_ids:
            report.dropped["duplicate_id"].append(rid)
            continue
        text = unicodedata.normalize("NFC", rec.text)
        stripped = "".join(text.split())
        if not stripped:
            report.dropped["empty"].append(rid)
            continue
        if not any(ch.isalpha() for ch in stripped):
            report.dropped["no_letters"].append(rid)
            continue
        if len(stripped) < min_chars:
            report.dropped["too_short"].append(rid)
            continue
        if dedupe:
            if text in seen_exact:
                report.dropped["duplicate_exact"].append(rid)
                continue
            norm = normalised_key(text)
            if norm in seen_norm:
                report.dropped["duplicate_normalised"].append(rid)
                continue
            seen_exact.add(text)
            seen_norm.add(norm)
        seen_ids.add(id_key)
        corrected = rec.text_corrected
        if isinstance(corrected, str):
            corrected = unicodedata.normalize("NFC", corrected)
        if text != rec.text or corrected != rec.text_corrected:
            report.n_nfc_changed += 1
            rec = replace(rec, text=text, text_corrected=corrected, meta=dict(rec.meta))
        out.append(rec)
    report.n_out = len(out)
    return out, report
