"""Writing and reading a bundle: a folder with `manifest.json`, a skops estimator and (when it
reproduces the estimator) its array form; never pickle.

What loading checks, and what that does and does not prove
----------------------------------------------------------
Every load (``load_bundle``; ``Predictor.load``) refuses, with a :class:`BundleError` naming the
problem, and before any estimator code runs:

- anything in the folder that is not a plain file or folder (symlinks, even ones pointing inside,
  FIFOs, devices), files not listed in the manifest, listed files that are missing, and files
  whose sha256 differs from the manifest (:mod:`~learnerprobe.bundles.integrity`);
- a manifest that is not UTF-8, over 1 MiB, nested deeper than 32 levels, has duplicate keys, or
  does not match the strict schema (:mod:`~learnerprobe.bundles.manifest`: unknown fields
  refused, types checked, task in {cefr, l1}, labels unique non-empty strings, ``files`` keys
  relative POSIX paths inside the folder with 64-hex hashes, layer within the pinned model's
  layer count, max_length within [16, model maximum], ...);
- a ``model.source`` a bundle may not name (:mod:`learnerprobe.models.sources`: only a registry
  model, ``tiny:KIND``, a hub id or a folder under the model cache), decided from the manifest
  before any other file of the bundle is read, so a folder elsewhere or inside the bundle is
  never listed, hashed or loaded;
- skops files referencing any type outside the trusted types (:mod:`~learnerprobe.bundles.trust`:
  an exact list, not prefixes; ``builtins.exec`` or ``numpy.testing._private.utils.runstring``
  are refused, so a crafted file cannot run code on load), and skops zips with too many members
  or that would inflate past ten times their size (checked before a member is read);
- a vectoriser whose ``token_pattern`` is not in the fixed list of the array form (a crafted
  regular expression can backtrack for hours), and an estimator (skops or array form) whose
  probabilities or scores on check inputs made from the bundle itself are not finite
  (:mod:`~learnerprobe.bundles.checks`);
- a manifest that differs from the copy sealed inside ``estimator.skops`` (every manifest field
  except the estimator's own hash is sealed there), so editing labels, layer, max_length, model,
  method or task in the manifest alone is caught; an estimator whose classes or input width do
  not match the manifest's labels or the pinned model's hidden size;
- (``Predictor.load``) a model folder, or a file in it, that resolves outside the model or hub
  cache, one that needs custom code, model weights whose digest differs from the pin in the
  manifest, and a prepared model folder changed since ``learnerprobe models prepare``.

None of that proves **who** made a bundle; the digest pin does
(:func:`~learnerprobe.bundles.integrity.bundle_digest`, ``load_bundle(path, expect_digest=...)``).
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learnerprobe import outputs
from learnerprobe.bundles import applicability as _applicability
from learnerprobe.bundles import arrays as _arrays
from learnerprobe.bundles import checks
from learnerprobe.bundles.integrity import (
    SEAL_FORMAT,
    canonical,
    check_model_source,
    check_seal,
    digest_of,
    hash_all,
    normalise_digest,
    read_file,
    scan,
    sealed_view,
    sha256_bytes,
    sha256_file,
)
from learnerprobe.bundles.manifest import (
    ESTIMATOR,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    Manifest,
    library_versions,
    parse_manifest,
    relpath,
    validate_manifest,
)
from learnerprobe.bundles.manifest import check_versions as _check_versions
from learnerprobe.bundles.trust import loads_trusted
from learnerprobe.errors import BundleError


@dataclass
class Bundle:
    """A verified bundle: its manifest (dict and parsed), digest and folder."""

    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    spec: Manifest | None = None

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

    def _read_hashed(self, name: str) -> tuple[Path, bytes]:
        """A bundle file's path and bytes, refused unless they match the manifest's hash."""
        path = self.file(name)
        try:
            data = read_file(path)
        except OSError as e:
            raise BundleError(f"{path}: cannot read ({e.strerror})") from None
        if sha256_bytes(data) != self.manifest["files"][name]:
            raise BundleError(f"{self.path}: file {name} does not match its manifest hash (tampered?)")
        return path, data

    def load_estimator(self, name: str = ESTIMATOR) -> Any:
        """Load the sealed skops estimator, trusting only the declared types
        (:mod:`learnerprobe.bundles.trust`), and cross-check it against the manifest (seal,
        classes, input width, token patterns, finite outputs)."""
        path, data = self._read_hashed(name)
        obj = loads_trusted(data, path, f"bundle {self.path}: {name}")
        if not (isinstance(obj, dict) and set(obj) == {"format", "estimator", "seal"}
                and obj["format"] == SEAL_FORMAT and isinstance(obj["seal"], str)):
            raise BundleError(f"{path}: not a sealed learnerprobe estimator")
        check_seal(self.path, self.manifest, obj["seal"], name)
        est = obj["estimator"]
        checks.check_estimator(self.path, self.labels, self.spec, est, name)
        objs = list(checks.objects(est))
        checks.check_token_patterns(objs, f"{path}")
        features = self.manifest["preprocessing"]["features"]
        X = checks.skops_inputs(est, objs, features, checks.expected_width(self.spec))
        checks.check_outputs(self.path, est, X, name)
        return est

    def load_array_estimator(self) -> Any | None:
        """The estimator's array form (:mod:`learnerprobe.bundles.arrays`; numpy only, no
        scikit-learn or skops import), or None when the bundle has none. Checked like the skops
        file: manifest hash, the manifest copy sealed in it, the strict spec, classes and width."""
        ref = self.manifest.get("arrays")
        if ref is None:
            return None
        name = ref["file"]
        path, data = self._read_hashed(name)
        tensors, meta = _arrays.loads(data, str(path))
        if set(meta) != {"format", "seal"} or meta["format"] != _arrays.ARRAYS_FORMAT:
            raise BundleError(f"{path}: not a sealed learnerprobe array form")
        check_seal(self.path, self.manifest, meta["seal"], name, also=name)
        est = _arrays.build(ref["spec"], tensors, str(path))
        checks.check_estimator(self.path, self.labels, self.spec, est, name)
        X = _arrays.probe_inputs(est, ref["spec"], tensors, n=checks.CHECK_N)
        checks.check_outputs(self.path, est, X, name)
        return est

    def load_limits(self) -> _applicability.Limits | None:
        """The bundle's conformal scores and applicability statistics, checked
        (:mod:`learnerprobe.bundles.applicability`); None for a bundle trained without them."""
        ref = self.manifest.get("applicability")
        if ref is None:
            return None
        path, data = self._read_hashed(ref["file"])
        if ref["kind"] != ("ordinal" if self.task == "cefr" else "nominal"):
            raise BundleError(f"{path}: a {self.task} bundle cannot hold {ref['kind']} sets")
        width = self.spec.weights.hidden_size if self.spec and self.spec.weights else None
        return _applicability.load(ref, data, str(path), width)


# ---------------------------------------------------------------------------------------------
# Writing


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def check_writable(out: str | Path) -> None:
    """Fail early (BundleError) when a bundle cannot be written to ``out``: checked before
    training, with a probe file in the nearest existing parent folder."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BundleError(f"cannot write a bundle to {out}: it exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise BundleError(
            f"refusing to write a bundle to {out}: the folder exists, is not empty and is not a "
            "bundle (it would be replaced)"
        )
    try:
        outputs.check_writable(out, folder=True)  # the one probe-file check
    except outputs.OutputError as e:
        raise BundleError(str(e)) from None


