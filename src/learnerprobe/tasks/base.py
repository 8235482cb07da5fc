"""What a task is: how records become labelled task data, and how the task is evaluated.

A :class:`Task` turns the loaded records of a study into :class:`TaskData` (labels encoded as
class indices, author groups, corpora, languages) and says what kind its labels are (ordinal
or nominal), which selection metric it uses by default and how it is evaluated: by the study's
probe pipeline (``evaluator = None``: activations -> cells -> pooled out-of-fold predictions ->
score rows) or by its own protocol, a ``"module:attr"`` hook returning an
``evaluation.results.HookResult`` (NLI). Hooks are named as strings, resolved on first use,
so ``tasks`` imports neither ``nli`` nor ``study`` (imports run one way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from learnerprobe.config.nli import NliConfig
from learnerprobe.config.study import LabelConfig, PrepConfig, SelectionConfig, StudyConfig
from learnerprobe.errors import ConfigError
from learnerprobe.methods.registry import resolve
from learnerprobe.records import LearnerText

LabelKind = Literal["ordinal", "nominal"]


@dataclass
class TaskData:
    """Records with encoded labels and the arrays protocols need (the study runner's input)."""

    records: list[LearnerText]
    y: np.ndarray  # class index per record (into ``labels``)
    ids: np.ndarray
    groups: np.ndarray  # corpus:author (corpus:text id where the author is unknown)
    corpora: np.ndarray
    languages: np.ndarray
    labels: list[str]
    #: the task's own selection of these texts (L1: ``tasks.l1.L1Data``), handed to its
    #: protocol so that it does not select (or mask) a second time; None for probe tasks
    selection: Any = None

    @property
    def n_classes(self) -> int:
        return len(self.labels)


def resolve_ref(ref: str) -> Any:
    return resolve(ref)


class Task:
    """A task: subclass, set ``name`` and ``label_kind``, implement :meth:`label_of`, then
    :func:`learnerprobe.tasks.register_task` it (one class + one registry entry)."""

    name: ClassVar[str]
    label_kind: ClassVar[LabelKind] = "nominal"
    default_metric: ClassVar[str] = "macro_f1"  # the layer-selection metric when none is set
    description: ClassVar[str] = ""
    #: ``"module:attr"`` of ``fn(cfg: StudyConfig, records, out_dir, *, log, cache_dir) ->
    #: HookResult`` (a task may override :meth:`evaluate` to hand it only the sections it
    #: needs, as ``l1`` does); None: the study runner's probe pipeline evaluates the task.
    evaluator: ClassVar[str | None] = None
    #: ``"module:attr"`` of ``fn(cfg: StudyConfig) -> None`` raising ConfigError: the task's own
    #: checks of a config, run once after loading (``study.check``).
    validator: ClassVar[str | None] = None
    #: the runner's stage (and timing prefix) for an ``evaluator`` hook, and its cache folder.
    stage: ClassVar[str] = ""

    # ------------------------------------------------------------------ labels
    def label_of(self, labels: LabelConfig, record: LearnerText) -> str | None:
        """The record's label under the config's ``[labels]`` (None: unlabelled, left out)."""
        raise NotImplementedError

    def labeller(self, labels: LabelConfig) -> Callable[[LearnerText], str | None]:
        """``record -> label`` for one config (override to build lookups once per run)."""
        return lambda r: self.label_of(labels, r)

    def label_order(self, labels: LabelConfig, seen: Sequence[str | None]) -> list[str]:
        """The classes in index order (default: sorted labels that occur)."""
        return sorted({lab for lab in seen if lab is not None})

    def check_labels(self, labels: LabelConfig,
                     labels_by_corpus: dict[str, list[str | None]]) -> None:
        """After loading: reject label sets the task cannot use (ConfigError)."""

    def prepare(self, records: Sequence[LearnerText], *, labels: LabelConfig,
                corpora: Sequence[str], prep: PrepConfig, nli: NliConfig) -> TaskData:
        """Label the records, drop unlabelled ones, check the classes (the one implementation
        of "prepare task data" for the runner and ``learnerprobe train``; they pass the
        config's sections through ``engine.data.encode``). ``corpora``: the study's corpus
        names; ``prep``/``nli``: for tasks that select by them (``l1``)."""
        by_corpus: dict[str, list[str | None]] = {}
        mapped: list[str | None] = []
        label_of = self.labeller(labels)
        for r in records:
            lab = label_of(r)
            by_corpus.setdefault(r.corpus, []).append(lab)
            mapped.append(lab)
        for c in corpora:
            by_corpus.setdefault(c, [])
        self.check_labels(labels, by_corpus)
        order = self.label_order(labels, mapped)
        keep = [i for i, lab in enumerate(mapped) if lab is not None]
        y = np.array([order.index(mapped[i]) for i in keep], dtype=np.int64)
        recs = [records[i] for i in keep]
        if not recs:
            raise ConfigError(f"no labelled texts in corpora {', '.join(corpora)}")
        return TaskData(
            records=recs,
            y=y,
            ids=np.array([r.id for r in recs], dtype=object),
            groups=np.array([f"{r.corpus}:{r.author_id or r.id}" for r in recs], dtype=object),
            corpora=np.array([r.corpus for r in recs], dtype=object),
            languages=np.array([r.language for r in recs], dtype=object),
            labels=list(order),
        )

    # ------------------------------------------------------------------ config and evaluation
    @property
    def uses_probes(self) -> bool:
        """Evaluated by the probe pipeline: the config's ``probes`` are the task's methods."""
        return self.evaluator is None

    def selection_metric(self, selection: SelectionConfig) -> str:
        """``[selection] metric`` when the config sets it, else the task's default."""
        return selection.metric if "metric" in selection.model_fields_set else self.default_metric

    def check_config(self, cfg: StudyConfig) -> None:
        """The task's own checks of a loaded config (its ``validator``), ConfigError."""
        if self.validator is not None:
            resolve_ref(self.validator)(cfg)

    def evaluate(self, cfg: StudyConfig, data: TaskData, stage_dir: Path, out_dir: Path, *,
                 log: Callable[[str], None]) -> Any:
        """Run the task's own protocol (``evaluator``): a ``HookResult``. Outputs go under
        ``stage_dir``; a cache that must survive a crash under ``out_dir/<stage>/cache``."""
        if self.evaluator is None:
            raise TypeError(f"task {self.name!r} is evaluated by the probe pipeline")
        return resolve_ref(self.evaluator)(cfg, data.records, stage_dir, log=log,
                                        cache_dir=out_dir / self.stage / "cache")
