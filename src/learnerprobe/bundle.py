"""Model bundles: a folder with `manifest.json` and weights (skops / safetensors / JSON), never pickle.

A bundle records everything needed to apply a trained model to a new text exactly as in
training (model entry, layer, pooling, template, masking, label set) plus a card (data, metrics,
limits). Every file is hashed into the manifest; loading re-hashes and refuses a tampered or
incompatible bundle with a clear message instead of running arbitrary code.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from learnerprobe.errors import BundleError

FORMAT = "learnerprobe-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Types outside sklearn/numpy/scipy that a bundle's skops file may contain. Anything else is refused.
TRUSTED_PREFIXES = ("learnerprobe.", "mord.", "sklearn.", "numpy.", "scipy.", "builtins.")
_LIBS = ("learnerprobe", "scikit-learn", "numpy", "scipy", "skops", "torch", "transformers", "mord")


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for lib in _LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = None
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _minor(v: str | None) -> str | None:
    return None if v is None else ".".join(v.split(".")[:2])


@dataclass
class Bundle:
    """An in-memory bundle: the manifest plus the path it was loaded from."""

    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    def file(self, name: str) -> Path:
        if name not in self.manifest.get("files", {}):
            raise BundleError(f"bundle {self.path} has no file {name!r}")
        return self.path / name

    def load_estimator(self, name: str = "estimator.skops") -> Any:
        """Load a skops-persisted estimator, trusting only known library/learnerprobe types."""
        import skops.io as sio

        path = self.file(name)
        untrusted = sio.get_untrusted_types(file=path)
        bad = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
        if bad:
            raise BundleError(
                f"bundle {self.path}: {name} contains types that are not trusted: {', '.join(bad)}"
            )
        return sio.load(path, trusted=untrusted)


def save_bundle(
    out_dir: str | Path,
    *,
    task: str,
    method: str,
    labels: list[str],
    estimator: Any = None,
    extra_files: dict[str, Path] | None = None,
    model: dict[str, Any] | None = None,
    layer: int | None = None,
    preprocessing: dict[str, Any] | None = None,
    training_data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    card: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle atomically: a temp folder renamed into place, so a crash leaves no half bundle."""
    import skops.io as sio

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
    try:
        files: dict[str, str] = {}
        if estimator is not None:
            sio.dump(estimator, tmp / "estimator.skops")
        for name, src in (extra_files or {}).items():
            dst = tmp / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if Path(src).is_dir():
                shutil.copytree(src, dst)
            else:
                shutil.copy2(src, dst)
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                files[p.relative_to(tmp).as_posix()] = _sha256(p)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": task,
            "method": method,
            "labels": list(labels),
            "model": model,
            "layer": layer,
            "preprocessing": preprocessing or {},
            "training_data": training_data or {},
            "metrics": metrics or {},
            "card": card or {},
            "versions": library_versions(),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_bundle(path: str | Path, *, check_versions: bool = True) -> Bundle:
    """Read and verify a bundle: format, file hashes, and library versions that affect results."""
    p = Path(path)
    mf = p / MANIFEST
    if not mf.is_file():
        raise BundleError(f"{p} is not a learnerprobe bundle (no {MANIFEST})")
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BundleError(f"{mf}: manifest is not valid JSON ({e})") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{mf}: not a learnerprobe bundle manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{p}: bundle format {manifest.get('format_version')} is not supported "
            f"(this learnerprobe reads format {FORMAT_VERSION}); retrain or upgrade"
        )
    for key in ("task", "method", "labels", "files"):
        if key not in manifest:
            raise BundleError(f"{mf}: manifest lacks {key!r}")
    for name, digest in manifest["files"].items():
        f = p / name
        if not f.is_file():
            raise BundleError(f"{p}: file {name} listed in the manifest is missing")
        if _sha256(f) != digest:
            raise BundleError(f"{p}: file {name} does not match its manifest hash (tampered?)")
    listed = set(manifest["files"]) | {MANIFEST}
    extra = [q.relative_to(p).as_posix() for q in p.rglob("*") if q.is_file()]
    unknown = sorted(set(extra) - listed)
    if unknown:
        raise BundleError(f"{p}: files not listed in the manifest: {', '.join(unknown[:5])}")
    if check_versions:
        have = library_versions()
        for lib in ("scikit-learn",):
            want = manifest.get("versions", {}).get(lib)
            if want and _minor(want) != _minor(have.get(lib)):
                raise BundleError(
                    f"{p}: trained with {lib} {want}, this environment has {have.get(lib)}; "
                    "models may not load identically — install the same minor version or retrain"
                )
    return Bundle(path=p, manifest=manifest)
