"""Study configuration: one TOML file says everything a run needs, validated before any work.

Validation happens in two steps so errors come early and clearly:
``load_config`` checks the file against the schema (unknown keys, types) and the registries
(unknown corpus, model or probe, listing the valid names); ``check_labels`` runs after the corpora
are loaded and rejects a label scheme that leaves a class empty.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from learnerprobe.cefr import SCHEMES, CefrScheme, get_scheme
from learnerprobe.corpora.registry import CORPORA, CorpusSpec, as_spec
from learnerprobe.errors import ConfigError
from learnerprobe.execution.settings import ExecutionConfig
from learnerprobe.limits import (
    MAX_BOOT,
    MAX_FOLDS,
    MAX_LAYER,
    Count,
    Jobs,
    LayerIndex,
    Seed,
    Threads,
    loads_toml,
)
from learnerprobe.methods.registry import method_names
from learnerprobe.models.device import Device, check_device
from learnerprobe.models.registry import MODELS, get_model
from learnerprobe.nli.settings import NliSettings
from learnerprobe.study.transfer_config import TransferSettings, validate_transfer
from learnerprobe.tasks import TASKS, get_task

# Probe and method names come from learnerprobe.methods.registry, which names its estimators
# lazily: reading a config imports no sklearn or torch.

PROTOCOLS = ("iid", "loco", "lolo")
SURFACE = "surface"
# A study name becomes a folder (runs/<name>): one plain path component, never "..", "/x", "".
NAME = re.compile(r"\w[\w.+-]*")


class _Strict(BaseModel):
    # strict: a value has the type the field says (folds = "5", shared_levels = "yes" and
    # n_boot = 1e12 are errors, not coerced); allow_inf_nan: TOML's inf and nan are refused.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class LabelConfig(_Strict):
    """A named scheme ("five") or an explicit one (drop_plus / merge / abc)."""

    scheme: str | None = "five"
    drop_plus: bool | None = None
    merge: list[list[str]] | None = None
    abc: bool | None = None

    @model_validator(mode="after")
    def _known_scheme(self) -> LabelConfig:
        if self.scheme is not None and self.scheme not in SCHEMES:
            raise ValueError(f"unknown label scheme {self.scheme!r}; known: {', '.join(SCHEMES)}")
        return self

    def build(self) -> CefrScheme:
        """The CefrScheme: the named one, with any explicit field overriding it."""
        base = get_scheme(self.scheme) if self.scheme else CefrScheme()
        return CefrScheme(
            drop_plus=base.drop_plus if self.drop_plus is None else self.drop_plus,
            merge=base.merge if self.merge is None else self.merge,
            abc=base.abc if self.abc is None else self.abc,
            names=dict(base.names),
        )


class ExtractionConfig(_Strict):
    """Options passed through to ``learnerprobe.extract.get_activations``."""

    dtype: str = "auto"
    device: Device = "auto"  # also checked against this machine's devices (check_names)
    max_length: Count | None = None
    chunking: Literal["truncate", "chunks"] = "truncate"
    batch_tokens: Count | None = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``extract.get_activations`` (unset options keep its defaults);
        the one place the study runner, the NLI protocol and ``train`` build them."""
        kw: dict[str, Any] = {"dtype": self.dtype, "device": self.device,
                              "chunking": self.chunking}
        for k in ("max_length", "batch_tokens"):
            if getattr(self, k) is not None:
                kw[k] = getattr(self, k)
        return kw


class PrepConfig(_Strict):
    """Corpus preparation before extraction."""

    clean: bool = True  # prep.clean: drops empty texts and exact duplicates
    dedupe: bool = True  # also drop repeated texts (same content hash) across corpora
    mask: bool = False  # prep.mask.mask_records: hide names/places (NLI uses it)


class SelectionConfig(_Strict):
    """How the per-probe layer is chosen: on a grouped validation split of the training data."""

    val_size: float = Field(0.2, gt=0.0, lt=0.5)
    metric: Literal["qwk", "accuracy", "macro_f1", "mae"] = "qwk"
    refit: bool = False  # True: refit every layer on the full training fold (twice the fits)


