"""The ``[transfer]`` table of a study config, typed and checked (light: no sklearn at import).

Separate from :mod:`learnerprobe.study.transfer` (the stage itself) so that reading a config
stays cheap. docs/STUDY.md describes the keys.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from learnerprobe.errors import ConfigError
from learnerprobe.limits import LayerIndex
from learnerprobe.methods.registry import get_method, method_names

if TYPE_CHECKING:
    from learnerprobe.study.config import StudyConfig


class TransferSettings(BaseModel):
    """The ``[transfer]`` table (docs/STUDY.md)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    methods: list[str] = Field(default_factory=lambda: method_names(task="transfer"))
    plain: str = "plain"  # the probe every method is compared with (paired bootstrap)
    layers: Literal["all"] | list[LayerIndex] = "all"  # candidate layers (hidden-state indices)
    metric: Literal["qwk", "accuracy", "macro_f1", "mae"] = "qwk"  # inner-validation score
    # Per method, options -> values replacing its grid, e.g. [transfer.grid.leace] C = [0.01].
    # "none" stands for None (TOML has no null).
    grid: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)
    # Also choose the method itself by nested LOCO: rows nested_best (inductive methods) and
    # nested_best_tta (all methods, transductive ones included).
    select_best: bool = True

    def method_list(self) -> list[str]:
        """The plain probe first, then the other methods in config order."""
        return [self.plain] + [m for m in self.methods if m != self.plain]


def validate_transfer(cfg: StudyConfig, source: str = "config") -> None:
    """Unknown method names or grid options are ConfigErrors naming the key."""
    s = cfg.transfer
    if s is None:
        return
    known = method_names(task="transfer")
    bad = [m for m in [*s.methods, s.plain, *s.grid] if m not in known]
    if bad:
        raise ConfigError(f"{source}: transfer: unknown method {', '.join(map(repr, bad))}; "
                          f"known: {', '.join(known)}")
    for m, opts in s.grid.items():
        params = get_method(m).build(n_classes=2).get_params()
        wrong = [k for k in opts if k not in params]
        if wrong:
            raise ConfigError(f"{source}: transfer.grid.{m}.{wrong[0]}: unknown option; "
                              f"known: {', '.join(sorted(params))}")
        empty = [k for k, v in opts.items() if not v]
        if empty:
            raise ConfigError(f"{source}: transfer.grid.{m}.{empty[0]}: give at least one value")


def _none(v: Any) -> Any:
    return None if isinstance(v, str) and v.lower() == "none" else v


def method_grid(name: str, settings: TransferSettings) -> list[tuple[tuple[str, Any], ...]]:
    """The method's grid points (its registry grid, config overrides winning), in a fixed
    order: the order candidates are listed in and ties broken by."""
    grid = dict(get_method(name, task="transfer").grid or {})
    grid.update(settings.grid.get(name, {}))
    keys = list(grid)
    return [tuple((k, _none(v)) for k, v in zip(keys, vals, strict=True))
            for vals in itertools.product(*(grid[k] for k in keys))]
