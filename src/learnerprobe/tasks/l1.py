"""Native language identification (L1): nominal labels, evaluated by the NLI protocol.

The one implementation of L1 task preparation (which texts and labels an NLI experiment uses,
and how they are grouped) lives here: :func:`prepare_l1_task` and :func:`select_l1` (the
``[nli]`` table applied to it), used by the NLI protocol, ``learnerprobe train`` and the NLI
CLI commands.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.config.nli import NliConfig
from learnerprobe.config.study import LabelConfig, PrepConfig, StudyConfig
from learnerprobe.errors import ConfigError
from learnerprobe.evaluation.splits import group_keys
from learnerprobe.prep.mask import mask_records
from learnerprobe.records import LearnerText
from learnerprobe.tasks.base import Task, TaskData, resolve_ref

#: L1 values that are not a language; such texts cannot be labelled and are left out.
NON_L1 = frozenset({"other", "others", "not reported", "unknown", "none", "n/a", "na", ""})


@dataclass
class L1Data:
    """The prepared NLI task: records, labels, author groups and what was left out (and why)."""

    records: list[LearnerText]
    y: np.ndarray  # L1 names (str)
    groups: np.ndarray  # corpus:author (corpus:text id where unknown): evaluation.group_keys
    labels: list[str]  # sorted L1 names kept
    dropped_l1: dict[str, int] = field(default_factory=dict)  # L1 -> texts, below the minimum
    n_unlabelled: int = 0
    mask_counts: dict[str, int] = field(default_factory=dict)
    masked: bool = True

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.records]

    @property
    def majority_rate(self) -> float:
        return float(Counter(self.y.tolist()).most_common(1)[0][1] / len(self.y))

    @property
    def chance(self) -> float:
        return 1.0 / len(self.labels)

    def encoded(self) -> TaskData:
        """The task as the engine reads it: labels as indices into ``labels``."""
        return TaskData(
            records=list(self.records),
            y=np.array([self.labels.index(v) for v in self.y], dtype=np.int64),
            ids=np.array([r.id for r in self.records], dtype=object),
            groups=self.groups,
            corpora=np.array([r.corpus for r in self.records], dtype=object),
            languages=np.array([r.language for r in self.records], dtype=object),
            labels=list(self.labels),
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready description for the report (counts per L1, dropped L1s, masking)."""
        return {
            "n_texts": len(self.records),
            "n_authors": int(len(set(self.groups.tolist()))),
            "labels": self.labels,
            "counts": dict(Counter(self.y.tolist()).most_common()),
            "majority_rate": self.majority_rate,
            "chance": self.chance,
            "dropped_l1": self.dropped_l1,
            "n_unlabelled": self.n_unlabelled,
            "masked": self.masked,
            "mask_counts": self.mask_counts,
        }


def prepare_l1_task(
    records: Sequence[LearnerText],
    *,
    min_texts_per_l1: int = 30,
    mask: bool = True,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> L1Data:
    """Select labelled texts, drop L1s with fewer than ``min_texts_per_l1`` texts, mask.

    Masking is on by default: names, places and nationalities ("from Brazil") would let a
    model identify the L1 without learning anything about the learner's language.
    """
    excl = {e.lower() for e in exclude}
    labelled = [
        r for r in records
        if r.l1 is not None and r.l1.strip().lower() not in NON_L1 and r.l1.lower() not in excl
    ]
    n_unlabelled = len(records) - len(labelled)
    if include:
        inc = set(include)
        labelled = [r for r in labelled if r.l1 in inc]
    counts = Counter(r.l1 for r in labelled)
    dropped = {k: v for k, v in sorted(counts.items()) if v < min_texts_per_l1}
    kept = [r for r in labelled if r.l1 not in dropped]
    labels = sorted({r.l1 for r in kept})
    if len(labels) < 2:
        raise ConfigError(
            f"L1 task needs at least 2 L1s with >= {min_texts_per_l1} texts; found "
            f"{dict(counts.most_common())} (lower min_texts_per_l1 or pick another corpus)"
        )
    mask_counts: dict[str, int] = {}
    if mask:
        kept, mc = mask_records(kept)
        mask_counts = {str(k): int(v) for k, v in dict(mc).items()}
    y = np.array([r.l1 for r in kept], dtype=object)
    groups = group_keys(kept)
    return L1Data(
        records=list(kept), y=y, groups=groups, labels=labels, dropped_l1=dropped,
        n_unlabelled=n_unlabelled, mask_counts=mask_counts, masked=mask,
    )


def select_l1(records: Sequence[LearnerText], nli: NliConfig, *,
              mask: bool | None = None) -> L1Data:
    """The NLI experiment's texts under the ``[nli]`` table: minimum texts per L1,
    include/exclude lists, masking (``mask`` overrides ``nli.mask``)."""
    return prepare_l1_task(records, min_texts_per_l1=nli.min_texts_per_l1,
                           mask=nli.mask if mask is None else mask,
                           include=nli.include_l1, exclude=nli.exclude_l1)


class L1Task(Task):
    """L1 identification. :meth:`prepare` is the one step from loaded records to the texts an
    NLI experiment uses: the runner, the NLI protocol and ``learnerprobe train`` all go through
    it, so the selection (minimum texts, include/exclude) and the masking rule (never mask
    twice when ``[prep]`` already masked) cannot drift apart."""

    name = "l1"
    label_kind = "nominal"
    default_metric = "macro_f1"
    description = "native language identification (nominal L1s, the NLI protocol)"
    evaluator = "learnerprobe.nli.run:run_nli"
    validator = "learnerprobe.nli.check:check_l1_config"
    stage = "nli"

    def label_of(self, labels: LabelConfig, record: LearnerText) -> str | None:
        return record.l1 or None

    def select(self, records: Sequence[LearnerText], nli: NliConfig, *,
               masked: bool) -> L1Data:
        """The ``[nli]`` table applied to the records (masked unless ``masked``: ``[prep]``
        already masked them; ``L1Data.masked`` says whether the texts are masked)."""
        data = select_l1(records, nli, mask=nli.mask and not masked)
        data.masked = nli.mask or masked
        return data

    def prepare(self, records: Sequence[LearnerText], *, labels: LabelConfig,
                corpora: Sequence[str], prep: PrepConfig, nli: NliConfig) -> TaskData:
        """:meth:`select`, as the runner's task data; the selection itself travels in
        ``selection`` so the NLI protocol does not select (or mask) a second time."""
        d = self.select(records, nli, masked=prep.mask)
        data = d.encoded()
        data.selection = d
        return data

    def evaluate(self, cfg: StudyConfig, data: TaskData, stage_dir: Path, out_dir: Path, *,
                 log: Callable[[str], None]) -> Any:
        """The NLI protocol on the task data prepared by :meth:`prepare`, given the ``[nli]``
        table and the few study settings it shares (models, probes, layers, extraction, folds,
        seeds, n_boot)."""
        return resolve_ref(self.evaluator)(
            cfg.nli_config, data.records, stage_dir, models=cfg.models, probes=cfg.probe_names,
            layers=cfg.layers, extraction=cfg.extraction, folds=cfg.folds, seeds=cfg.seeds,
            n_boot=cfg.n_boot, masked=cfg.prep.mask, log=log,
            cache_dir=out_dir / self.stage / "cache", prepared=data.selection)