class StudyConfig(_Strict):
    """The whole study; see docs/STUDY.md for every field."""

    name: str = Field(min_length=1, max_length=100)
    task: str = "cefr"  # a name in learnerprobe.tasks.TASKS (cefr, l1, ...)
    # A registry name or a table {name, root, as, loader options...}; see docs/STUDY.md.
    corpora: list[str | CorpusSpec] = Field(min_length=1)
    labels: LabelConfig = LabelConfig()
    models: list[str] = Field(min_length=1)
    layers: Literal["all"] | list[LayerIndex] = "all"
    probes: list[str] = Field(default_factory=lambda: ["ridge", "logistic", "ordinal",
                                                       "mlp_reg", "mlp_clf", SURFACE])
    protocols: list[Literal["iid", "loco", "lolo"]] = Field(default_factory=lambda: ["iid"],
                                                            min_length=1)
    mode: Literal["tuned", "reference", "both"] = "tuned"
    reference_split: Literal["holdout", "kfold"] = "holdout"  # reference IID: one 80/20 split
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    folds: int = Field(5, ge=2, le=MAX_FOLDS)  # also <= texts per class (evaluation.splits)
    n_boot: int = Field(1000, ge=0, le=MAX_BOOT)
    shared_levels: bool = True
    output: str | None = None
    cache_cells: bool = True
    n_jobs: Jobs = 1  # cells fitted side by side (processes); -1 = one per core
    threads: Threads = 1  # BLAS/OpenMP threads per cell
    sweep_jobs: Jobs = 1  # layers fitted side by side inside a cell (probes.sweep n_jobs)
    extraction: ExtractionConfig = ExtractionConfig()
    prep: PrepConfig = PrepConfig()
    selection: SelectionConfig = SelectionConfig()
    # The [nli] table, typed (learnerprobe.nli.settings): wrong types and unknown keys are
    # errors naming the key. Absent (None) unless the config has one.
    nli: NliSettings | None = None
    # The [transfer] table (learnerprobe.study.transfer_config): transfer methods under nested
    # leave-one-corpus-out selection, run after the probe stage. Absent (None) unless given.
    transfer: TransferSettings | None = None
    # Where the work runs (learnerprobe.execution): local (default) or ray. Changes no result.
    execution: ExecutionConfig = ExecutionConfig()

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not NAME.fullmatch(v):
            raise ValueError("must be a plain folder name (letters, digits, '.', '-', '_', '+'; "
                             "not starting with '.' and without '/'): it names runs/<name>")
        return v

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        if v not in TASKS:
            raise ValueError(f"unknown task {v!r}; known: {', '.join(TASKS)}")
        return v

    @field_validator("corpora")
    @classmethod
    def _unique_corpora(cls, v: list) -> list:
        names = [as_spec(c).study_name for c in v]
        dup = [k for k, c in Counter(names).items() if c > 1]
        if dup:
            raise ValueError(f"corpus name listed twice: {', '.join(dup)} (give each table "
                             "entry its own `as = \"NAME\"`)")
        return v

    @property
    def corpus_names(self) -> list[str]:
        """The study's corpus names, in order (a table entry's ``as``, else its ``name``)."""
        return [as_spec(c).study_name for c in self.corpora]

    @property
    def corpus_specs(self) -> list[CorpusSpec]:
        """Every corpus entry as a CorpusSpec (a plain name is a spec with no options)."""
        return [as_spec(c) for c in self.corpora]

    @field_validator("models", "probes", "seeds")
    @classmethod
    def _unique(cls, v: list) -> list:
        dup = [k for k, c in Counter(v).items() if c > 1]
        if dup:
            raise ValueError(f"listed twice: {', '.join(map(str, dup))}")
        return v

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:  # the indices' range is LayerIndex's
            raise ValueError("layers must be 'all' or a non-empty list of layer indices "
                             f"0..{MAX_LAYER}")
        return v

    @model_validator(mode="after")
    def _cefr_needs_probes(self) -> StudyConfig:
        if get_task(self.task).uses_probes and not self.probes:
            raise ValueError("probes is empty: list at least one probe (or 'surface')")
        return self

    @property
    def modes(self) -> list[str]:
        return ["reference", "tuned"] if self.mode == "both" else [self.mode]

    @property
    def probe_names(self) -> list[str]:
        """Probes fitted on activations (the surface baseline excluded)."""
        return [p for p in self.probes if p != SURFACE]

    @property
    def with_surface(self) -> bool:
        return SURFACE in self.probes

    def scheme(self) -> CefrScheme:
        return self.labels.build()

    def digest(self) -> str:
        """Hash of everything that changes results (not output folder or n_jobs)."""
        d = self.model_dump(exclude={"output", "n_jobs", "threads", "sweep_jobs", "cache_cells", "name",
                                     "execution"})
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _loc(err: Any) -> str:
    """The dotted key of an error; a union member's tag ("literal['all']",
    "list[constrained-int]") is no key and is left out."""
    keep = err["type"] == "extra_forbidden"  # a user's own (odd) key is shown as written
    parts = [str(x) for x in err["loc"] if keep or not (isinstance(x, str) and "[" in x)]
    return ".".join(parts) or "(top level)"


