"""NLI inputs: :func:`as_texts` (what every method accepts) and, re-exported from
:mod:`learnerprobe.tasks.l1`, the L1 task preparation (which texts and labels an NLI experiment
uses, and how they are grouped), kept apart from the methods so every method sees the same
texts, labels and author groups. The folds come from ``learnerprobe.evaluation.splits``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from learnerprobe.records import LearnerText

# The preparation itself lives in learnerprobe.tasks.l1 (one implementation, shared with the
# study runner and `learnerprobe train`); its names stay importable from here.
from learnerprobe.tasks.l1 import NON_L1, prepare_l1_task
from learnerprobe.tasks.l1 import L1Data as L1Task

__all__ = ["NON_L1", "L1Task", "as_texts", "prepare_l1_task"]


def as_texts(X: Sequence[Any]) -> list[str]:
    """Strings from a list of str, LearnerText or dicts with "text" (methods accept all three)."""
    out: list[str] = []
    for i, x in enumerate(X):
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, LearnerText):
            out.append(x.text)
        elif isinstance(x, dict) and "text" in x:
            out.append(str(x["text"]))
        else:
            raise TypeError(f"item {i}: expected str, LearnerText or dict with 'text', got {type(x)}")
    return out
