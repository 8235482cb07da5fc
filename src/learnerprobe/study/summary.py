"""Headline tables from a run's tidy ``results.csv``: what a paper table or a README needs.

The tidy table keeps every layer, fold summary and per-class figure; this module picks the
validation-chosen rows (``layer`` = ``selected``, or ``none`` for layer-free methods) and lays
them out as "value [CI low, CI high]" cells, with the majority rate and chance beside L1 results.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from learnerprobe.evaluation.per_corpus import CORPUS_MEAN

DEFAULT_METRICS = {"cefr": ("qwk",), "l1": ("accuracy", "macro_f1", "top3")}


def _cell(r: pd.Series, digits: int) -> str:
    v = f"{r.value:.{digits}f}"
    if pd.notna(r.get("ci_low")) and pd.notna(r.get("ci_high")):
        v += f" [{r.ci_low:.{digits}f}, {r.ci_high:.{digits}f}]"
    return v


def headline(df: pd.DataFrame, task: str | None = None, metrics: Sequence[str] | None = None,
             digits: int = 3) -> pd.DataFrame:
    """One row per system (CEFR: mode x protocol x probe; L1: method), one column per metric
    (metrics a run lacks, such as top-3 with three L1s, are left out).

    Raises ValueError when the table holds no rows for the task or metrics.
    """
    tasks = sorted(df.task.dropna().unique())
    task = task or (tasks[0] if len(tasks) == 1 else None)
    if task is None:
        raise ValueError(f"results hold several tasks {tasks}; choose one with task=")
    d = df[df.task == task]
    metrics = list(metrics or DEFAULT_METRICS.get(task, ("accuracy",)))
    keep = d.metric.isin(metrics)
    if task != "l1":  # L1 rows are already one per method, at the validation-chosen layer
        keep &= d.layer.astype(str).isin(["selected", "none", "nested"])  # nested: transfer
    means = d.iloc[:0]
    if "test_corpus" in d:
        means = d[keep & d.test_corpus.astype(str).eq(CORPUS_MEAN)]
        keep &= d.test_corpus.astype(str).eq("all")
    sel = d[keep]
    if sel.empty:
        raise ValueError(f"no {task} rows for metrics {metrics} at the selected layer")
    index = ["probe", "model"] if task == "l1" else ["mode", "protocol", "probe", "model"]
    sel = sel.assign(cell=sel.apply(lambda r: _cell(r, digits), axis=1))
    if "seed" in sel and sel.seed.nunique() > 1:
        index.append("seed")
    tab = sel.pivot_table(index=index, columns="metric", values="cell", aggfunc="first")
    tab = tab[[m for m in metrics if m in tab.columns]]
    metrics = list(tab.columns)
    if len(means) and task != "l1":  # mean per-corpus score beside the pooled one
        means = means.assign(cell=means.apply(lambda r: _cell(r, digits), axis=1))
        mt = means.pivot_table(index=index, columns="metric", values="cell", aggfunc="first")
        for m in metrics:
            if m in mt.columns:
                tab[f"{m} (mean per corpus)"] = mt[m].reindex(tab.index)
    if task == "l1":
        chosen = (sel.drop_duplicates(index).set_index(index)["selected_layer"]
                  if "selected_layer" in sel else None)
        if chosen is not None:
            tab.insert(0, "layer", chosen.reindex(tab.index).map(
                lambda v: "" if pd.isna(v) else str(int(v))))
        n = sel[sel.metric == metrics[0]].drop_duplicates(index).set_index(index)["n"]
        tab["n"] = n.reindex(tab.index).astype("Int64")
        for m in ("majority_rate", "chance"):
            v = d.loc[d.metric == m, "value"]
            if len(v):
                tab[m] = f"{v.iloc[0]:.{digits}f}"
        first = metrics[0]
        order = sel[sel.metric == first].set_index(index)["value"].groupby(level=index).first()
        tab = tab.loc[order.sort_values(ascending=False).index]
    return tab.reset_index()


def comparisons(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Paired-bootstrap difference rows (``diff_*``) as "system, metric, difference [CI]",
    with the test corpus (``all`` = pooled) and, for transfer methods, whether the method is
    transductive (adapts to the unlabeled held-out texts)."""
    d = df[df.metric.astype(str).str.startswith("diff_")]
    if d.empty:
        return pd.DataFrame(columns=["probe", "metric", "difference", "n"])
    out = pd.DataFrame({"probe": d.probe.values, "metric": d.metric.values,
                        "difference": [_cell(r, digits) for _, r in d.iterrows()],
                        "n": d.n.values})
    if "k" in d and d.k.notna().any():  # loco_k rows: k labelled texts of the held-out corpus
        out.insert(1, "k", d.k.map(lambda v: "" if pd.isna(v) else str(int(v))).values)
    if "test_corpus" in d:
        out.insert(1, "test_corpus", d.test_corpus.astype(str).values)
    if "transductive" in d and d.transductive.notna().any():
        out.insert(1, "transductive", d.transductive.map(
            lambda v: "yes" if v is True or v == "True" else "").values)
    return out


