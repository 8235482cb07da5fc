"""Result rows on whether a cell's probabilities can be trusted: conformal ``coverage`` and
``set_size`` at a nominal coverage, and ``ece`` (top-label expected calibration error), in the
runner's ``RESULT_COLUMNS`` (one metric per row, pooled ``all`` and per test corpus).

Coverage is measured fold by fold: each outer fold's sets are calibrated on that fold's inner
validation texts (``Pooled.cal_*``: the training side, scored by the model that predicted the
test fold and never trained on them) and applied to its test texts, so no test text informs its
own set. Under IID the result should sit at the nominal coverage; under LOCO the calibration
texts come from the training corpora and the shortfall measures how far a bundle's stated
coverage can be trusted on a new corpus. Works for any protocol whose cells keep their
validation probabilities (iid, loco, lolo, loco_k).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from learnerprobe.evaluation import conformal
from learnerprobe.evaluation.reliability import ece
from learnerprobe.evaluation.results import Pooled

NOMINAL = 0.9  # the coverage the study reports (a bundle's `predict --coverage` default)


def fold_sets(p: Pooled, y: np.ndarray, kind: str, coverage: float = NOMINAL
              ) -> np.ndarray | None:
    """Boolean sets (texts in ``p.idx`` order x K), each fold calibrated on its own
    validation texts; None when the cell keeps no validation probabilities."""
    if p.proba is None or p.cal_proba is None or p.cal_idx is None or p.cal_fold is None:
        return None
    out = np.zeros(p.proba.shape, dtype=bool)
    for f in dict.fromkeys(p.fold.tolist()):
        t, c = p.fold == f, p.cal_fold == f
        if not c.any():
            return None
        out[t] = conformal.split_conformal(p.cal_proba[c], y[p.cal_idx[c]], p.proba[t], kind,
                                           coverage)
    return out


def trust_rows(p: Pooled, y: np.ndarray, corpora: np.ndarray, *, task: str, kind: str,
               coverage: float = NOMINAL) -> list[dict[str, Any]]:
    """``coverage`` (Wilson 95 % CI), ``set_size`` and ``ece`` rows for one pooled cell;
    none without probabilities (coverage rows only where validation probabilities exist)."""
    if p.proba is None:
        return []
    s = fold_sets(p, y, kind, coverage)
    yt = y[p.idx]
    text_corpus = corpora[p.idx]
    groups = [("all", np.ones(len(p.idx), bool))]
    uniq = list(dict.fromkeys(text_corpus.tolist()))
    if len(uniq) > 1:
        groups += [(c, text_corpus == c) for c in uniq]
    sel = p.selected_layers
    base = {"task": task, **p.key, "levels": "all",
            "selected_layer": int(np.bincount(np.asarray(sel)).argmax()) if sel else None,
            "selected_layers": ",".join(map(str, sel)) if sel else None}
    rows: list[dict[str, Any]] = []
    for name, m in groups:
        n = int(m.sum())
        if n < 2:
            continue
        e = ece(p.proba[m], yt[m])
        rows.append({**base, "test_corpus": name, "metric": "ece", "value": e,
                     "ci_low": float("nan"), "ci_high": float("nan"), "n": n})
        if s is None:
            continue
        cov, size = conformal.coverage_and_size(s[m], yt[m])
        lo, hi = proportion_confint(round(cov * n), n, alpha=0.05, method="wilson")
        rows.append({**base, "test_corpus": name, "metric": "coverage", "value": cov,
                     "ci_low": float(lo), "ci_high": float(hi), "n": n})
        rows.append({**base, "test_corpus": name, "metric": "set_size", "value": size,
                     "ci_low": float("nan"), "ci_high": float("nan"), "n": n})
    return rows
