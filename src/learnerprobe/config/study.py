"""The study config: one TOML file says everything a run needs, validated before any work.

Validation happens in three steps so errors come early and clearly: :func:`load_config`
(``learnerprobe.config.load``) checks the file against these models (unknown keys, types,
ranges); ``learnerprobe.study.check.check_config`` checks it against the registries (unknown
corpus, model, probe, task or method, listing the valid names); the task's ``check_labels``
runs after the corpora are loaded and rejects a label scheme that leaves a class empty.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from learnerprobe.cefr import SCHEMES, CefrScheme, get_scheme
from learnerprobe.config.adapt import AdaptConfig
from learnerprobe.config.base import StrictModel
from learnerprobe.config.corpus import CorpusConfig, as_corpus_config
from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.config.nli import NliConfig
from learnerprobe.config.transfer import TransferConfig
from learnerprobe.limits import (
    MAX_BOOT,
    MAX_FOLDS,
    MAX_LAYER,
    Count,
    Device,
    Jobs,
    LayerIndex,
    Seed,
    Threads,
)

PROTOCOLS = ("iid", "loco", "lolo")
SURFACE = "surface"
# A study name becomes a folder (runs/<name>): one plain path component, never "..", "/x", "".
NAME = re.compile(r"\w[\w.+-]*")
#: ``layers``: every extracted layer, or these hidden-state indices (0 = embeddings).
Layers = Literal["all"] | list[LayerIndex]


class LabelConfig(StrictModel):
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


class ExtractionConfig(StrictModel):
    """Options passed through to ``learnerprobe.extract.get_activations``."""

    dtype: str = "auto"
    device: Device = "auto"  # also checked against this machine's devices (study.check)
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


class PrepConfig(StrictModel):
    """Corpus preparation before extraction."""

    clean: bool = True  # prep.clean: drops empty texts and exact duplicates
    dedupe: bool = True  # also drop repeated texts (same content hash) across corpora
    mask: bool = False  # prep.mask.mask_records: hide names/places (NLI uses it)


class SelectionConfig(StrictModel):
    """How the per-probe layer is chosen: on a grouped validation split of the training data."""

    val_size: float = Field(0.2, gt=0.0, lt=0.5)
    metric: Literal["qwk", "accuracy", "macro_f1", "mae"] = "qwk"
    refit: bool = False  # True: refit every layer on the full training fold (twice the fits)


class StudyConfig(StrictModel):
    """The whole study; see docs/STUDY.md for every field."""

    name: str = Field(min_length=1, max_length=100)
    task: str = "cefr"  # a name in learnerprobe.tasks.TASKS (cefr, l1, ...): study.check
    # A registry name or a table {name, root, as, loader options...}; see docs/STUDY.md.
    corpora: list[str | CorpusConfig] = Field(min_length=1)
    labels: LabelConfig = LabelConfig()
    models: list[str] = Field(min_length=1)
    layers: Layers = "all"
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
    # MLP probes (reference and tuned): fp32, or bf16 autocast with fp32 master weights; auto =
    # bf16 only on a CPU with native bf16 (learnerprobe.estimators.probes.precision). fp32 by
    # default until a bf16 machine shows the headline cells inside their CIs.
    probe_precision: Literal["fp32", "bf16", "auto"] = "fp32"
    extraction: ExtractionConfig = ExtractionConfig()
    prep: PrepConfig = PrepConfig()
    selection: SelectionConfig = SelectionConfig()
    # The [nli] table, typed (learnerprobe.config.nli): wrong types and unknown keys are
    # errors naming the key. Absent (None) unless the config has one (nli_config: defaults).
    nli: NliConfig | None = None
    # The [transfer] table (learnerprobe.config.transfer): transfer methods under nested
    # leave-one-corpus-out selection, run after the probe stage. Absent (None) unless given.
    transfer: TransferConfig | None = None
    # The [adapt] table (learnerprobe.config.adapt): the loco_k protocol (adaptation to each
    # held-out corpus from k labelled texts of it), run after the probe stage. Absent unless given.
    adapt: AdaptConfig | None = None
    # Where the work runs (learnerprobe.execution): local (default) or ray. Changes no result.
    execution: ExecutionConfig = ExecutionConfig()

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not NAME.fullmatch(v):
            raise ValueError("must be a plain folder name (letters, digits, '.', '-', '_', '+'; "
                             "not starting with '.' and without '/'): it names runs/<name>")
        return v

    @field_validator("corpora")
    @classmethod
    def _unique_corpora(cls, v: list) -> list:
        names = [as_corpus_config(c).study_name for c in v]
        dup = [k for k, c in Counter(names).items() if c > 1]
        if dup:
            raise ValueError(f"corpus name listed twice: {', '.join(dup)} (give each table "
                             "entry its own `as = \"NAME\"`)")
        return v

    @property
    def corpus_names(self) -> list[str]:
        """The study's corpus names, in order (a table entry's ``as``, else its ``name``)."""
        return [as_corpus_config(c).study_name for c in self.corpora]

    @property
    def corpus_configs(self) -> list[CorpusConfig]:
        """Every corpus entry as a CorpusConfig (a plain name is one with no options)."""
        return [as_corpus_config(c) for c in self.corpora]

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

    @property
    def nli_config(self) -> NliConfig:
        """The ``[nli]`` table, its defaults when the config has none."""
        return self.nli if self.nli is not None else NliConfig()

    def scheme(self) -> CefrScheme:
        return self.labels.build()

    def digest(self) -> str:
        """Hash of everything that changes results (not output folder or n_jobs)."""
        d = self.model_dump(exclude={"output", "n_jobs", "threads", "sweep_jobs", "cache_cells", "name",
                                     "execution"})
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
