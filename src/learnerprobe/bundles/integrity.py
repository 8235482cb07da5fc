"""What makes a bundle the one that was written: file digests, the folder scan, the digest
pin, the manifest seal, the model's allowed sources and the size limits of its skops zip.

None of that proves **who** made a bundle: a stranger can rewrite every file, reseal the
estimator and recompute the hashes, and the bundle is then self-consistent. What proves
authenticity is the **digest pin**: :func:`bundle_digest` is a sha256 over every file in the
folder, manifest included; publish it with the bundle and load with
``load_bundle(path, expect_digest=...)`` / ``Predictor.load(..., expect_digests=[...])`` /
``--expect-digest``. Without a pinned digest, the checks guarantee that a bundle is
internally consistent, runs no code beyond the trusted estimator types, and reads nothing
outside its folder -- not that its numbers are the ones you trained.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from learnerprobe.bundles.manifest import ESTIMATOR, MAX_FILES
from learnerprobe.errors import BundleError
from learnerprobe.models.trust import check_source

SEAL_FORMAT = "learnerprobe-sealed-estimator/1"
# An estimator.skops is a zip: its members' declared sizes are checked before any is read (a
# member never inflates past its declared size). skops writes members uncompressed, so a real
# file inflates ~1x; a zip bomb (kilobytes that deflate to gigabytes) is refused.
MAX_SKOPS_MEMBERS = 10_000
MAX_SKOPS_BYTES = 2 << 30  # all members together, uncompressed
MAX_SKOPS_RATIO = 10  # uncompressed over file size (plus 1 MiB)


# ---------------------------------------------------------------------------------------------
# Files and digests


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_file(path: Path, limit: int | None = None) -> bytes:
    """Read a regular file without following a symlink at the last component."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BundleError(f"{path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            if limit is None:
                return f.read()
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise BundleError(f"{path}: over {limit // 1024} KiB; not a bundle manifest")
    return data


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise BundleError(f"{path} is not a regular file")
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def scan(folder: Path) -> list[str]:
    """Relative POSIX paths of every file in a bundle folder; refuses symlinks and special files."""
    out: list[str] = []
    stack = [(folder, "")]
    while stack:
        d, prefix = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError as e:
            raise BundleError(f"{d}: cannot read the bundle folder ({e.strerror})") from None
        for e in entries:
            rel = f"{prefix}{e.name}"
            if e.is_symlink():
                raise BundleError(f"{folder}: {rel} is a symbolic link; bundles may not contain links")
            if e.is_dir(follow_symlinks=False):
                if rel.count("/") > 8:
                    raise BundleError(f"{folder}: {rel} is nested too deeply")
                stack.append((Path(e.path), rel + "/"))
            elif e.is_file(follow_symlinks=False):
                out.append(rel)
            else:
                raise BundleError(f"{folder}: {rel} is not a regular file")
            if len(out) > MAX_FILES:
                raise BundleError(f"{folder}: over {MAX_FILES} files; not a bundle")
    return sorted(out)


def digest_of(hashes: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(hashes):
        h.update(f"{name}\0{hashes[name]}\n".encode())
    return h.hexdigest()


def hash_all(p: Path, names: list[str]) -> dict[str, str]:
    try:
        return {rel: sha256_file(p / rel) for rel in names}
    except OSError as e:
        raise BundleError(f"{p}: cannot read the bundle ({e.strerror}: {e.filename})") from None


def check_model_source(manifest: dict[str, Any], where: str) -> None:
    """A bundle's model may come only from the places :mod:`learnerprobe.models.trust` allows
    (a registry model, a hub id, a folder under the model cache): decided from the manifest's
    strings, so a folder elsewhere (or inside the bundle) is never listed, hashed or loaded."""
    if isinstance(manifest.get("model"), dict):
        check_source(manifest["model"], where)


def bundle_digest(path: str | Path) -> str:
    """The bundle's content digest: sha256 over the sorted lines ``"<path>\\0<sha256>\\n"`` of
    EVERY file in the folder (relative POSIX path, manifest.json included). Any byte change in
    any file, an added or a removed file changes it. Refuses symlinks/special files."""
    p = Path(path)
    return digest_of({rel: sha256_file(p / rel) for rel in scan(p)})


def normalise_digest(d: str) -> str:
    d = d.strip().lower()
    d = d.removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", d):
        raise BundleError(f"expected digest {d!r} is not a sha256 (64 hexadecimal characters)")
    return d


# ---------------------------------------------------------------------------------------------
# The seal: the manifest copy inside each estimator file


def sealed_view(manifest: dict[str, Any], also: str | None = None) -> dict[str, Any]:
    """The manifest as sealed into an estimator file: all of it but that file's own hash
    (and ``also``'s: the array form's seal leaves out both estimator files, written after it)."""
    files = {k: v for k, v in manifest.get("files", {}).items() if k not in (ESTIMATOR, also)}
    return {**manifest, "files": files}


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_seal(folder: Path, manifest: dict[str, Any], seal: str, name: str,
               also: str | None = None) -> None:
    """Refuse an estimator file ``name`` whose sealed manifest copy differs from ``manifest``
    (the manifest was edited after training)."""
    try:
        sealed = json.loads(seal)
    except ValueError:
        raise BundleError(f"{folder}: {name} holds an unreadable seal") from None
    mine = sealed_view(manifest, also)
    if canonical(sealed) == canonical(mine):
        return
    keys = sorted(k for k in set(sealed) | set(mine) if sealed.get(k) != mine.get(k))
    raise BundleError(
        f"{folder}: manifest.json differs from the copy sealed in {name} (fields: "
        f"{', '.join(keys) or '?'}); the manifest was edited after training"
    )


# ---------------------------------------------------------------------------------------------
# Limits


def skops_zip(data: bytes, path: Path) -> Any:
    """The skops file as an open ZipFile, refused (BundleError) before any member is read when
    it has over :data:`MAX_SKOPS_MEMBERS` members or its members would inflate past
    :data:`MAX_SKOPS_BYTES` or :data:`MAX_SKOPS_RATIO` times the file's size."""
    import io
    import zipfile

    try:
        zf = zipfile.ZipFile(io.BytesIO(data), "r")
    except Exception as e:  # noqa: BLE001 - any parse failure of a crafted file
        raise BundleError(f"{path}: not a readable skops file ({type(e).__name__}: {e})") from None
    infos = zf.infolist()
    total = sum(i.file_size for i in infos)
    cap = min(MAX_SKOPS_BYTES, MAX_SKOPS_RATIO * len(data) + (1 << 20))
    if len(infos) > MAX_SKOPS_MEMBERS:
        zf.close()
        raise BundleError(f"{path}: {len(infos)} zip members, over the limit of "
                          f"{MAX_SKOPS_MEMBERS}; not a learnerprobe estimator")
    if total > cap:
        zf.close()
        raise BundleError(
            f"{path}: its zip members would inflate to {total / 2**20:.0f} MiB uncompressed "
            f"from a {len(data) / 2**20:.1f} MiB file (limit {cap / 2**20:.0f} MiB); refusing a "
            "possible zip bomb")
    return zf
