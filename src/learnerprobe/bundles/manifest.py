"""The manifest of a bundle: its strict schema, parsing, and the library versions it records.

``manifest.json`` records everything needed to apply a trained model to a new text exactly as in
training (model entry and a pin of its weights, layer, pooling, template, masking, label set)
plus a card (data, metrics, limits). Parsing refuses non-UTF-8, over-large, deeply nested or
duplicate-key JSON before the schema (:class:`Manifest`: unknown fields refused, types checked)
sees it.
"""

from __future__ import annotations

import json
import re
import string
import warnings
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

from learnerprobe.errors import BundleError
from learnerprobe.methods.registry import get_method, method_names

FORMAT = "learnerprobe-bundle"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
ESTIMATOR = "estimator.skops"
MAX_MANIFEST_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_FILES = 10_000


def bundle_methods() -> list[str]:
    """Methods a bundle may hold: registered with ``bundle=True`` (learnerprobe.methods.registry;
    built in: the five probes and ngram). A method registered at run time is accepted only in
    a process that registered it, and its estimator still has to pass the trusted types (:mod:`learnerprobe.bundles.trust`)."""
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


def check_versions(p: Path, manifest: dict[str, Any], allow: bool) -> None:
    """Refuse a bundle trained with another minor version of scikit-learn (unless ``allow``);
    warn when a hidden-state bundle was trained with other torch/transformers/tokenizers."""
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


# ---------------------------------------------------------------------------------------------
# Schema


def relpath(v: str) -> str:
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
RelPath = Annotated[str, AfterValidator(relpath)]
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


class Fp32Graph(_Strict):
    """A low-precision bundle's fp32 check (:mod:`learnerprobe.bundles.fp32_check`)."""

    n_texts: Annotated[int, Field(ge=0)]
    max_abs_diff: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    label_changes: Annotated[int, Field(ge=0)]
    tolerance: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    accepted: bool


class Extraction(_Strict):
    dtype: Literal[DTYPES]  # type: ignore[valid-type]
    max_length: Length | None = None
    chunking: Literal["truncate", "chunks"] = "truncate"
    fp32_graph: Fp32Graph | None = None  # low-precision bundles: may predict use the fp32 graph


class Preprocessing(_Strict):
    features: Literal["text", "hidden"] = "text"
    mask: bool = False
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")] | None = None
    normalise_whitespace: bool = False
    label_scheme: dict[str, Any] | None = None
    extraction: Extraction | None = None
    # columns of log1p(learnerprobe.estimators.probes.surface.surface_features(text)) appended to
    # the hidden state (transfer methods hidden_surface, stack_surface, combined)
    surface: Annotated[int, Field(ge=0, le=64)] = 0


class ArraysRef(_Strict):
    """The estimator's array form (:mod:`learnerprobe.bundles.arrays`): a kind from its exact
    registry, the JSON spec, and the safetensors file of its tensors (listed in ``files``)."""

    format: Literal["learnerprobe-arrays/1"]
    file: Literal["estimator.safetensors"]
    spec: dict[str, Any]


Prob = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
WordCount = Annotated[int, Field(ge=0, le=10_000_000)]


class LengthRange(_Strict):
    low: WordCount
    high: WordCount
    quantiles: Annotated[list[Prob], Field(min_length=2, max_length=2)]

    @model_validator(mode="after")
    def _ordered(self) -> LengthRange:
        if self.low > self.high:
            raise ValueError("length.low is above length.high")
        return self


class Unfamiliar(_Strict):
    metric: Literal["mahalanobis-ledoit-wolf"]
    threshold: Annotated[float, Field(gt=0.0, le=1e12, allow_inf_nan=False)]
    quantile: Prob
    width: Count


class ApplicabilityRef(_Strict):
    """Prediction sets and applicability flags (:mod:`learnerprobe.bundles.applicability`):
    the manifest's numbers; the tensors are in ``file`` (listed in ``files``)."""

    format: Literal["learnerprobe-applicability/1"]
    file: Literal["applicability.safetensors"]
    kind: Literal["ordinal", "nominal"]
    n_calibration: Annotated[int, Field(ge=1, le=1_000_000)]
    languages: Annotated[list[Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]],
                         Field(min_length=1, max_length=200)]
    length: LengthRange
    validation_ece: Prob
    unfamiliar: Unfamiliar | None = None


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
    applicability: ApplicabilityRef | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")
        if ESTIMATOR not in self.files:
            raise ValueError(f"files must list {ESTIMATOR}")
        if self.arrays is not None and self.arrays.file not in self.files:
            raise ValueError(f"files must list the array form {self.arrays.file}")
        if self.applicability is not None and self.applicability.file not in self.files:
            raise ValueError(f"files must list {self.applicability.file}")
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
# Parsing


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

