"""The ``[adapt]`` table of a study config: the ``loco_k`` protocol (docs/STUDY.md).

Method names are checked against the method registry (``tasks = ("adapt",)``) after loading
(``learnerprobe.study.check``); the stage itself is :mod:`learnerprobe.study.adapt`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from learnerprobe.config.base import StrictModel
from learnerprobe.limits import MAX_BOOT

MAX_K = 10_000  # labelled texts drawn from one held-out corpus
MAX_REPEATS = 1_000
#: k labelled texts of the held-out corpus (0 = plain leave-one-corpus-out)
K = Annotated[int, Field(ge=0, le=MAX_K)]


class AdaptConfig(StrictModel):
    """The ``[adapt]`` table: adaptation to each held-out corpus from k labelled texts of it."""

    k: list[K] = Field(default_factory=lambda: [0, 5, 10, 25, 50, 100], min_length=1)
    repeats: int = Field(20, ge=1, le=MAX_REPEATS)  # draws of the k texts per k > 0
    # None: every registered adapt method (learnerprobe.methods.registry, task "adapt")
    methods: list[str] | None = None
    source: str = "ridge"  # the probe fitted on the training corpora (its layer by validation)
    # the two same-k baselines every method is compared with (paired bootstrap)
    baselines: list[str] = Field(default_factory=lambda: ["probe_k", "surface_k"])
    n_boot: int = Field(1000, ge=0, le=MAX_BOOT)  # paired bootstrap draws per comparison

    @field_validator("k")
    @classmethod
    def _sorted_unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("k lists a value twice")
        return sorted(v)
