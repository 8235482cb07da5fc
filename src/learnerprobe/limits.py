"""Bounds on what a user's config or file may hold, and JSON/TOML reading that keeps to them.

Why one module: a config field without a range, or a parser left to its defaults, turns a typo
or a hostile file into a traceback deep inside numpy, joblib or a tokenizer (a seed of 2**40, a
``max_length`` of -1, ``n_boot = 1e12`` asking for a petabyte, a list nested 100,000 deep that
exhausts the interpreter's recursion limit). The config models import the typed bounds below,
and every reader of user JSON/TOML goes through :func:`loads_json` / :func:`loads_toml`, so each
such input is one clear error (a :class:`~learnerprobe.errors.LearnerprobeError`) instead.
"""

from __future__ import annotations

import json
import tomllib
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from learnerprobe.errors import ConfigError, LearnerprobeError

MAX_SEED = 2**32 - 1  # numpy's legacy seeding (RandomState) and sklearn's random_state
MAX_BOOT = 100_000  # bootstrap resamples: n_boot x n_test int64 indices are held at once
MAX_FOLDS = 100
MAX_JOBS = 1024  # processes / threads / actors asked for by one config
MAX_COUNT = 2**31 - 1  # counts handed to C code (tokenizers, torch) that use 32-bit ints
MAX_LAYER = 4096  # hidden-state index; far beyond any model's depth
MAX_DEPTH = 64  # nesting of lists/tables in a config or options file
MAX_SCALE = 1e9  # regularisation strengths, learning rates, weights: finite and sane


def _not_zero(v: int) -> int:
    if v == 0:
        raise ValueError("must be >= 1, or -1 for one per CPU core (0 has no meaning)")
    return v


Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
#: Parallel workers: 1..MAX_JOBS, or -1 for one per core (joblib's convention).
Jobs = Annotated[int, Field(ge=-1, le=MAX_JOBS), AfterValidator(_not_zero)]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
LayerIndex = Annotated[int, Field(ge=0, le=MAX_LAYER)]
Threads = Annotated[int, Field(ge=1, le=MAX_JOBS)]
#: A strictly positive real (C, alpha, learning rate, class weight), at most MAX_SCALE.
PositiveReal = Annotated[float, Field(gt=0, le=MAX_SCALE)]
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]{1,3})?)$"
#: A device name as a config field: auto, cpu, mps, cuda or cuda:N (whether this machine has
#: it: ``models.device.check_device``).
Device = Annotated[str, StringConstraints(pattern=DEVICE_PATTERN)]


def check_depth(obj: Any, where: str, *, error: type[LearnerprobeError] = ConfigError,
                max_depth: int = MAX_DEPTH) -> Any:
    """``obj`` if its lists/dicts nest at most ``max_depth`` deep, else ``error``.

    Iterative, so it cannot itself exceed the recursion limit on what a parser accepted."""
    stack = [(obj, 1)]
    while stack:
        x, depth = stack.pop()
        if isinstance(x, dict):
            children = list(x.values())
        elif isinstance(x, list | tuple):
            children = list(x)
        else:
            continue
        if depth > max_depth:
            raise error(f"{where}: nested more than {max_depth} levels deep")
        stack.extend((c, depth + 1) for c in children)
    return obj


def parse_error(e: BaseException, where: str, what: str) -> str:
    if isinstance(e, RecursionError):
        return f"{where}: not valid {what}: nested too deeply"
    text = str(e)
    if "integer string conversion" in text:  # sys.int_info.default_max_str_digits
        return f"{where}: not valid {what}: a number has too many digits"
    return f"{where}: not valid {what}: {text}"


class DuplicateKeyError(ValueError):
    """A JSON object names a key twice (``{"text": "a", "text": "b"}``)."""


def unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` refusing a repeated key instead of keeping the last one: two
    ``text`` fields are a mistake or a smuggling attempt."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            shown = k if len(k) <= 40 else k[:40] + "…"
            raise DuplicateKeyError(f"duplicate key {shown!r}")
        out[k] = v
    return out


def loads_json(text: str | bytes, where: str, *,
               error: type[LearnerprobeError] = ConfigError, **kwargs: Any) -> Any:
    """``json.loads`` where malformed JSON, a repeated key, a too-deep nesting or a number with
    thousands of digits is ``error`` naming ``where`` (``kwargs`` go to ``json.loads``)."""
    kwargs.setdefault("object_pairs_hook", unique_pairs)
    try:
        obj = json.loads(text, **kwargs)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise error(parse_error(e, where, "JSON")) from None
    return check_depth(obj, where, error=error)


def loads_toml(text: str, where: str, *, error: type[LearnerprobeError] = ConfigError
               ) -> dict[str, Any]:
    """``tomllib.loads`` with the same guarantees as :func:`loads_json`."""
    try:
        obj = tomllib.loads(text)
    except (ValueError, RecursionError) as e:  # TOMLDecodeError is a ValueError
        raise error(parse_error(e, where, "TOML")) from None
    return check_depth(obj, where, error=error)