def _format_validation(e: ValidationError, source: str) -> str:
    parts = []
    errors = e.errors()
    for err in errors:
        loc = _loc(err)
        msg = err["msg"]
        if err["type"] == "literal_error" and any(
                o["type"] != "literal_error" and o["loc"][:1] == err["loc"][:1]
                and len(o["loc"]) > len(err["loc"]) for o in errors):
            continue  # layers = [-1]: the item's error says it; "should be 'all'" does not
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        if err["type"] == "nli_variant":  # already names its key (nli.variants.NAME.KEY)
            parts.append(msg)
            continue
        parts.append(f"{loc}: {msg}")
    return f"{source}: invalid study config: " + "; ".join(parts)


def _known(kind: str) -> Sequence[str]:
    if kind == "corpus":
        return list(CORPORA)
    if kind == "model":
        return list(MODELS)
    return method_names(task="cefr")  # the methods registry: five probes and the surface baseline


def _model_ok(name: str) -> bool:
    """Models beyond the registry: a local transformers folder or a hub id (org/name)."""
    try:
        get_model(name)
    except (ConfigError, OSError, ValueError, RuntimeError):
        # RuntimeError: Path("~nouser/x").expanduser(); ValueError/OSError: odd paths
        return False
    return True


def check_names(cfg: StudyConfig, source: str = "config") -> None:
    """Reject unknown corpus, model or probe names, listing the valid ones."""
    checks: list[tuple[str, list[str]]] = [("corpus", [s.name for s in cfg.corpus_specs]),
                                           ("model", cfg.models)]
    task = get_task(cfg.task)
    if task.uses_probes:  # probe-pipeline tasks: probes are CEFR registry probes
        checks.append(("probe", cfg.probes))
    for kind, names in checks:
        valid = _known(kind)
        bad = [n for n in names if n not in valid and not (kind == "model" and _model_ok(n))]
        if bad:
            raise ConfigError(
                f"{source}: unknown {kind} {', '.join(map(repr, bad))}; "
                f"valid: {', '.join(sorted(valid))}"
            )
    for spec in cfg.corpus_specs:  # a corpus table's loader options, checked by the loader
        try:
            spec.check()
        except ConfigError as e:
            raise ConfigError(f"{source}: corpora: {e}") from None
    if not cfg.execution.is_ray:  # on a cluster the device is the actors', not this machine's
        try:
            check_device(cfg.extraction.device)
        except ConfigError as e:
            raise ConfigError(f"{source}: extraction.device: {e}") from None
    task.validate_config(cfg)  # the task's own settings (l1: nli.settings.validate_config)
    validate_transfer(cfg, source)  # [transfer] method names and grid options


def parse_config(data: dict[str, Any], source: str = "config", check: bool = True) -> StudyConfig:
    """Validate a dict (from TOML) into a StudyConfig; ConfigError on any problem."""
    try:
        cfg = StudyConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, source)) from None
    if check:
        check_names(cfg, source)
    return cfg


def load_config(path: str | Path, check: bool = True) -> StudyConfig:
    """Read and validate a TOML study config."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, not a config file (give the .toml file)")
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a UTF-8 text file (byte {e.start}: {e.reason}); "
                          "save the config as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config: {e.strerror or e}") from None
    data = loads_toml(text, str(p))  # also refuses deep nesting and 5,000-digit numbers
    _resolve_corpus_roots(data, p.resolve().parent)
    return parse_config(data, str(p), check)


def _resolve_corpus_roots(data: dict[str, Any], base: Path) -> None:
    """A corpus table's relative ``root`` is relative to the config file's folder."""
    corpora = data.get("corpora")
    for c in corpora if isinstance(corpora, list) else []:
        if isinstance(c, dict) and isinstance(c.get("root"), str):
            root = Path(c["root"]).expanduser()
            c["root"] = str(root if root.is_absolute() else base / root)


def check_labels(cfg: StudyConfig, labels_by_corpus: dict[str, list[str | None]]) -> None:
    """After loading: every class of the scheme must have texts (pooled), else ConfigError.

    ``labels_by_corpus`` holds the mapped labels of each corpus (None = unlabelled/dropped).
    The check belongs to the task (``learnerprobe.tasks``; CEFR: ``check_cefr_labels``).
    """
    get_task(cfg.task).check_labels(cfg, labels_by_corpus)
