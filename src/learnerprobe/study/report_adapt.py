"""The report's adaptation section (loco_k): learning curves, then the paired differences.

Opens with QWK against k per held-out corpus and for the mean over corpora (median over the
repeated draws of the k texts and its 95 % band), with the k = 0 line (plain leave-one-corpus-
out), the IID line (the source probe's in-distribution score on that corpus) and the same-k
baselines drawn as their own curves; then the learning-curve table and the paired bootstrap
differences of each method against each same-k baseline.
"""

from __future__ import annotations

import html

import pandas as pd

from learnerprobe.evaluation.per_corpus import CORPUS_MEAN
from learnerprobe.evaluation.results import ReportSection
from learnerprobe.study.plots import _plt, _png
from learnerprobe.study.summary import adapt_table

BASELINE_STYLE = {"probe_k": ":", "surface_k": "--"}


def _iid_line(df: pd.DataFrame, source: str, corpus: str, metric: str) -> float | None:
    d = df[(df.protocol == "iid") & (df.probe == source) & (df.layer.astype(str) == "selected")
           & (df.metric == metric) & (df.test_corpus.astype(str) == corpus)
           & (df.levels.astype(str) == "all")]
    return float(d.value.iloc[0]) if len(d) else None


def learning_curves(df: pd.DataFrame, source: str = "ridge", metric: str = "qwk"
                    ) -> list[tuple[str, bytes]]:
    """One panel per held-out corpus and one for the corpus mean."""
    d = df[(df.protocol == "loco_k") & (df.metric == metric)]
    if d.empty:
        return []
    plt = _plt()
    panels = [c for c in dict.fromkeys(d.test_corpus.astype(str)) if c != "all"]
    panels = [c for c in panels if c != CORPUS_MEAN] + [c for c in panels if c == CORPUS_MEAN]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), sharey=True,
                             squeeze=False)
    for ax, corpus in zip(axes[0], panels, strict=True):
        g = d[d.test_corpus.astype(str) == corpus]
        for probe, h in g.groupby("probe", sort=False):
            h = h.sort_values("k")
            style = BASELINE_STYLE.get(str(probe), "-")
            line, = ax.plot(h.k, h.value, style, marker="o", ms=3, label=str(probe))
            ax.fill_between(h.k.astype(float), h.ci_low, h.ci_high, alpha=0.12,
                            color=line.get_color())
        k0 = g[(g.k == 0) & ~g.probe.isin(list(BASELINE_STYLE))]
        if len(k0):
            ax.axhline(float(k0.value.iloc[0]), color="grey", lw=0.8, ls="-.",
                       label="k = 0 (LOCO)")
        iid = _iid_line(df, source, corpus, metric)
        if iid is not None:
            ax.axhline(iid, color="black", lw=0.8, ls=":", label=f"IID ({source})")
        ax.set_xscale("symlog", linthresh=5)
        ks = sorted(int(k) for k in g.k.unique())
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_ylim(bottom=max(0.3, float(g.ci_low.min()) - 0.02))  # probe_k at k=5 can reach 0
        ax.set_xlabel("k labelled texts of the held-out corpus")
        ax.set_title("mean over held-out corpora" if corpus == CORPUS_MEAN
                     else f"held out: {corpus}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{metric.upper()} (median, 95 % band over draws)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return [("Learning curves: QWK against k per held-out corpus", _png(fig))]


def _table_html(tab: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in tab.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>"
                   for r in tab.itertuples(index=False))
    return f'<div class="tablewrap"><table class="adapt" id="adapt-table"><tr>{head}</tr>{rows}</table></div>'


def adapt_sections(df: pd.DataFrame) -> list[ReportSection]:
    """The adaptation section (empty without an [adapt] stage)."""
    tab = adapt_table(df)
    if tab.empty:
        return []
    note = ("<p class=\"note\">loco_k: each held-out corpus lends k labelled texts (drawn "
            "author-grouped and stratified by level, 20 draws by default); a method is fitted "
            "on those k texts only (the source probe, trained on the other corpora, is read, "
            "not refitted) and scored on the rest of that corpus minus the k texts' authors. "
            "Cells: median over draws [95 % band of the draws]. <i>probe_k</i>: a probe on the "
            "k texts alone; <i>surface_k</i>: text length refitted with the same k texts. "
            "Δ: mean over draws of the paired difference of the mean per-corpus QWK, 95 % CI "
            "from a bootstrap over draws and texts.</p>")
    return [ReportSection("Adaptation from k labelled texts (loco_k)", html=note + _table_html(tab),
                          figures=learning_curves(df))]
