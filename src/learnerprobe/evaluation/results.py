"""Tidy results: one row per (cell, layer, test corpus, level set, metric), shared by all tasks.

The schema (``RESULT_COLUMNS``) is the contract between the study runner, the NLI protocol and
the report; docs/STUDY.md describes each column. This module sits below both ``study`` and
``nli`` (which return a :class:`HookResult` to the runner) so neither imports the other's
internals. Readers of a finished run folder go through
:func:`learnerprobe.study.rundir.read_run_results`, which refuses an unfinished run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from learnerprobe.evaluation.metrics import bootstrap_all

RESULT_COLUMNS: list[str] = [
    "task", "model", "mode", "seed", "protocol", "probe", "layer", "selected_layer",
    "selected_layers", "test_corpus", "levels", "metric", "value", "ci_low", "ci_high", "n",
]
PREDICTION_COLUMNS: list[str] = [
    "task", "model", "mode", "seed", "protocol", "fold", "probe", "layer", "id", "corpus",
    "true", "pred", "proba",
]
SELECTED = "selected"  # value of `layer` for the validation-chosen layer's rows
NO_LAYER = "none"  # value of `layer` for baselines that do not use activations


@dataclass
class ReportSection:
    """A block of the HTML report: title, trusted HTML body, figures as PNG bytes."""

    title: str
    html: str = ""
    figures: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, png)


@dataclass
class HookResult:
    """What a task hook (e.g. NLI) returns to the runner: rows in RESULT_COLUMNS, etc."""

    rows: list[dict[str, Any]]
    predictions: pd.DataFrame | None = None
    sections: list[ReportSection] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pooled:
    """Out-of-fold predictions of one (model, mode, seed, protocol, probe, layer), concatenated."""

    key: dict[str, Any]  # model, mode, seed, protocol, probe, layer
    idx: np.ndarray  # record indices of the test texts (fold order)
    pred: np.ndarray
    proba: np.ndarray | None
    fold: np.ndarray  # fold name per text
    shared: np.ndarray  # bool: true label also occurs in this text's training fold
    train_labels: np.ndarray  # training labels pooled over folds (for priors)
    selected_layers: list[int] | None = None
    fold_priors: dict[str, np.ndarray] = field(default_factory=dict)  # fold -> train labels
    # each fold's inner validation texts (training side) and their probabilities from the
    # model that predicted the fold: the calibration set of conformal coverage (trust_rows)
    cal_idx: np.ndarray | None = None
    cal_proba: np.ndarray | None = None
    cal_fold: np.ndarray | None = None


def score_rows(
    p: Pooled,
    y: np.ndarray,
    corpora: np.ndarray,
    *,
    task: str,
    kind: str | None = None,
    n_classes: int,
    n_boot: int,
    seed: int,
    shared_levels: bool,
) -> list[dict[str, Any]]:
    """Rows for one pooled cell: pooled ("all") and per test corpus, all/shared levels.

    ``kind``: the labels' kind, ``"ordinal"`` or ``"nominal"`` (the task's ``label_kind``;
    default: ordinal for ``task="cefr"``, else nominal), which picks the metrics."""
    kind = kind or ("ordinal" if task == "cefr" else "nominal")
    rows: list[dict[str, Any]] = []
    text_corpus = corpora[p.idx]
    groups: list[tuple[str, np.ndarray]] = [("all", np.ones(len(p.idx), bool))]
    uniq = list(dict.fromkeys(text_corpus.tolist()))
    if len(uniq) > 1:
        groups += [(c, text_corpus == c) for c in uniq]
    sel = p.selected_layers
    if sel:
        mode_layer = int(np.bincount(np.asarray(sel)).argmax())
        sel_str = ",".join(map(str, sel))
    for name, m in groups:
        level_sets = [("all", m)]
        if shared_levels and not p.shared[m].all():
            level_sets.append(("shared", m & p.shared))
        for levels, mm in level_sets:
            if mm.sum() < 2:
                continue
            yt = y[p.idx[mm]]
            proba = None if p.proba is None else p.proba[mm]
            ci = bootstrap_all(yt, p.pred[mm], proba=proba, n_boot=n_boot, seed=seed,
                               task=kind,
                               labels=n_classes)
            for metric, (v, lo, hi) in ci.items():
                rows.append({
                    "task": task, **p.key,
                    "selected_layer": mode_layer if sel else None,
                    "selected_layers": sel_str if sel else None,
                    "test_corpus": name, "levels": levels, "metric": metric,
                    "value": float(v), "ci_low": float(lo), "ci_high": float(hi),
                    "n": int(mm.sum()),
                })
    return rows


def results_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> DataFrame with the contract columns first (extra columns kept after them)."""
    df = pd.DataFrame(list(rows))
    for c in RESULT_COLUMNS:
        if c not in df.columns:
            df[c] = None
    extra = [c for c in df.columns if c not in RESULT_COLUMNS]
    df = df[RESULT_COLUMNS + extra]
    df["layer"] = df["layer"].astype(str)
    df["selected_layer"] = df["selected_layer"].astype("Int64")
    df["seed"] = df["seed"].astype("Int64")
    df["n"] = df["n"].astype("Int64")
    return df


def prediction_frame(p: Pooled, ids: np.ndarray, corpora: np.ndarray, y: np.ndarray,
                     task: str) -> pd.DataFrame:
    """Per-text predictions of one pooled cell (probabilities as a list column)."""
    return pd.DataFrame({
        "task": task, **{k: [v] * len(p.idx) for k, v in p.key.items()},
        "fold": p.fold, "id": ids[p.idx], "corpus": corpora[p.idx],
        "true": y[p.idx].astype(np.int64), "pred": p.pred.astype(np.int64),
        "proba": list(p.proba.astype(np.float32)) if p.proba is not None else None,
    })[PREDICTION_COLUMNS]