def transfer_table(df: pd.DataFrame, metric: str = "qwk", digits: int = 3) -> pd.DataFrame:
    """Transfer methods (rows) x held-out corpus and pooled (columns): the score, its paired
    difference to the plain probe and to the surface baseline, each "value [CI]"; the
    surface baseline's own row first. Empty when the run has no transfer stage."""
    d = df[df.layer.astype(str).eq("nested")]
    if "levels" in d:
        d = d[d.levels.astype(str).eq("all")]
    if d.empty:
        return pd.DataFrame()
    surf = df[(df.probe == "surface") & (df.protocol == "loco") & (df.metric == metric)
              & (df.levels.astype(str) == "all")].drop_duplicates(["test_corpus"])
    corpora = [c for c in dict.fromkeys(d.test_corpus.astype(str)) if c != "all"] + ["all"]
    parts = {"": metric, "vs plain": f"diff_{metric}_vs_plain",
             "vs surface": f"diff_{metric}_vs_surface"}
    rows = []
    systems = list(dict.fromkeys(zip(d.model, d.probe, strict=True)))
    if len(surf):
        rows.append({"method": "surface", "transductive": "",
                     **{f"{c} {metric}": _cell(r, digits) for c in corpora
                        for _, r in surf[surf.test_corpus == c].iterrows()}})
    for model, probe in systems:
        g = d[(d.model == model) & (d.probe == probe)]
        tr = g.transductive.iloc[0] if "transductive" in g else False
        row = {"method": probe if len({m for m, _ in systems}) == 1 else f"{model}/{probe}",
               "transductive": "yes" if tr is True or tr == "True" else ""}
        for c in corpora:
            for label, m in parts.items():
                hit = g[(g.test_corpus.astype(str) == c) & (g.metric == m)]
                col = f"{c} {metric}" if not label else f"{c} {label}"
                row[col] = _cell(hit.iloc[0], digits) if len(hit) else ""
        if "chosen" in g and g.chosen.notna().any():
            row["chosen (per held-out corpus)"] = str(g.chosen.dropna().iloc[0])
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def stability_table(df: pd.DataFrame, metric: str = "qwk", digits: int = 3) -> pd.DataFrame:
    """How much the headline cells move between re-runs with other seeds (splits, inner
    validation, probe seeds): per mode x protocol x probe, the pooled and the mean per-corpus
    score's mean over seeds, range and the widest single-seed CI for scale. Empty with one seed.
    A difference between two systems smaller than this range is a re-run difference."""
    if "seed" not in df or df.seed.nunique() < 2:
        return pd.DataFrame()
    d = df[(df.metric == metric) & df.layer.astype(str).isin(["selected", "none", "nested"])
           & df.test_corpus.astype(str).isin(["all", CORPUS_MEAN])]
    if "levels" in d:
        d = d[d.levels.astype(str) == "all"]
    rows = []
    for (mode, proto, probe, corpus), g in d.groupby(["mode", "protocol", "probe", "test_corpus"],
                                                     sort=False):
        v = g.value.astype(float)
        rows.append({"mode": mode, "protocol": proto, "probe": probe,
                     "score": "pooled" if corpus == "all" else "mean per corpus",
                     "seeds": int(g.seed.nunique()), "mean": f"{v.mean():.{digits}f}",
                     "range": f"{v.min():.{digits}f}–{v.max():.{digits}f}",
                     "spread": f"{v.max() - v.min():.{digits}f}",
                     "widest CI": f"{(g.ci_high - g.ci_low).max():.{digits}f}"})
    return pd.DataFrame(rows)


def adapt_table(df: pd.DataFrame, metric: str = "qwk", digits: int = 3) -> pd.DataFrame:
    """The loco_k learning curves as a table: one row per adapt method and k, one column per
    held-out corpus, the mean per corpus and pooled ("median [95 % band over repeats]"), and
    the paired difference of the mean per corpus to each same-k baseline ("mean [CI]").
    Empty when the run has no [adapt] stage."""
    if "k" not in df or "protocol" not in df:
        return pd.DataFrame()
    d = df[(df.protocol == "loco_k") & df.k.notna()]
    if d.empty:
        return pd.DataFrame()
    q = d[d.metric == metric]
    corpora = [c for c in dict.fromkeys(q.test_corpus.astype(str)) if c not in (CORPUS_MEAN,
                                                                                 "all")]
    cols = [*corpora, CORPUS_MEAN, "all"]
    names = {CORPUS_MEAN: "mean per corpus", "all": "pooled"}
    diffs = sorted(m for m in d.metric.unique() if str(m).startswith(f"diff_{metric}_vs_"))
    rows = []
    for (probe, k), g in q.groupby(["probe", "k"], sort=False):
        row = {"method": probe, "k": int(k)}
        for c in cols:
            hit = g[g.test_corpus.astype(str) == c]
            row[names.get(c, c)] = _cell(hit.iloc[0], digits) if len(hit) else ""
        for m in diffs:
            hit = d[(d.probe == probe) & (d.k == k) & (d.metric == m)
                    & (d.test_corpus.astype(str) == CORPUS_MEAN)]
            row["Δ " + m.removeprefix(f"diff_{metric}_vs_")] = (
                _cell(hit.iloc[0], digits) if len(hit) else "")
        rows.append(row)
    out = pd.DataFrame(rows)
    order = list(dict.fromkeys(q.probe))
    return out.sort_values(["method", "k"], key=lambda s: s.map(order.index) if s.name ==
                           "method" else s).reset_index(drop=True)


def to_markdown(tab: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    cols = [str(c) for c in tab.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in tab.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |")
    return "\n".join(lines)
