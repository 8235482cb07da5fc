"""The one base of the config tables."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A config table: unknown keys are errors; strict types (``folds = "5"``,
    ``shared_levels = "yes"`` and ``n_boot = 1e12`` are errors, not coerced); TOML's ``inf``
    and ``nan`` are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
