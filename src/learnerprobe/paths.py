"""Where data and caches live. One place so tests and CI can redirect everything by env vars."""

from __future__ import annotations

import os
from pathlib import Path


def data_root(root: str | Path | None = None) -> Path:
    """Corpus root: explicit argument, else $LEARNERPROBE_DATA, else ~/.cache/learnerprobe/data."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("LEARNERPROBE_DATA")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/learnerprobe/data").expanduser()


def cache_root() -> Path:
    """Cache for prepared models and activations: $LEARNERPROBE_CACHE or ~/.cache/learnerprobe."""
    env = os.environ.get("LEARNERPROBE_CACHE")
    p = Path(env).expanduser() if env else Path("~/.cache/learnerprobe").expanduser()
    return p


def models_dir() -> Path:
    return cache_root() / "models"


def activations_dir() -> Path:
    return cache_root() / "activations"
