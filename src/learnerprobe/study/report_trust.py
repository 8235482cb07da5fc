"""Report sections on whether a probe's answers can be trusted: conformal coverage and set size
per protocol (with the shortfall from nominal out of distribution), ECE, and reliability
diagrams. The numbers are the runner's ``coverage``/``set_size``/``ece`` rows
(:mod:`learnerprobe.evaluation.trust_rows`); the diagrams come from the pooled probabilities.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd

from learnerprobe.evaluation.reliability import reliability_bins
from learnerprobe.evaluation.results import NO_LAYER, SELECTED, Pooled, ReportSection
from learnerprobe.evaluation.trust_rows import NOMINAL
from learnerprobe.study import plots

PROTO = {"iid": "IID", "loco": "LOCO", "lolo": "LOLO", "loco_k": "LOCO-k"}
TRUST_METRICS = ("coverage", "set_size", "ece")


def coverage_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, mode, probe, protocol, test corpus) of the validation-chosen layer
    (and the surface baseline): coverage with its 95 % CI, the gap to nominal (percentage
    points), mean set size and ECE."""
    d = df[df.metric.isin(TRUST_METRICS) & df.layer.isin([SELECTED, NO_LAYER])
           & (df.levels == "all")]
    if d.empty:
        return pd.DataFrame()
    keys = ["model", "mode", "probe", "protocol", "test_corpus"]
    wide = d.pivot_table(index=keys, columns="metric", values="value", aggfunc="first",
                         sort=False)
    ci = d[d.metric == "coverage"].set_index(keys)[["ci_low", "ci_high", "n"]]
    out = wide.join(ci, how="left").reset_index()
    if "coverage" in out:
        out["gap_pp"] = 100 * (out["coverage"] - NOMINAL)
    return out


def _fmt(v: object, spec: str) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)


def table_html(tab: pd.DataFrame) -> str:
    head = ("<tr><th class='l'>model</th><th class='l'>mode</th><th class='l'>probe</th>"
            "<th class='l'>protocol</th><th class='l'>test corpus</th><th>n</th>"
            f"<th>coverage (nominal {NOMINAL:.0%}) [95% CI]</th><th>gap (points)</th>"
            "<th>mean set size</th><th>ECE</th></tr>")
    rows = []
    for _, r in tab.iterrows():
        cov = r.get("coverage")
        cell = "" if pd.isna(cov) else (f"{cov:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
        gap = r.get("gap_pp")
        miss = not pd.isna(gap) and r["ci_high"] < NOMINAL
        vals = [r["model"], r["mode"], r["probe"], PROTO.get(r["protocol"], r["protocol"]),
                "pooled" if r["test_corpus"] == "all" else r["test_corpus"]]
        rows.append(
            "<tr>" + "".join(f"<td class='l'>{html.escape(str(v))}</td>" for v in vals)
            + f"<td>{_fmt(r.get('n'), 'd') if not pd.isna(r.get('n')) else ''}</td>"
            + f"<td>{html.escape(cell)}</td>"
            + f"<td{' class=miss' if miss else ''}>{_fmt(gap, '+.1f')}</td>"
            + f"<td>{_fmt(r.get('set_size'), '.2f')}</td><td>{_fmt(r.get('ece'), '.3f')}</td>"
            + "</tr>")
    return ("<div class='tablewrap'><table class='summary' id='coverage-table'>" + head
            + "".join(rows) + "</table></div>")


def shortfall_text(tab: pd.DataFrame) -> str:
    """The sentence a user can act on: how far coverage falls below nominal per protocol."""
    if "coverage" not in tab:
        return ""
    pooled = tab[(tab.test_corpus == "all") & tab.coverage.notna()]
    parts = []
    for proto, g in pooled.groupby("protocol", sort=False):
        lo, hi = g.coverage.min(), g.coverage.max()
        parts.append(f"{PROTO.get(proto, proto)}: {lo:.1%}–{hi:.1%} over {len(g)} probe rows "
                     f"(gap {100 * (lo - NOMINAL):+.1f} to {100 * (hi - NOMINAL):+.1f} points)")
    held = tab[(tab.protocol != "iid") & (tab.test_corpus != "all") & tab.coverage.notna()]
    worst = ""
    if len(held):
        w = held.loc[held.coverage.idxmin()]
        worst = (f" Worst held-out corpus: {html.escape(str(w.test_corpus))} with "
                 f"{html.escape(str(w.probe))} ({w.coverage:.1%}, {w.gap_pp:+.1f} points).")
    return (f"<p class='note'>Pooled coverage of the {NOMINAL:.0%} sets, "
            + "; ".join(html.escape(p) for p in parts) + "." + worst
            + " Sets are calibrated on each fold's validation texts (training side). Under "
            "IID they should hold about the nominal share; out of distribution the shortfall "
            "is how much a bundle's stated coverage overstates what it delivers on a new "
            "corpus.</p>")


def reliability_figures(pooled: Sequence[Pooled], y: np.ndarray) -> list[tuple[str, bytes]]:
    """Reliability diagrams (accuracy vs confidence of the top label), one panel per protocol,
    one line per probe at the validation-chosen layer, one figure per (model, mode)."""
    plt = plots._plt()
    out = []
    cells = [p for p in pooled if p.proba is not None and p.key["layer"] in (SELECTED, NO_LAYER)]
    for model, mode in dict.fromkeys((p.key["model"], p.key["mode"]) for p in cells):
        mine = [p for p in cells if p.key["mode"] == mode
                and p.key["model"] in (model, "surface")]
        protos = list(dict.fromkeys(p.key["protocol"] for p in mine))
        fig, axes = plt.subplots(1, len(protos), figsize=(4.2 * len(protos), 4), squeeze=False)
        for ax, proto in zip(axes[0], protos, strict=True):
            ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
            for p in (q for q in mine if q.key["protocol"] == proto):
                r = reliability_bins(p.proba, y[p.idx])
                ok = r["count"] > 0
                ax.plot(r["confidence"][ok], r["accuracy"][ok], marker="o", ms=3,
                        label=p.key["probe"])
            ax.set(title=PROTO.get(proto, proto), xlabel="confidence (top label)",
                   ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
            ax.legend(fontsize=7)
        out.append((f"Reliability: {model}, {mode} (below the diagonal: overconfident)",
                    plots._png(fig)))
    return out


def trust_sections(df: pd.DataFrame, pooled: Sequence[Pooled], y: np.ndarray
                   ) -> list[ReportSection]:
    """The coverage and calibration sections (none when the run has no such rows)."""
    tab = coverage_table(df)
    if tab.empty:
        return []
    return [ReportSection("Prediction sets: coverage and size per protocol",
                          html=shortfall_text(tab) + table_html(tab)),
            ReportSection("Calibration: expected calibration error and reliability",
                          html="<p class='note'>ECE of the top label (10 bins) is in the table "
                               "above; below, accuracy against confidence.</p>",
                          figures=reliability_figures(pooled, y) if len(pooled) else [])]