def _os_error(out: Path, e: OSError) -> BundleError:
    why = {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system",
           errno.EACCES: "permission denied", errno.EDQUOT: "disk quota exceeded"}.get(
               e.errno or -1, e.strerror or str(e))
    where = f" ({e.filename})" if getattr(e, "filename", None) else ""
    return BundleError(f"cannot write the bundle to {out}: {why}{where}; nothing was written")


def save_bundle(
    out_dir: str | Path,
    *,
    task: str,
    method: str,
    labels: list[str],
    estimator: Any,
    extra_files: dict[str, Path] | None = None,
    model: dict[str, Any] | None = None,
    weights: dict[str, Any] | None = None,
    layer: int | None = None,
    layers: list[int] | None = None,
    preprocessing: dict[str, Any] | None = None,
    training_data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    card: dict[str, Any] | None = None,
    check_inputs: Any = None,
    array_form: bool = True,
    check_texts: Sequence[str] | None = None,
    applicability: _applicability.Applicability | None = None,
) -> Path:
    """Write a bundle atomically (a temp folder renamed into place; an existing bundle there is
    replaced only once the new one is complete). Permissions follow the umask. The manifest is
    validated against :class:`Manifest` and sealed into the estimator file before writing.
    OSError (disk full, read-only, permissions) becomes a BundleError naming the path.

    ``array_form``: also write the estimator's array form when its kind has one and it gives
    the estimator's probabilities on ``check_inputs`` (validation features or texts; synthetic
    ones from the estimator's own statistics when None) -- see
    :func:`learnerprobe.bundles.export.array_form`.

    ``check_texts``: the texts of ``check_inputs``; a hidden-state bundle trained in bf16/fp16
    is then checked against fp32 states of them, and the manifest records whether the fp32
    ONNX graph may serve it (:mod:`learnerprobe.bundles.fp32_check`)."""
    import skops.io as sio

    # scikit-learn: only saving exports; a cold predict loads bundles without it
    from learnerprobe.bundles.export import array_form as _export_array_form

    out = Path(out_dir)
    check_writable(out)
    ex = (preprocessing or {}).get("extraction")
    if check_texts is not None and ex and model and weights and layer is not None and not layers:
        from learnerprobe.bundles.fp32_check import with_fp32_check

        ex = with_fp32_check(ex, estimator, model=model, weights=weights, layer=layer,
                             texts=check_texts, states=check_inputs)
        preprocessing = {**(preprocessing or {}), "extraction": ex}
    manifest: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "task": task, "method": method,
        "labels": list(labels), "model": model, "weights": weights, "layer": layer,
        "preprocessing": preprocessing or {}, "training_data": training_data or {},
        "metrics": metrics or {}, "card": card or {}, "versions": library_versions(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "files": {},
    }
    if layers is not None:  # only multi-layer bundles carry the key
        manifest["layers"] = list(layers)
    if applicability is not None:
        manifest["applicability"] = applicability.spec
    tmp: Path | None = None
    old: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
        for name, src in (extra_files or {}).items():
            relpath(name)
            dst = tmp / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if Path(src).is_dir():
                shutil.copytree(src, dst, symlinks=False)
            else:
                shutil.copyfile(src, dst)
        if applicability is not None:
            (tmp / _applicability.FILE).write_bytes(_applicability.dumps(applicability))
        manifest["files"] = {rel: sha256_file(tmp / rel) for rel in scan(tmp)}
        # What is written is what is read back: round-trip through JSON before sealing.
        manifest = json.loads(json.dumps(manifest, ensure_ascii=False, default=str))
        manifest["files"][ESTIMATOR] = "0" * 64  # placeholder, so the schema can check the rest
        validate_manifest(manifest, f"{out}/{MANIFEST}")
        check_model_source(manifest, str(out))
        form = _export_array_form(estimator, check_inputs, f"{out}") if array_form else None
        if form is not None:
            spec, tensors = form
            ref = {"format": _arrays.ARRAYS_FORMAT, "file": _arrays.ARRAYS_FILE, "spec": spec}
            manifest["arrays"] = json.loads(json.dumps(ref))
            manifest["files"][_arrays.ARRAYS_FILE] = "0" * 64
            validate_manifest(manifest, f"{out}/{MANIFEST}")
            seal = canonical(sealed_view(manifest, _arrays.ARRAYS_FILE))
            (tmp / _arrays.ARRAYS_FILE).write_bytes(
                _arrays.dumps(tensors, {"format": _arrays.ARRAYS_FORMAT, "seal": seal}))
            manifest["files"][_arrays.ARRAYS_FILE] = sha256_file(tmp / _arrays.ARRAYS_FILE)
        sealed = {"format": SEAL_FORMAT, "estimator": estimator,
                  "seal": canonical(sealed_view(manifest))}
        sio.dump(sealed, tmp / ESTIMATOR)
        manifest["files"][ESTIMATOR] = sha256_file(tmp / ESTIMATOR)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False),
                                    encoding="utf-8")
        mask = _umask()
        for d, _, fs in os.walk(tmp):
            os.chmod(d, 0o777 & ~mask)
            for f in fs:
                os.chmod(os.path.join(d, f), 0o666 & ~mask)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(out, old)
        os.replace(tmp, out)
        tmp = None
    except OSError as e:
        if old is not None and not out.exists():
            os.replace(old, out)  # put the previous bundle back
            old = None
        raise _os_error(out, e) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------------------
