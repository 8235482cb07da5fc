"""Writing outputs safely: check a location is writable before any compute, write files
atomically (temporary sibling + ``os.replace``) and turn disk errors into one-line messages.

A full disk, a read-only file system or a path under a regular file should cost the user a
clear ``error: cannot write PATH: reason`` at once, not a traceback after an hour of compute,
and never a half-written file under the real name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from learnerprobe.errors import LearnerprobeError

#: errno values that mean "this location cannot be written" (the CLI's backstop catches them).
WRITE_ERRNOS = frozenset(
    e for e in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, getattr(errno, "EDQUOT", None),
                errno.ENOTDIR, errno.EISDIR, errno.EFBIG)
    if e is not None)


class OutputError(LearnerprobeError):
    """An output location cannot be written (read-only, full, not a folder...)."""


def write_error_message(e: OSError, path: str | Path | None = None) -> str:
    """``cannot write PATH: reason`` for an OSError raised while writing."""
    where = path if path is not None else (e.filename or "")
    reason = e.strerror or str(e) or type(e).__name__
    return f"cannot write {where}: {reason}" if where else f"cannot write: {reason}"


def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p):
        if p.parent == p:
            break
        p = p.parent
    return p


def check_writable(target: str | Path, *, folder: bool) -> None:
    """Fail early (OutputError) unless ``target`` (a folder, or a file when ``folder`` is False)
    can be created or written: a probe file is created and deleted in its nearest existing
    folder, so read-only file systems, full disks and paths under a regular file are caught
    before any work starts. Nothing is created besides the (deleted) probe file."""
    target = Path(target)
    if target.exists():
        if folder and not target.is_dir():
            raise OutputError(f"cannot write {target}: it exists and is not a folder")
        if not folder and target.is_dir():
            raise OutputError(f"cannot write {target}: it is a folder, not a file")
    base = _nearest_existing(target if folder else target.parent)
    if not base.is_dir():
        raise OutputError(f"cannot write {target}: {base} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".learnerprobe-write-probe-", dir=base)
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        where = "" if base == target else f"{base}: "
        raise OutputError(f"cannot write {target}: {where}cannot create files ({reason})"
                          ) from None
    try:
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
    except OSError as e:
        raise OutputError(write_error_message(e, target)) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


@contextlib.contextmanager
def converting_write_errors(path: str | Path | None = None, *,
                            all_errors: bool = False) -> Iterator[None]:
    """Turn an OSError with a "cannot write" errno (any OSError with ``all_errors``, for blocks
    that only write: pyarrow's errors carry no errno) into an OutputError naming the file, else
    ``path``."""
    try:
        yield
    except OSError as e:
        if all_errors or e.errno in WRITE_ERRNOS:
            raise OutputError(write_error_message(e, e.filename or path)) from None
        raise


def tmp_sibling(path: str | Path) -> Path:
    """A fresh temporary name next to ``path`` that keeps its suffix (writers that go by suffix,
    e.g. ``np.savez`` or parquet). Unique per call (pid plus a random token), so two threads or
    two processes writing the same target never share a temporary file."""
    p = Path(path)
    return p.with_name(f".{p.stem}.tmp-{os.getpid()}-{secrets.token_hex(6)}{p.suffix}")


def _fsync_path(path: Path, *, folder: bool = False) -> None:
    """Flush a file (or a folder's entries, after a rename) to disk; best effort for folders,
    where some file systems refuse ``fsync``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if folder:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not folder:
            raise
    finally:
        os.close(fd)


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file, read in chunks (model weights are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | Path, write: Callable[[Path], object], *,
                 durable: bool = True) -> Path:
    """Call ``write(tmp)`` for a fresh temporary sibling, then move it onto ``path`` in one step.

    The one atomic writer of the package (run outputs, cache entries, activation shards, model
    hashes). Readers see the old file or the whole new one; concurrent writers of one target
    each use their own temporary file, so the last rename wins with a whole file. ``durable``
    fsyncs the file before the rename and the folder after it, so a power cut cannot leave an
    empty file under the real name. On any error the temporary file is removed and disk errors
    become an OutputError naming ``path``."""
    path = Path(path)
    tmp = tmp_sibling(path)
    try:
        write(tmp)
        if durable:
            _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):  # name the real file, not the temporary one
            raise OutputError(write_error_message(e, path)) from None
        raise
    if durable:
        _fsync_path(path.parent, folder=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda t: Path(t).write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda t: Path(t).write_bytes(data))
