"""A run's output folder, crash-safe: outputs are staged, published together, marked complete.

``learnerprobe run`` writes every output (results.csv/.parquet, predictions.parquet, report.html,
residuals.csv, timings.json, config.toml, the NLI analyses under ``nli/``) into a staging folder
``OUT/.staging-<pid>/``. Only when all of them exist are they moved into place: first the old
completion marker (``manifest.json``) is removed, then each file is moved (``os.replace``), files
of an earlier run that this run did not write are removed, and the new ``manifest.json`` with
``"complete": true`` and the SHA-256 of every published file is written *last*, atomically.

So a run killed while computing or staging leaves the previous complete run untouched, and a
run killed while publishing leaves no marker: readers (:func:`read_run_results`, used by
``learnerprobe results`` and ``learnerprobe train --results``) refuse a folder without a
complete marker or whose results.csv does not match it, so results from two runs (say n_boot
100 and 200) are never read together. Caches inside the folder (``nli/cache/``) are written in
place (each entry atomically) and kept, so a crashed run resumes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from learnerprobe.errors import LearnerprobeError
from learnerprobe.outputs import (
    atomic_write_text,
    check_writable,
    converting_write_errors,
    sha256_file,
)

MARKER = "manifest.json"
STAGING_PREFIX = ".staging-"
#: Top-level files a run publishes; ones a new run does not write are removed when it publishes.
PUBLISHED = ("results.csv", "results.parquet", "predictions.parquet", "report.html",
             "residuals.csv", "timings.json", "config.toml")
#: Sub-folders whose files a run publishes (their ``cache`` sub-folders are kept as they are).
PUBLISHED_DIRS = ("nli", "figures")
KEEP = ("cache",)
MARKER_FORMAT = 1


class IncompleteRunError(LearnerprobeError):
    """A run folder without a complete marker (crashed, running, or from an older version)."""


# --------------------------------------------------------------------------- writer side
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def begin_run(out_dir: Path) -> Path:
    """Check ``out_dir`` can be written (before any compute), create it, remove staging folders
    of dead runs, and return a fresh staging folder inside it."""
    out_dir = Path(out_dir)
    check_writable(out_dir, folder=True)
    with converting_write_errors(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob(f"{STAGING_PREFIX}*"):
            pid = old.name[len(STAGING_PREFIX):]
            if not pid.isdigit() or not _pid_alive(int(pid)) or int(pid) == os.getpid():
                shutil.rmtree(old, ignore_errors=True)
        stage = out_dir / f"{STAGING_PREFIX}{os.getpid()}"
        stage.mkdir()
    return stage


def abandon(stage: Path) -> None:
    """Remove a staging folder (after an error: nothing of it is published)."""
    shutil.rmtree(stage, ignore_errors=True)


def _staged_files(stage: Path) -> list[str]:
    return sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())


def _stale(out_dir: Path, staged: set[str]) -> list[Path]:
    """Published files of an earlier run that this run does not replace."""
    old = [out_dir / n for n in PUBLISHED if n not in staged]
    for d in PUBLISHED_DIRS:
        base = out_dir / d
        if not base.is_dir():
            continue
        for p in base.rglob("*"):
            rel = p.relative_to(out_dir)
            if p.is_file() and rel.parts[1] not in KEEP and rel.as_posix() not in staged:
                old.append(p)
    return [p for p in old if p.is_file()]


def publish(out_dir: Path, stage: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Move the staged outputs into ``out_dir`` and write the completion marker last.

    Returns the marker written (``manifest`` plus ``complete``, ``files``)."""
    out_dir = Path(out_dir)
    names = _staged_files(stage)
    files = {n: sha256_file(stage / n) for n in names}
    marker = {**manifest, "complete": True, "marker_format": MARKER_FORMAT, "files": files}
    text = json.dumps(marker, indent=2, default=str)
    with converting_write_errors(out_dir):
        (out_dir / MARKER).unlink(missing_ok=True)  # from here until the end: incomplete
        for n in names:
            dest = out_dir / n
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / n, dest)
        for p in _stale(out_dir, set(names)):
            p.unlink(missing_ok=True)
        write_marker(out_dir, text)
    abandon(stage)
    return marker


def write_marker(out_dir: Path, text: str) -> None:
    """The completion marker, atomically (the last step of publishing)."""
    atomic_write_text(Path(out_dir) / MARKER, text)


def mark_complete(run_dir: str | Path, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a completion marker for the published files already in ``run_dir`` (tests and
    hand-assembled result folders; ``learnerprobe run`` does this itself)."""
    run_dir = Path(run_dir)
    names = [n for n in PUBLISHED if (run_dir / n).is_file()]
    for d in PUBLISHED_DIRS:
        if (run_dir / d).is_dir():
            names += [p.relative_to(run_dir).as_posix() for p in sorted((run_dir / d).rglob("*"))
                      if p.is_file() and p.relative_to(run_dir).parts[1] not in KEEP]
    marker = {**(manifest or {}), "complete": True, "marker_format": MARKER_FORMAT,
              "files": {n: sha256_file(run_dir / n) for n in names}}
    write_marker(run_dir, json.dumps(marker, indent=2, default=str))
    return marker


# --------------------------------------------------------------------------- reader side
def check_run_complete(run_dir: str | Path, verify: tuple[str, ...] = ("results.csv",)
                       ) -> dict[str, Any]:
    """The completion marker of a finished run; IncompleteRunError (a LearnerprobeError, so the
    CLI prints one line) when the folder holds no complete run or ``verify``'d files do not
    match their recorded hashes."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LearnerprobeError(f"{run_dir}: no such run folder")
    how = f"rerun it, e.g. `learnerprobe run CONFIG --out {run_dir}` (cached work is reused)"
    path = run_dir / MARKER
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IncompleteRunError(
            f"{run_dir} holds no finished run (no {MARKER}: the run crashed, is still running, "
            f"or was written by an older learnerprobe); {how}") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:  # hand-edited
        raise IncompleteRunError(f"{path}: unreadable completion marker ({e}); {how}") from None
    if not isinstance(marker, dict) or marker.get("complete") is not True:
        raise IncompleteRunError(
            f"{run_dir}: {MARKER} does not mark a complete run (the run did not finish, or "
            f"was written by an older learnerprobe); {how}")
    files = marker.get("files")
    if not isinstance(files, dict):
        raise IncompleteRunError(f"{path}: completion marker lists no files; {how}")
    for name in verify:
        if name not in files:
            raise IncompleteRunError(f"{run_dir}: the finished run has no {name}")
        p = run_dir / name
        try:
            ok = p.is_file() and sha256_file(p) == files[name]
        except OSError:
            ok = False
        if not ok:
            raise IncompleteRunError(
                f"{p} is missing or does not match the run's {MARKER} (changed or written by "
                f"another, unfinished run); {how}")
    return marker


def read_run_results(run_dir: str | Path) -> Any:
    """results.csv of a *finished* run as a DataFrame (the only way readers should load it).

    Raises IncompleteRunError for a folder whose run crashed, is still running, or whose
    results.csv does not match the completion marker, and LearnerprobeError when the folder
    does not exist."""
    import pandas as pd

    run_dir = Path(run_dir)
    check_run_complete(run_dir)
    path = run_dir / "results.csv"
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise IncompleteRunError(f"{path}: cannot read results ({e})") from None


__all__ = ["MARKER", "IncompleteRunError", "abandon", "begin_run", "check_run_complete",
           "mark_complete", "publish", "read_run_results"]
