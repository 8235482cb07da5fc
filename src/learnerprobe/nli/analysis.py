"""Analyses of NLI predictions: confusion matrices, errors within language families,
and whether accuracy depends on CEFR level (and whether text length explains that).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


# ----------------------------------------------------------------------------- confusion
def confusion(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any]) -> pd.DataFrame:
    """Counts: rows = true L1, columns = predicted L1, in ``labels`` order."""
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(list(y_true), list(y_pred), labels=list(labels))
    return pd.DataFrame(cm, index=list(labels), columns=list(labels))


def row_normalise(cm: pd.DataFrame) -> pd.DataFrame:
    """Each row divided by its total (recall on the diagonal); empty rows stay 0."""
    tot = cm.sum(axis=1).replace(0, 1)
    return cm.div(tot, axis=0)


def plot_confusion(cm: pd.DataFrame, path: str | Path, title: str = "", normalise: bool = False) -> Path:
    """Heatmap PNG of a confusion matrix (counts, or row-normalised shares)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = row_normalise(cm) if normalise else cm
    k = len(cm)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.55 * k))
    im = ax.imshow(data.values, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    ax.set_xticks(range(k), cm.columns, rotation=45, ha="right")
    ax.set_yticks(range(k), cm.index)
    ax.set_xlabel("predicted L1")
    ax.set_ylabel("true L1")
    hi = float(np.nanmax(data.values)) if data.size else 1.0
    for i in range(k):
        for j in range(k):
            v = data.values[i, j]
            txt = f"{v:.2f}" if normalise else str(int(v))
            ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                    color="white" if v > 0.6 * hi else "black")
    ax.set_title(title + (" (row-normalised)" if normalise else " (counts)"), fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- families
@functools.cache
def language_families() -> dict[str, str]:
    """L1 name -> family, from the packaged table ``families.json`` (data, not logic)."""
    raw = json.loads(resources.files("learnerprobe.nli").joinpath("families.json").read_text())
    return {lang: fam for fam, langs in raw.items() if not fam.startswith("_") for lang in langs}


def family_error_share(
    y_true: Sequence[Any], y_pred: Sequence[Any], families: dict[str, str] | None = None,
    labels: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Share of misclassifications whose predicted L1 is in the true L1's family.

    ``chance_share`` is the share expected if each error picked a wrong label uniformly from
    ``labels`` (default: all labels seen), so a share above it means errors cluster by family.
    Errors involving an L1 without a family are counted in ``n_unknown`` and left out.
    """
    fam = language_families() if families is None else families
    y_true, y_pred = list(y_true), list(y_pred)
    labs = sorted(set(y_true) | set(y_pred)) if labels is None else list(labels)
    n_err = n_within = n_unknown = 0
    chance = []
    for t, p in zip(y_true, y_pred, strict=True):
        if t == p:
            continue
        n_err += 1
        if t not in fam or p not in fam:
            n_unknown += 1
            continue
        n_within += fam[t] == fam[p]
        others = [lab for lab in labs if lab != t and lab in fam]
        chance.append(np.mean([fam[o] == fam[t] for o in others]) if others else 0.0)
    n_known = n_err - n_unknown
    return {
        "n_errors": n_err,
        "n_within_family": n_within,
        "n_unknown": n_unknown,
        "share": n_within / n_known if n_known else float("nan"),
        "chance_share": float(np.mean(chance)) if chance else float("nan"),
    }


# ----------------------------------------------------------------------------- CEFR level
def accuracy_by_level(
    correct: Sequence[bool], levels: Sequence[Any], order: Sequence[Any] | None = None
) -> dict[str, Any]:
    """Accuracy per CEFR level, chi-square test of independence (level x correct) and Cramér's V.

    Uses ``scipy.stats.chi2_contingency`` and ``scipy.stats.contingency.association``.
    Levels that are None are left out.
    """
    from scipy.stats import chi2_contingency
    from scipy.stats.contingency import association

    df = pd.DataFrame({"level": list(levels), "correct": np.asarray(correct, dtype=bool)})
    df = df[df["level"].notna()]
    lv = list(order) if order is not None else sorted(df["level"].unique())
    lv = [x for x in lv if (df["level"] == x).any()]
    table = np.array([[int(((df.level == x) & df.correct).sum()),
                       int(((df.level == x) & ~df.correct).sum())] for x in lv])
    per_level = pd.DataFrame({
        "level": lv, "n": table.sum(axis=1), "correct": table[:, 0],
        "accuracy": table[:, 0] / np.maximum(table.sum(axis=1), 1),
    })
    out: dict[str, Any] = {"per_level": per_level, "table": table}
    if len(lv) >= 2 and (table.sum(axis=0) > 0).all():
        res = chi2_contingency(table, correction=False)
        out.update(chi2=float(res.statistic), p_value=float(res.pvalue), dof=int(res.dof),
                   cramers_v=float(association(table, method="cramer", correction=False)))
    else:
        out.update(chi2=float("nan"), p_value=float("nan"), dof=0, cramers_v=float("nan"))
    return out


def correctness_logit(
    correct: Sequence[bool], level: Sequence[float], length: Sequence[float]
) -> pd.DataFrame:
    """Logistic regression of correctness on ordinal level, alone and controlling for length.

    Two statsmodels Logit fits: ``correct ~ level`` and ``correct ~ level + log(length)``
    (length in words). If the level coefficient shrinks towards 0 once length is in, text
    length (not level as such) explains why some levels are easier. Returns one row per
    (model, term) with coefficient, standard error, p-value and 95% CI.
    """
    import statsmodels.api as sm

    y = np.asarray(correct, dtype=float)
    lev = np.asarray(level, dtype=float)
    loglen = np.log1p(np.asarray(length, dtype=float))
    ok = ~(np.isnan(lev) | np.isnan(loglen))
    y, lev, loglen = y[ok], lev[ok], loglen[ok]
    rows = []
    designs = {
        "level": pd.DataFrame({"level": lev}),
        "level+log_length": pd.DataFrame({"level": lev, "log_length": loglen}),
    }
    for name, Xd in designs.items():
        res = sm.Logit(y, sm.add_constant(Xd), missing="drop").fit(disp=0)
        ci = res.conf_int()
        for term in res.params.index:
            rows.append({
                "model": name, "term": term, "coef": float(res.params[term]),
                "se": float(res.bse[term]), "p_value": float(res.pvalues[term]),
                "ci_low": float(ci.loc[term, 0]), "ci_high": float(ci.loc[term, 1]),
                "n": int(res.nobs), "pseudo_r2": float(res.prsquared),
            })
    return pd.DataFrame(rows)
