"""Scores of pooled cells: one row per (cell, layer, test corpus, level set, metric).

Every pooled cell, whichever provider made it, is scored by
:func:`learnerprobe.evaluation.results.score_rows`; paired comparisons (a method minus a
reference on the same texts) by :func:`paired_rows`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from learnerprobe.evaluation.metrics import paired_bootstrap_diff
from learnerprobe.evaluation.results import Pooled, prediction_frame, score_rows
from learnerprobe.evaluation.trust_rows import trust_rows
from learnerprobe.tasks import TaskData


@dataclass(frozen=True)
class Scoring:
    """How rows are scored: the study's task name, bootstrap draws, seed (the study's first),
    the shared-levels rule and the labels' kind (``"ordinal"`` or ``"nominal"``)."""

    task: str
    n_boot: int
    seed: int
    shared_levels: bool
    kind: str | None = None


def score(scoring: Scoring, p: Pooled, data: TaskData) -> list[dict[str, Any]]:
    """The rows of one pooled cell."""
    return score_rows(p, data.y, data.corpora, task=scoring.task, kind=scoring.kind,
                      n_classes=data.n_classes, n_boot=scoring.n_boot, seed=scoring.seed,
                      shared_levels=scoring.shared_levels)


def score_pooled(scoring: Scoring, data: TaskData, pooled: list[Pooled],
                 log: Callable[[str], None], *, n_jobs: int
                 ) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Bootstrap every pooled cell (in parallel over cells, ``n_jobs`` threads), with its
    coverage and calibration rows (``evaluation.trust_rows``), and collect its predictions."""
    def one(p: Pooled) -> list[dict[str, Any]]:
        return score(scoring, p, data) + trust_rows(p, data.y, data.corpora, task=scoring.task,
                                                    kind=scoring.kind or "ordinal")

    parts = Parallel(n_jobs=n_jobs if n_jobs > 0 else -1, prefer="threads")(
        delayed(one)(p) for p in pooled)
    rows = [r for part in parts for r in part]
    preds = pd.concat([prediction_frame(p, data.ids, data.corpora, data.y, scoring.task)
                       for p in pooled], ignore_index=True) if pooled else pd.DataFrame()
    log(f"  {len(rows)} result rows, {len(preds)} prediction rows")
    return rows, preds


def aligned(p: Pooled, order: np.ndarray) -> np.ndarray:
    """``p.pred`` in the row order ``order`` (record indices)."""
    pos = {int(i): k for k, i in enumerate(p.idx)}
    return p.pred[[pos[int(i)] for i in order]]


def paired_rows(metric: str, scoring: Scoring, data: TaskData, p: Pooled,
                refs: list[tuple[str, Pooled]]) -> list[dict[str, Any]]:
    """``diff_<metric>_vs_<ref>`` rows: paired bootstrap of ``p`` minus each reference on the
    same held-out texts, pooled and per held-out corpus."""
    corp = data.corpora[p.idx]
    groups = [("all", np.ones(len(p.idx), bool))]
    groups += [(c, corp == c) for c in dict.fromkeys(corp.tolist())]
    out = []
    for ref_name, ref in refs:
        ref_pred = aligned(ref, p.idx)
        for name, m in groups:
            yt = data.y[p.idx[m]]
            d, lo, hi = paired_bootstrap_diff(yt, p.pred[m], ref_pred[m], metric,
                                              n_classes=data.n_classes,
                                              n_boot=scoring.n_boot, seed=scoring.seed)
            out.append({"task": scoring.task, **p.key,
                        "selected_layer": None, "selected_layers": None,
                        "test_corpus": name, "levels": "all",
                        "metric": f"diff_{metric}_vs_{ref_name}", "value": d, "ci_low": lo,
                        "ci_high": hi, "n": int(m.sum())})
    return out