# Reading


def load_bundle(path: str | Path, expect_digest: str | None = None, *,
                allow_version_mismatch: bool = False, check_versions: bool = True) -> Bundle:
    """Read and verify a bundle's files and manifest (see the module docstring for what is
    checked; the estimators are checked when loaded: :meth:`Bundle.load_estimator`,
    :meth:`Bundle.load_array_estimator`).

    ``expect_digest``: the :func:`~learnerprobe.bundles.integrity.bundle_digest` the caller
    trusts; any other content is refused.
    """
    p = Path(path)
    want = normalise_digest(expect_digest) if expect_digest is not None else None
    if not p.is_dir():
        raise BundleError(f"{p} is not a learnerprobe bundle (no such folder)")
    names = scan(p)
    if MANIFEST not in names:
        raise BundleError(f"{p} is not a learnerprobe bundle (no {MANIFEST})")
    try:
        data = read_file(p / MANIFEST, MAX_MANIFEST_BYTES)
    except OSError as e:
        raise BundleError(f"{p}: cannot read the bundle ({e.strerror}: {e.filename})") from None
    hashes = hash_all(p, names) if want is not None else None  # a pin is checked first
    if hashes is not None and digest_of(hashes) != want:
        raise BundleError(
            f"{p}: bundle digest {digest_of(hashes)} does not match the expected {want}; the "
            "bundle is not the one you pinned (modified or a different bundle)"
        )
    where = str(p / MANIFEST)
    manifest = parse_manifest(data, where)
    spec = validate_manifest(manifest, where)
    check_model_source(manifest, str(p))  # from the string alone, before any other file is read
    hashes = hashes or hash_all(p, names)
    digest = digest_of(hashes)
    if hashes[MANIFEST] != sha256_bytes(data):
        raise BundleError(f"{p}: {MANIFEST} changed while being read")
    listed = spec.files
    for name, h in listed.items():
        if name not in hashes:
            raise BundleError(f"{p}: file {name} listed in the manifest is missing")
        if hashes[name] != h:
            raise BundleError(f"{p}: file {name} does not match its manifest hash (tampered?)")
    unknown = sorted(set(names) - set(listed) - {MANIFEST})
    if unknown:
        raise BundleError(f"{p}: files not listed in the manifest: {', '.join(unknown[:5])}")
    if check_versions:
        _check_versions(p, manifest, allow_version_mismatch)
    return Bundle(path=p, manifest=manifest, digest=digest, spec=spec)
