"""The one result cache of both tasks: content-keyed ``.npz`` entries, written atomically.

Why: a study is a grid of cells (CEFR: model x mode x seed x fold x probe; NLI: method x seed)
that take seconds to hours each. Caching each finished cell under a key derived from everything
that changes its result lets a crashed run resume and a finished one rerun in seconds, while
a changed setting misses and recomputes. Entries are plain ``.npz`` files (no pickle).

Writes are safe for concurrent runs: each writer saves into its own temporary file in the
entry's folder, fsyncs it and renames it over the entry (``outputs.atomic_write``, the
package's one atomic writer), so a reader sees a whole entry or none and two runs writing the same key
never interleave. An unreadable entry (truncated, corrupt, missing an array) is a miss, so the
caller recomputes and overwrites it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.outputs import atomic_write

_UNREADABLE = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def content_key(payload: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``payload`` (sorted keys; non-JSON values as
    ``str``): the key of a cache entry."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def write_npz(path: str | Path, arrays: Mapping[str, Any]) -> Path:
    """Save ``arrays`` as ``path`` atomically (``outputs.atomic_write``: own temporary file,
    fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: np.savez(tmp, **arrays))


def read_npz(path: str | Path, required: Iterable[str] = ()) -> dict[str, np.ndarray] | None:
    """All arrays of an entry, read into memory; None when absent, unreadable or lacking one
    of ``required``."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except _UNREADABLE:
        return None
    if any(k not in out for k in required):
        return None
    return out


class CellCache:
    """A folder of cached cells, one ``.npz`` entry per content key.

    ``shard=True`` puts an entry under a two-character sub-folder of its key (the study
    runner's ``cache_root()/study-cells/ab/abcd....npz``, which holds many thousands);
    ``prefix`` names an entry for people (the NLI runner's ``ngram-seed0-<key>.npz``).
    """

    def __init__(self, folder: str | Path, *, shard: bool = False) -> None:
        self.folder = Path(folder)
        self.shard = shard

    def path(self, key: str, prefix: str = "") -> Path:
        name = f"{prefix}{key}.npz"
        return self.folder / key[:2] / name if self.shard else self.folder / name

    def load(self, key: str, *, prefix: str = "",
             required: Iterable[str] = ()) -> dict[str, np.ndarray] | None:
        """The entry's arrays, or None (a miss) when absent or unreadable."""
        return read_npz(self.path(key, prefix), required)

    def save(self, key: str, arrays: Mapping[str, Any], *, prefix: str = "") -> Path:
        """Write the entry atomically; concurrent writers of one key leave one whole entry."""
        return write_npz(self.path(key, prefix), arrays)
