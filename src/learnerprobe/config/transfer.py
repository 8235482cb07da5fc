"""The ``[transfer]`` table of a study config (docs/STUDY.md describes the keys).

The method names and grid options are checked against the method registry after loading
(``learnerprobe.study.check``); the stage itself is :mod:`learnerprobe.study.transfer`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from learnerprobe.config.base import StrictModel
from learnerprobe.limits import LayerIndex


class TransferConfig(StrictModel):
    """The ``[transfer]`` table: transfer methods under nested leave-one-corpus-out selection."""

    # None: every registered transfer method (learnerprobe.study.transfer.method_list)
    methods: list[str] | None = None
    plain: str = "plain"  # the probe every method is compared with (paired bootstrap)
    layers: Literal["all"] | list[LayerIndex] = "all"  # candidate layers (hidden-state indices)
    metric: Literal["qwk", "accuracy", "macro_f1", "mae"] = "qwk"  # inner-validation score
    # Per method, options -> values replacing its grid, e.g. [transfer.grid.leace] C = [0.01].
    # "none" stands for None (TOML has no null).
    grid: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)
    # Also choose the method itself by nested LOCO: rows nested_best (inductive methods) and
    # nested_best_tta (all methods, transductive ones included).
    select_best: bool = True
