"""Model bundles: a folder with `manifest.json` and a skops estimator, never pickle.

A bundle records everything needed to apply a trained model to a new text exactly as in
training (model entry and a pin of its weights, layer, pooling, template, masking, label set)
plus a card (data, metrics, limits).

What loading checks, and what that does and does not prove
----------------------------------------------------------
Every load (``load_bundle``; ``Predictor.load``) refuses, with a :class:`BundleError` naming the
problem, and before any estimator code runs:

- anything in the folder that is not a plain file or folder (symlinks, even ones pointing inside,
  FIFOs, devices), files not listed in the manifest, listed files that are missing, and files
  whose sha256 differs from the manifest;
- a manifest that is not UTF-8, over 1 MiB, nested deeper than 32 levels, has duplicate keys, or
  does not match the strict schema (:class:`Manifest`: unknown fields refused, types checked, task
  in {cefr, l1}, labels unique non-empty strings, ``files`` keys relative POSIX paths inside the
  folder with 64-hex hashes, layer within the pinned model's layer count, max_length within
  [16, model maximum], ...);
- a ``model.source`` a bundle may not name (:mod:`learnerprobe.models.trust`: only a registry
  model, ``tiny:KIND``, a hub id or a folder under the model cache), decided from the manifest
  before any other file of the bundle is read, so a folder elsewhere or inside the bundle is
  never listed, hashed or loaded;
- skops files referencing any type outside :data:`TRUSTED_TYPES` (an exact list, not prefixes:
  ``builtins.exec`` or ``numpy.testing._private.utils.runstring`` are refused, so a crafted file
  cannot run code on load), and skops zips with over :data:`MAX_SKOPS_MEMBERS` members or that
  would inflate past :data:`MAX_SKOPS_RATIO` times their size (checked before a member is read);
- a vectoriser whose ``token_pattern`` is not in the fixed list of the array form (a crafted
  regular expression can backtrack for hours), and an estimator (skops or array form) whose
  probabilities or scores on check inputs made from the bundle itself are not finite;
- a manifest that differs from the copy sealed inside ``estimator.skops`` (every manifest field
  except the estimator's own hash is sealed there), so editing labels, layer, max_length, model,
  method or task in the manifest alone is caught; an estimator whose classes or input width do
  not match the manifest's labels or the pinned model's hidden size;
- (``Predictor.load``) a model folder, or a file in it, that resolves outside the model or hub
  cache, one that needs custom code, model weights whose digest differs from the pin in the
  manifest, and a prepared model folder changed since ``learnerprobe models prepare``.

None of that proves **who** made a bundle: a stranger can rewrite every file, reseal the
estimator and recompute the hashes, and the bundle is then self-consistent. What proves
authenticity is the **digest pin**: :func:`bundle_digest` is a sha256 over every file in the
folder, manifest included (see there); publish it with the bundle and load with
``load_bundle(path, expect_digest=...)`` / ``Predictor.load(..., expect_digests=[...])`` /
``--expect-digest``. Without a pinned digest, the checks above guarantee that a bundle is
internally consistent, runs no code beyond the trusted estimator types, and reads nothing
outside its folder -- not that its numbers are the ones you trained.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import string
import tempfile
import uuid
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from learnerprobe import outputs
from learnerprobe.errors import BundleError
from learnerprobe.inference import arrays as _arrays
from learnerprobe.methods.registry import get_method, method_names
from learnerprobe.models.trust import check_source

FORMAT = "learnerprobe-bundle"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
ESTIMATOR = "estimator.skops"
SEAL_FORMAT = "learnerprobe-sealed-estimator/1"
MAX_MANIFEST_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_FILES = 10_000
# An estimator.skops is a zip: its members' declared sizes are checked before any is read (a
# member never inflates past its declared size). skops writes members uncompressed, so a real
# file inflates ~1x; a zip bomb (kilobytes that deflate to gigabytes) is refused.
MAX_SKOPS_MEMBERS = 10_000
MAX_SKOPS_BYTES = 2 << 30  # all members together, uncompressed
MAX_SKOPS_RATIO = 10  # uncompressed over file size (plus 1 MiB)
# Check inputs per load (besides the edge-case texts): enough to meet extreme weights, few
# enough to keep a cold `predict` fast (an n-gram array form: ~0.06 s)
CHECK_N = 16
# The types, beyond skops' own defaults (sklearn estimators, numpy/scipy arrays, builtin
# containers and scalars), that a bundle's skops file may reference. An EXACT list, not prefixes.
# Derived by running `skops.io.get_untrusted_types` on every estimator `learnerprobe train` can
# bundle: the five probes (ridge, logistic, ordinal, mlp_reg, mlp_clf; tuned mode), ridge and
# mlp_reg inside the OrdinalCalibrated wrapper, and NgramClassifier in each of its variants (svm
# softmax, svm calibrated, logreg; char and/or word n-grams). tests/test_bundle_adversarial.py
# regenerates this from freshly fitted estimators and fails when it is no longer a superset.
TRUSTED_TYPES: frozenset[str] = frozenset({
    "learnerprobe.calibration.OrdinalCalibrated",
    "learnerprobe.nli.ngram.NgramClassifier",
    "learnerprobe.probes.estimators.LogisticProbe",
    "learnerprobe.probes.estimators.MLPClfProbe",
    "learnerprobe.probes.estimators.MLPRegProbe",
    "learnerprobe.probes.estimators.OrdinalLogisticAT",
    "learnerprobe.probes.estimators.RidgeOrdinal",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.StratifiedKFold",
    # the inductive transfer methods (issue 11; `learnerprobe train --method`): TransferProbe
    # (its LEACE / mean erasers) and the two torch probes, which store numpy arrays only
    "learnerprobe.transfer.adapt.Eraser",
    "learnerprobe.transfer.estimators.TransferProbe",
    "learnerprobe.transfer.torch_probes.DomainAdversarialMLP",
    "learnerprobe.transfer.torch_probes.ScalarMixProbe",
})


def bundle_methods() -> list[str]:
    """Methods a bundle may hold: registered with ``bundle=True`` (learnerprobe.methods.registry;
    built in: the five probes and ngram). A method registered at run time is accepted only in
    a process that registered it, and its estimator still has to pass TRUSTED_TYPES."""
    return [m for m in method_names() if get_method(m).bundle]

DTYPES = ("auto", "float32", "fp32", "float", "bfloat16", "bf16", "float16", "fp16", "half",
          "bf16-autocast", "bfloat16-autocast")
_LIBS = ("learnerprobe", "scikit-learn", "numpy", "scipy", "skops", "torch", "transformers",
         "tokenizers", "mord")
_STRICT_LIBS = ("scikit-learn",)  # a minor-version change may change how estimators load
_WARN_LIBS = ("torch", "transformers", "tokenizers")  # may change hidden states slightly


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for lib in _LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = None
    return out


def _minor(v: str | None) -> str | None:
    return None if v is None else ".".join(v.split(".")[:2])


# ---------------------------------------------------------------------------------------------
# Manifest schema


def _relpath(v: str) -> str:
    if not v or len(v) > 255:
        raise ValueError("must be a non-empty path of at most 255 characters")
    if "\\" in v:
        raise ValueError("backslashes are not allowed (POSIX paths only)")
    if any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise ValueError("control characters are not allowed")
    if v.startswith("/") or re.match(r"^[A-Za-z]:", v):
        raise ValueError("absolute paths are not allowed")
    parts = v.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError("'..', '.' and empty segments are not allowed (paths stay in the bundle)")
    if PurePosixPath(v).as_posix() != v:
        raise ValueError("not a normalised relative path")
    if v == MANIFEST:
        raise ValueError("the manifest cannot list itself")
    return v


def _label(v: str) -> str:
    if not v.strip() or any(ord(c) < 32 for c in v):
        raise ValueError("labels must be non-empty printable strings")
    return v


def _template(v: str) -> str:
    fields = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
    if "text" not in fields or any(f not in ("text", "task") for f in fields):
        raise ValueError("template must contain {text} and no fields other than {text}, {task}")
    return v


Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
RelPath = Annotated[str, AfterValidator(_relpath)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f]+$")]
Label = Annotated[str, StringConstraints(max_length=200), AfterValidator(_label)]
Length = Annotated[int, Field(ge=16, le=1_000_000)]
Count = Annotated[int, Field(ge=1, le=1_000_000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ModelSpec(_Strict):
    """A `ModelEntry` as stored in a manifest."""

    name: Name
    source: Name
    kind: Literal["encoder", "decoder"]
    pooling: Literal["last", "mean", "cls"]
    template: Annotated[str, StringConstraints(max_length=10_000), AfterValidator(_template)]
    task: Annotated[str, StringConstraints(max_length=10_000)] = ""
    padding_side: Literal["left", "right"] = "right"
    max_length: Length
    dtype: Literal[DTYPES] = "auto"  # type: ignore[valid-type]
    revision: Name | None = None
    languages: list[Annotated[str, StringConstraints(max_length=20)]] = Field(default_factory=list)
    description: Annotated[str, StringConstraints(max_length=10_000)] = ""


class WeightsPin(_Strict):
    """sha256 of the model files the bundle was trained with (see models.pinning)."""

    sha256: Hex64
    files: dict[RelPath, Hex64]
    hidden_size: Count | None = None
    num_layers: Count | None = None
    max_positions: Count | None = None


class Extraction(_Strict):
    dtype: Literal[DTYPES]  # type: ignore[valid-type]
    max_length: Length | None = None
    chunking: Literal["truncate", "chunks"] = "truncate"


class Preprocessing(_Strict):
    features: Literal["text", "hidden"] = "text"
    mask: bool = False
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")] | None = None
    normalise_whitespace: bool = False
    label_scheme: dict[str, Any] | None = None
    extraction: Extraction | None = None
    # columns of log1p(learnerprobe.probes.surface.surface_features(text)) appended to the
    # hidden state (transfer methods hidden_surface, stack_surface, combined)
    surface: Annotated[int, Field(ge=0, le=64)] = 0


class ArraysRef(_Strict):
    """The estimator's array form (:mod:`learnerprobe.inference.arrays`): a kind from its exact
    registry, the JSON spec, and the safetensors file of its tensors (listed in ``files``)."""

    format: Literal["learnerprobe-arrays/1"]
    file: Literal["estimator.safetensors"]
    spec: dict[str, Any]


class Manifest(_Strict):
    """The strict schema of manifest.json (format 2)."""

    format: Literal["learnerprobe-bundle"]
    format_version: Literal[2]
    task: Literal["cefr", "l1"]
    method: Name
    labels: Annotated[list[Label], Field(min_length=2, max_length=1000)]
    model: ModelSpec | None = None
    weights: WeightsPin | None = None
    layer: Annotated[int, Field(ge=0, le=10_000)] | None = None
    # a multi-layer estimator (transfer method scalar_mix): the layers it reads side by side,
    # in this order; `layer` is then the deepest of them
    layers: Annotated[list[Annotated[int, Field(ge=0, le=10_000)]],
                      Field(min_length=1, max_length=1000)] | None = None
    preprocessing: Preprocessing
    training_data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    card: dict[str, Any] = Field(default_factory=dict)
    versions: dict[Annotated[str, StringConstraints(max_length=100)], Name | None]
    created: Annotated[str, StringConstraints(max_length=100)]
    files: Annotated[dict[RelPath, Hex64], Field(min_length=1, max_length=MAX_FILES)]
    arrays: ArraysRef | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")
        if ESTIMATOR not in self.files:
            raise ValueError(f"files must list {ESTIMATOR}")
        if self.arrays is not None and self.arrays.file not in self.files:
            raise ValueError(f"files must list the array form {self.arrays.file}")
        pre = self.preprocessing
        if self.method not in bundle_methods():
            raise ValueError(f"method {self.method!r} is not a bundle method; known: "
                             f"{', '.join(bundle_methods())}")
        if (get_method(self.method).kind != "probe") != (pre.features == "text"):
            raise ValueError(f"method {self.method!r} does not go with features {pre.features!r}")
        if pre.features == "hidden":
            missing = [k for k in ("model", "weights", "layer") if getattr(self, k) is None]
            if pre.extraction is None:
                missing.append("preprocessing.extraction")
            if missing:
                raise ValueError(f"a hidden-state bundle needs {', '.join(missing)}")
            w, m, ex = self.weights, self.model, pre.extraction
            if w.num_layers is not None and self.layer > w.num_layers:
                raise ValueError(f"layer {self.layer} is beyond the model's {w.num_layers} layers")
            if self.layers is not None and self.layer != max(self.layers):
                raise ValueError(f"layer {self.layer} is not the deepest of layers {self.layers}")
            top = min(x for x in (m.max_length, w.max_positions) if x is not None)
            if ex.max_length is not None and ex.max_length > top:
                raise ValueError(f"max_length {ex.max_length} is over the model's maximum {top}")
        elif any(getattr(self, k) is not None for k in ("model", "weights", "layer", "layers")):
            raise ValueError("a text-feature bundle has no model, weights or layer")
        return self


# ---------------------------------------------------------------------------------------------
# Files, digest, manifest parsing


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_file(path: Path, limit: int | None = None) -> bytes:
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


def _sha256_file(path: Path) -> str:
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


def _digest_of(hashes: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(hashes):
        h.update(f"{name}\0{hashes[name]}\n".encode())
    return h.hexdigest()


def _hash_all(p: Path, names: list[str]) -> dict[str, str]:
    try:
        return {rel: _sha256_file(p / rel) for rel in names}
    except OSError as e:
        raise BundleError(f"{p}: cannot read the bundle ({e.strerror}: {e.filename})") from None


def _check_model_source(manifest: dict[str, Any], where: str) -> None:
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
    return _digest_of({rel: _sha256_file(p / rel) for rel in scan(p)})


def _normalise_digest(d: str) -> str:
    d = d.strip().lower()
    d = d.removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", d):
        raise BundleError(f"expected digest {d!r} is not a sha256 (64 hexadecimal characters)")
    return d


def _depth(obj: Any) -> int:
    depth, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        depth = max(depth, d)
        if depth > MAX_JSON_DEPTH:
            return depth
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return depth


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """Bytes of manifest.json -> dict; BundleError for non-UTF-8, invalid, deep or duplicate JSON."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BundleError(f"{where}: manifest is not UTF-8 text (byte {e.start})") from None
    if text.count("[") + text.count("{") > 100_000:
        raise BundleError(f"{where}: manifest has too many nested structures")
    try:
        obj = json.loads(text, object_pairs_hook=_no_dupes)
    except RecursionError:
        raise BundleError(f"{where}: manifest JSON is nested too deeply") from None
    except ValueError as e:  # JSONDecodeError and duplicate keys
        raise BundleError(f"{where}: manifest is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise BundleError(f"{where}: manifest is not a JSON object")
    if _depth(obj) > MAX_JSON_DEPTH:
        raise BundleError(f"{where}: manifest JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    return obj


def validate_manifest(obj: dict[str, Any], where: str) -> Manifest:
    if obj.get("format") != FORMAT:
        raise BundleError(f"{where}: not a learnerprobe bundle manifest")
    if obj.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{where}: bundle format {obj.get('format_version')!r} is not supported "
            f"(this learnerprobe reads format {FORMAT_VERSION}); retrain or upgrade"
        )
    try:
        return Manifest.model_validate(obj)
    except ValidationError as e:
        parts = []
        for err in e.errors()[:4]:
            loc = ".".join(str(x) for x in err["loc"]) or "manifest"
            parts.append(f"{loc}: {err['msg']}")
        more = f" (+{e.error_count() - 4} more)" if e.error_count() > 4 else ""
        raise BundleError(f"{where}: invalid manifest: {'; '.join(parts)}{more}") from None


def _sealed_view(manifest: dict[str, Any], also: str | None = None) -> dict[str, Any]:
    """The manifest as sealed into an estimator file: all of it but that file's own hash
    (and ``also``'s: the array form's seal leaves out both estimator files, written after it)."""
    files = {k: v for k, v in manifest.get("files", {}).items() if k not in (ESTIMATOR, also)}
    return {**manifest, "files": files}


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Bundle


def _refuse_untrusted(untrusted: list[str], what: str) -> None:
    bad = sorted(t for t in untrusted if t not in TRUSTED_TYPES)
    if bad:
        raise BundleError(
            f"{what} references types that are not trusted: {', '.join(bad[:5])}; refusing to "
            "load it"
        )


def _skops_zip(data: bytes, path: Path) -> Any:
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


def _skops_loads_public(data: bytes, path: Path, what: str) -> Any:  # pragma: no cover
    """:func:`_skops_loads_trusted` through skops's public API (parses the file twice)."""
    import skops.io as sio

    _skops_zip(data, path).close()
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as e:  # noqa: BLE001 - any parse failure of a crafted file
        raise BundleError(f"{path}: not a readable skops file ({type(e).__name__}: {e})") from None
    _refuse_untrusted(untrusted, what)
    try:
        return sio.loads(data, trusted=sorted(set(untrusted) & TRUSTED_TYPES))
    except Exception as e:  # noqa: BLE001
        raise BundleError(f"{path}: cannot load the estimator ({type(e).__name__}: {e})") from None


def _skops_loads_trusted(data: bytes, path: Path, what: str) -> Any:
    """The object in a skops file, refused unless every type it references that skops does not
    trust by default is in :data:`TRUSTED_TYPES` (checked before any object is built).

    Why not ``get_untrusted_types`` then ``loads``: both parse the file into skops's node tree,
    and for an n-gram bundle (a vocabulary of ~10^5 entries, one node each) parsing is most of
    the load time. We parse once, audit that tree with the same ``get_unsafe_set`` skops's own
    ``get_untrusted_types`` uses, and construct from it -- the same steps ``skops.io.loads``
    takes, with our exact list in place of its audit. A skops without these internals falls
    back to the two public calls.
    """
    try:
        from skops.io._audit import get_tree
        from skops.io._utils import read_schema
    except ImportError:  # pragma: no cover - another skops layout: the public two-pass route
        return _skops_loads_public(data, path, what)
    with _skops_zip(data, path) as zf:
        try:
            schema, context = read_schema(zf)
            tree = get_tree(schema, context, trusted=None)
            untrusted = sorted(tree.get_unsafe_set())
        except Exception as e:  # noqa: BLE001 - any parse failure of a crafted file
            raise BundleError(f"{path}: not a readable skops file ({type(e).__name__}: {e})") from None
        _refuse_untrusted(untrusted, what)
        try:
            return tree.construct()
        except Exception as e:  # noqa: BLE001
            raise BundleError(f"{path}: cannot load the estimator ({type(e).__name__}: {e})") from None


_LEAVES = (str, bytes, int, float, complex, type(None))


def _objects(root: Any, limit: int = 5_000_000) -> Any:
    """Every object reachable from a loaded estimator through instance attributes and container
    items (cycle-safe; scalars and numeric arrays are not yielded)."""
    import numpy as np

    seen: set[int] = set()
    stack = [root]
    while stack:
        o = stack.pop()
        if isinstance(o, _LEAVES) or id(o) in seen:
            continue
        if isinstance(o, np.ndarray) and o.dtype != object or isinstance(o, np.generic):
            continue
        seen.add(id(o))
        if len(seen) > limit:
            raise BundleError(f"the estimator holds over {limit} objects; not a learnerprobe "
                              "estimator")
        yield o
        if isinstance(o, dict):
            stack.extend(k for k in o if not isinstance(k, _LEAVES))
            stack.extend(v for v in o.values() if not isinstance(v, _LEAVES))
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(v for v in o if not isinstance(v, _LEAVES))
        elif isinstance(o, np.ndarray):
            stack.extend(v for v in o.ravel().tolist() if not isinstance(v, _LEAVES))
        elif isinstance(getattr(o, "__dict__", None), dict):
            stack.extend(v for v in vars(o).values() if not isinstance(v, _LEAVES))


def _check_token_patterns(objs: list[Any], where: str) -> None:
    """The rule of the array form for every path: a vectoriser that compiles its token_pattern
    (analyzer "word") must use one from the exact list
    :data:`learnerprobe.inference.arrays.TOKEN_PATTERNS`, so no regular expression from a
    bundle is ever compiled (a crafted one can backtrack for hours on a short text). ``objs``:
    the estimator's objects (:func:`_objects`)."""
    for o in objs:
        attrs = getattr(o, "__dict__", None)
        if not isinstance(attrs, dict) or "token_pattern" not in attrs:
            continue
        analyzer = attrs.get("analyzer", "word")
        if analyzer in ("char", "char_wb"):
            continue  # these analyzers never compile the pattern
        pattern = attrs["token_pattern"]
        if analyzer != "word" or pattern not in _arrays.TOKEN_PATTERNS:
            shown = repr(pattern)[:80] if analyzer == "word" else f"analyzer {str(analyzer)[:40]!r}"
            raise BundleError(f"{where}: a vectoriser's token_pattern ({shown}) is not one of "
                              f"{list(_arrays.TOKEN_PATTERNS)}; a regular expression from a "
                              "bundle is never compiled")


def _skops_inputs(est: Any, objs: list[Any], features: str, width: int | None) -> Any:
    """Check inputs for a skops estimator, made from the estimator itself (as
    :func:`learnerprobe.inference.arrays.probe_inputs` does for the array form): texts of its
    vectorisers' vocabularies, or rows around its scalers' statistics (else standard normal)."""
    import numpy as np

    if features == "text":
        vocabs = [[k for k in o.vocabulary_ if isinstance(k, str)] for o in objs
                  if isinstance(getattr(o, "vocabulary_", None), dict)]
        return _arrays.text_inputs(_arrays.sample_terms(vocabs), n=CHECK_N)
    width = int(getattr(est, "n_features_in_", None) or width or 0)
    if width <= 0:
        return None
    scalers = []
    for o in objs:
        mean, scale = getattr(o, "mean_", None), getattr(o, "scale_", None)
        if (isinstance(mean, np.ndarray) and isinstance(scale, np.ndarray)
                and mean.shape == scale.shape == (width,)):
            scalers.append((mean, scale))
    return _arrays.feature_inputs(width, scalers[:4], n=CHECK_N)


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
            data = _read_file(path)
        except OSError as e:
            raise BundleError(f"{path}: cannot read ({e.strerror})") from None
        if _sha256_bytes(data) != self.manifest["files"][name]:
            raise BundleError(f"{self.path}: file {name} does not match its manifest hash (tampered?)")
        return path, data

    def load_estimator(self, name: str = ESTIMATOR) -> Any:
        """Load the sealed skops estimator, trusting only :data:`TRUSTED_TYPES`, and cross-check it
        against the manifest (seal, classes, input width)."""
        path, data = self._read_hashed(name)
        obj = _skops_loads_trusted(data, path, f"bundle {self.path}: {name}")
        if not (isinstance(obj, dict) and set(obj) == {"format", "estimator", "seal"}
                and obj["format"] == SEAL_FORMAT and isinstance(obj["seal"], str)):
            raise BundleError(f"{path}: not a sealed learnerprobe estimator")
        self._check_seal(obj["seal"], name)
        est = obj["estimator"]
        self._check_estimator(est, name)
        objs = list(_objects(est))
        _check_token_patterns(objs, f"{path}")
        features = self.manifest["preprocessing"]["features"]
        self._check_outputs(est, _skops_inputs(est, objs, features, self._width()), name)
        return est

    def load_array_estimator(self) -> Any | None:
        """The estimator's array form (:mod:`learnerprobe.inference.arrays`; numpy only, no
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
        self._check_seal(meta["seal"], name, also=name)
        est = _arrays.build(ref["spec"], tensors, str(path))
        self._check_estimator(est, name)
        self._check_outputs(est, _arrays.probe_inputs(est, ref["spec"], tensors, n=CHECK_N), name)
        return est

    def _width(self) -> int | None:
        """The estimator's input width the manifest implies (hidden-state bundles)."""
        spec = self.spec
        if spec is None or spec.weights is None or spec.weights.hidden_size is None:
            return None
        return (spec.weights.hidden_size * len(spec.layers or [spec.layer])
                + spec.preprocessing.surface)

    def _check_outputs(self, est: Any, X: Any, name: str) -> None:
        """Refuse an estimator whose probabilities or scores on the bundle's own check inputs
        (``X``: made from its vocabulary or scaler statistics) are not finite numbers: extreme
        weights that pass every other check (3e38, a scale of 1e-310, a float32-max idf) would
        otherwise print NaN. The validation texts are not stored in a bundle (learner texts
        under corpus licences), hence inputs made from the estimator itself."""
        import numpy as np

        if X is None:
            return
        outs: list[tuple[str, Any]] = []
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for attr, what in (("predict_proba", "probabilities"), ("predict_score", "scores")):
                    fn = getattr(est, attr, None)
                    if fn is not None:
                        outs.append((what, np.asarray(fn(X), dtype=float)))
                est.predict(X)
        except Exception as e:  # noqa: BLE001 - any failure of a stranger's estimator
            why = (str(e).strip().splitlines() or [""])[0][:160]
            raise BundleError(f"{self.path}: {name} fails on the bundle's own check inputs "
                              f"({type(e).__name__}: {why}); refusing it") from None
        for what, a in outs:
            if a.shape[:1] != (len(X),):
                raise BundleError(f"{self.path}: {name} gives {what} of shape {a.shape} for "
                                  f"{len(X)} check inputs")
            if not np.all(np.isfinite(a)):
                raise BundleError(
                    f"{self.path}: {name} gives non-finite {what} on the bundle's own check "
                    "inputs (extreme weights); refusing it")

    def _check_seal(self, seal: str, name: str, also: str | None = None) -> None:
        try:
            sealed = json.loads(seal)
        except ValueError:
            raise BundleError(f"{self.path}: {name} holds an unreadable seal") from None
        mine = _sealed_view(self.manifest, also)
        if _canonical(sealed) == _canonical(mine):
            return
        keys = sorted(k for k in set(sealed) | set(mine) if sealed.get(k) != mine.get(k))
        raise BundleError(
            f"{self.path}: manifest.json differs from the copy sealed in {name} (fields: "
            f"{', '.join(keys) or '?'}); the manifest was edited after training"
        )

    def _check_estimator(self, est: Any, name: str) -> None:
        if not callable(getattr(est, "predict", None)):
            raise BundleError(f"{self.path}: {name} holds no estimator (no predict method)")
        classes = getattr(est, "classes_", None)
        labels = self.labels
        if classes is None or len(classes) != len(labels):
            n = "no" if classes is None else len(classes)
            raise BundleError(
                f"{self.path}: the manifest lists {len(labels)} labels but the estimator has "
                f"{n} classes"
            )
        vals = list(classes)
        ints = all(isinstance(c, int) or type(c).__name__.startswith(("int", "uint")) for c in vals)
        if ints and [int(c) for c in vals] != list(range(len(labels))):
            raise BundleError(f"{self.path}: estimator classes are not the levels 0..{len(labels) - 1}")
        if not ints and [str(c) for c in vals] != labels:
            raise BundleError(f"{self.path}: estimator classes {vals[:5]} differ from the labels")
        spec = self.spec
        if spec is not None and spec.weights is not None and spec.weights.hidden_size is not None:
            width = getattr(est, "n_features_in_", None)
            want = (spec.weights.hidden_size * len(spec.layers or [spec.layer])
                    + spec.preprocessing.surface)
            if width is not None and int(width) != want:
                parts = "" if want == spec.weights.hidden_size else (
                    f" ({len(spec.layers or [spec.layer])} layer(s) + "
                    f"{spec.preprocessing.surface} surface columns = {want})")
                raise BundleError(
                    f"{self.path}: the estimator takes {width} features but the model's hidden "
                    f"size is {spec.weights.hidden_size}{parts}"
                )


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
) -> Path:
    """Write a bundle atomically (a temp folder renamed into place; an existing bundle there is
    replaced only once the new one is complete). Permissions follow the umask. The manifest is
    validated against :class:`Manifest` and sealed into the estimator file before writing.
    OSError (disk full, read-only, permissions) becomes a BundleError naming the path.

    ``array_form``: also write the estimator's array form when its kind has one and it gives
    the estimator's probabilities on ``check_inputs`` (validation features or texts; synthetic
    ones from the estimator's own statistics when None) -- see :func:`_array_form`."""
    import skops.io as sio

    out = Path(out_dir)
    check_writable(out)
    manifest: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "task": task, "method": method,
        "labels": list(labels), "model": model, "weights": weights, "layer": layer,
        "preprocessing": preprocessing or {}, "training_data": training_data or {},
        "metrics": metrics or {}, "card": card or {}, "versions": library_versions(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "files": {},
    }
    if layers is not None:  # only multi-layer bundles carry the key
        manifest["layers"] = list(layers)
    tmp: Path | None = None
    old: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
        for name, src in (extra_files or {}).items():
            _relpath(name)
            dst = tmp / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if Path(src).is_dir():
                shutil.copytree(src, dst, symlinks=False)
            else:
                shutil.copyfile(src, dst)
        manifest["files"] = {rel: _sha256_file(tmp / rel) for rel in scan(tmp)}
        # What is written is what is read back: round-trip through JSON before sealing.
        manifest = json.loads(json.dumps(manifest, ensure_ascii=False, default=str))
        manifest["files"][ESTIMATOR] = "0" * 64  # placeholder, so the schema can check the rest
        validate_manifest(manifest, f"{out}/{MANIFEST}")
        _check_model_source(manifest, str(out))
        form = _array_form(estimator, check_inputs, f"{out}") if array_form else None
        if form is not None:
            spec, tensors = form
            ref = {"format": _arrays.ARRAYS_FORMAT, "file": _arrays.ARRAYS_FILE, "spec": spec}
            manifest["arrays"] = json.loads(json.dumps(ref))
            manifest["files"][_arrays.ARRAYS_FILE] = "0" * 64
            validate_manifest(manifest, f"{out}/{MANIFEST}")
            seal = _canonical(_sealed_view(manifest, _arrays.ARRAYS_FILE))
            (tmp / _arrays.ARRAYS_FILE).write_bytes(
                _arrays.dumps(tensors, {"format": _arrays.ARRAYS_FORMAT, "seal": seal}))
            manifest["files"][_arrays.ARRAYS_FILE] = _sha256_file(tmp / _arrays.ARRAYS_FILE)
        sealed = {"format": SEAL_FORMAT, "estimator": estimator,
                  "seal": _canonical(_sealed_view(manifest))}
        sio.dump(sealed, tmp / ESTIMATOR)
        manifest["files"][ESTIMATOR] = _sha256_file(tmp / ESTIMATOR)
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


