"""CEFR proficiency: ordinal levels under the config's label scheme."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from learnerprobe.config.study import LabelConfig
from learnerprobe.errors import ConfigError, LearnerprobeError
from learnerprobe.records import LearnerText
from learnerprobe.tasks.base import Task


def check_cefr_labels(labels: LabelConfig, labels_by_corpus: dict[str, list[str | None]]
                      ) -> None:
    """Every class of the scheme must have texts (pooled over corpora), else ConfigError.

    ``labels_by_corpus`` holds the mapped labels of each corpus (None = unlabelled/dropped).
    """
    classes = labels.build().labels
    counts: Counter[str] = Counter()
    for labs in labels_by_corpus.values():
        counts.update(x for x in labs if x is not None)
    empty = [c for c in classes if counts[c] == 0]
    if empty:
        seen = ", ".join(f"{k}={counts[k]}" for k in classes if counts[k])
        raise ConfigError(
            f"label scheme leaves class(es) {', '.join(empty)} empty in corpora "
            f"{', '.join(labels_by_corpus)} (counts: {seen or 'none'}); merge them, e.g. "
            f"labels.merge = [[\"C1\", \"C2\"]], or choose another scheme"
        )
    if len(classes) < 2:
        raise ConfigError("label scheme has fewer than two classes")


class CefrTask(Task):
    name = "cefr"
    label_kind = "ordinal"
    default_metric = "qwk"
    description = "CEFR proficiency probing (ordinal levels, the config's [labels] scheme)"

    def label_of(self, labels: LabelConfig, record: LearnerText) -> str | None:
        return self.labeller(labels)(record)

    def labeller(self, labels: LabelConfig) -> Callable[[LearnerText], str | None]:
        scheme = labels.build()

        def label_of(r: LearnerText) -> str | None:
            try:
                return scheme.map(r.cefr)
            except ValueError as e:
                raise LearnerprobeError(f"{r.corpus} text {r.id}: bad CEFR label: {e}") from None

        return label_of

    def label_order(self, labels: LabelConfig, seen: Sequence[str | None]) -> list[str]:
        return list(labels.build().labels)

    def check_labels(self, labels: LabelConfig,
                     labels_by_corpus: dict[str, list[str | None]]) -> None:
        check_cefr_labels(labels, labels_by_corpus)
