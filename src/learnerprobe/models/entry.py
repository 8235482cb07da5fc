"""The declarative model entry shared by the registry, the extractor and bundles."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Pooling = Literal["last", "mean", "cls"]
Kind = Literal["encoder", "decoder"]


@dataclass(frozen=True)
class ModelEntry:
    """What is needed to turn a text into pooled per-layer vectors, reproducibly.

    ``source`` is a hub id (``Qwen/Qwen3-Embedding-0.6B``), a local folder, or ``provider:NAME``
    for offline providers prepared by ``learnerprobe models prepare``. ``template`` is a format
    string with ``{text}`` (and optionally ``{task}``), e.g. ``"passage: {text}"``.
    """

    name: str
    source: str
    kind: Kind
    pooling: Pooling
    template: str = "{text}"
    task: str = ""
    padding_side: Literal["left", "right"] = "right"
    max_length: int = 512
    dtype: str = "auto"
    revision: str | None = None
    languages: tuple[str, ...] = ()
    description: str = ""

    def format(self, text: str) -> str:
        """Apply the instruction/prefix template to one text."""
        return self.template.format(text=text, task=self.task)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["languages"] = list(self.languages)
        return d