def _array_form(estimator: Any, check_inputs: Any, where: str) -> tuple[dict, dict] | None:
    """The estimator's array form, or None when its kind has none or it does not reproduce the
    estimator: rebuilt from the bytes that will be written and compared on ``check_inputs``
    plus synthetic inputs (:func:`learnerprobe.inference.arrays.check_equivalent`)."""
    import numpy as np

    form = _arrays.export(estimator)
    if form is None:
        return None
    spec, tensors = form
    tensors_back, _ = _arrays.loads(_arrays.dumps(tensors, {}), where)
    try:
        arr = _arrays.build(json.loads(json.dumps(spec)), tensors_back, where)
    except BundleError:
        return None
    inputs = [_arrays.probe_inputs(estimator, spec, tensors)]
    if check_inputs is not None:
        inputs.insert(0, check_inputs if spec["kind"] == "ngram"
                      else np.asarray(check_inputs, dtype=np.float32))
    for X in inputs:
        ok, _ = _arrays.check_equivalent(estimator, arr, X)
        if not ok:
            return None
    return spec, tensors


# ---------------------------------------------------------------------------------------------
# Reading


def _check_versions(p: Path, manifest: dict[str, Any], allow: bool) -> None:
    if allow:
        return
    want_all = manifest.get("versions") or {}
    have = library_versions()
    for lib in _STRICT_LIBS:
        want = want_all.get(lib)
        if want and _minor(want) != _minor(have.get(lib)):
            raise BundleError(
                f"{p}: trained with {lib} {want}, this environment has {have.get(lib)}; models "
                "may not load identically — install the same minor version, retrain, or accept "
                "the risk with allow_version_mismatch"
            )
    if (manifest.get("preprocessing") or {}).get("features") == "hidden":
        diff = [f"{lib} {want_all.get(lib)} (now {have.get(lib)})" for lib in _WARN_LIBS
                if want_all.get(lib) and want_all.get(lib) != have.get(lib)]
        if diff:
            warnings.warn(f"{p}: bundle trained with {', '.join(diff)}; hidden states may differ "
                          "slightly", UserWarning, stacklevel=3)


