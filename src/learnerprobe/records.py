"""The one record type every corpus loader produces, so downstream stages never see corpus quirks."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


def text_hash(text: str) -> str:
    """Stable content hash used to address cached rows (never join on the raw string)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class LearnerText:
    """A learner text with normalised labels; `*_raw` keep what the corpus said."""

    id: str
    corpus: str
    language: str  # ISO 639-1 code of the language written (the target language)
    text: str
    text_corrected: str | None = None
    cefr: str | None = None  # canonical CEFR label, see learnerprobe.cefr
    cefr_raw: str | None = None
    l1: str | None = None  # normalised English language name, e.g. "Russian"
    l1_raw: str | None = None
    author_id: str | None = None
    task: str | None = None
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return text_hash(self.text)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LearnerText:
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        kw["meta"] = dict(kw.get("meta") or {})
        return cls(**kw)
