"""The precision MLP probes are fitted in: fp32, or bf16 autocast with fp32 master weights.

Why: on CPUs with native bf16 (AMX, AVX512-BF16) bf16 matrix products run several times faster
than fp32 (measured ~7x for the matmul roofline on a 2-core AMX machine), and the reference MLP
probes were the largest item of ``make demo`` there. Autocast keeps the weights, the optimiser
state and the loss in fp32 and runs only the matrix products in bf16, so training stays stable;
results still move in the last digits, so fp32 stays the default until a bf16 machine has
shown the study's headline cells inside their CIs. ``auto`` = bf16 only where the CPU has
native bf16 (elsewhere torch emulates it, slower than fp32).

The setting is process-wide (an environment variable, so cell workers started by the run
inherit it): :func:`probe_precision` sets it for a run, :func:`current` reads it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PRECISIONS = ("auto", "fp32", "bf16")
ENV = "LEARNERPROBE_PROBE_PRECISION"
MLP_PROBES = ("mlp_reg", "mlp_clf")


def resolve(precision: str) -> str:
    """``auto`` -> ``bf16`` on a CPU with native bf16, else ``fp32``."""
    if precision not in PRECISIONS:
        raise ValueError(f"probe precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "auto":
        from learnerprobe.extract.engine import cpu_has_native_bf16

        return "bf16" if cpu_has_native_bf16() else "fp32"
    return precision


def current() -> str:
    """The resolved precision of this process's MLP fits (default fp32)."""
    return resolve(os.environ.get(ENV) or "fp32")


@contextmanager
def probe_precision(precision: str) -> Iterator[str]:
    """Fit MLP probes in ``precision`` while inside (restored after); yields the resolved one."""
    resolved = resolve(precision)
    before = os.environ.get(ENV)
    os.environ[ENV] = resolved
    try:
        yield resolved
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def autocast(precision: str | None = None) -> Any:
    """torch's CPU autocast to bf16 when the precision is bf16 (a no-op context otherwise)."""
    import torch

    p = current() if precision is None else resolve(precision)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=p == "bf16")


def cell_precision(probe: str) -> str:
    """What fits ``probe``'s cells now: ``bf16-autocast`` for MLPs under bf16, else ``fp32``
    (the linear probes and ridge always run in fp32/fp64)."""
    return "bf16-autocast" if probe in MLP_PROBES and current() == "bf16" else "fp32"


def with_precision_column(df: Any) -> Any:
    """results.csv rows with the precision that fitted each cell (column ``probe_precision``)."""
    if "probe" not in getattr(df, "columns", ()):
        return df
    return df.assign(probe_precision=[cell_precision(str(p)) for p in df["probe"]])


def with_dtype_column(df: Any, dtypes: dict[str, str]) -> Any:
    """results.csv rows with the dtype that extracted each model's activations (column
    ``extraction_dtype``): ``dtype = "auto"`` is bf16 on CPUs with native bf16 and fp32
    elsewhere, and LOCO cells moved by up to 0.03 between the two, so every number says which.
    The surface baseline's rows get ``"none"``; rows of a model the run did not extract itself
    (the NLI protocol extracts inside its methods) get ``"unrecorded"`` rather than a guess."""
    if "model" not in getattr(df, "columns", ()):
        return df

    def one(model: str) -> str:
        return dtypes.get(model, "none" if model in ("surface", "none", "") else "unrecorded")

    return df.assign(extraction_dtype=[one(str(m)) for m in df["model"]])