def load_bundle(path: str | Path, expect_digest: str | None = None, *,
                allow_version_mismatch: bool = False, check_versions: bool = True) -> Bundle:
    """Read and verify a bundle (see the module docstring for what is checked).

    ``expect_digest``: the :func:`bundle_digest` the caller trusts; any other content is refused.
    """
    p = Path(path)
    want = _normalise_digest(expect_digest) if expect_digest is not None else None
    if not p.is_dir():
        raise BundleError(f"{p} is not a learnerprobe bundle (no such folder)")
    names = scan(p)
    if MANIFEST not in names:
        raise BundleError(f"{p} is not a learnerprobe bundle (no {MANIFEST})")
    try:
        data = _read_file(p / MANIFEST, MAX_MANIFEST_BYTES)
    except OSError as e:
        raise BundleError(f"{p}: cannot read the bundle ({e.strerror}: {e.filename})") from None
    hashes = _hash_all(p, names) if want is not None else None  # a pin is checked first
    if hashes is not None and _digest_of(hashes) != want:
        raise BundleError(
            f"{p}: bundle digest {_digest_of(hashes)} does not match the expected {want}; the "
            "bundle is not the one you pinned (modified or a different bundle)"
        )
    where = str(p / MANIFEST)
    manifest = parse_manifest(data, where)
    spec = validate_manifest(manifest, where)
    _check_model_source(manifest, str(p))  # from the string alone, before any other file is read
    hashes = hashes or _hash_all(p, names)
    digest = _digest_of(hashes)
    if hashes[MANIFEST] != _sha256_bytes(data):
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
