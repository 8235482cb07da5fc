"""Texts shared by the activation-cache tests of both layers (tiny model, unit; e5, integration)."""

from __future__ import annotations

from learnerprobe.records import LearnerText

TEXTS = [
    f"Text {i}: " + "Ich lerne Deutsch seit drei Jahren und finde es schwer. " * (1 + i % 5)
    for i in range(12)
]


def text_records(texts: list[str] = TEXTS) -> list[LearnerText]:
    """One record per text (ids t0, t1, ...)."""
    return [
        LearnerText(id=f"t{i}", corpus="test", language="de", text=t) for i, t in enumerate(texts)
    ]
