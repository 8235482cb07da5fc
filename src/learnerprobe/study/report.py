"""The self-contained HTML report (jinja2 + base64 PNGs): summary table first, then figures.

Task hooks add sections through :class:`~learnerprobe.evaluation.results.ReportSection`.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from learnerprobe.evaluation.residuals import residual_analysis
from learnerprobe.evaluation.results import NO_LAYER, SELECTED, Pooled, ReportSection
from learnerprobe.study import plots
from learnerprobe.study.report_adapt import adapt_sections
from learnerprobe.study.report_speed import precision_sections
from learnerprobe.study.report_trust import trust_sections
from learnerprobe.study.summary import transfer_table
from learnerprobe.tasks import get_task

NESTED = "nested"  # layer value of transfer rows (learnerprobe.study.transfer)
PROTO_NAMES = {"iid": "IID", "loco": "leave-one-corpus-out", "lolo": "leave-one-language-out"}


def _fmt(r: pd.Series) -> str:
    return f"{r.value:.3f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"


def _cell_html(v: Any) -> str:
    """A "value [low, high]" cell on two lines (the interval smaller), so wide tables fit."""
    text = html.escape(str(v))
    if " [" in text:
        value, _, ci = text.partition(" [")
        return f'{value}<br><span class="ci">[{ci}</span>'
    return text


def summary_table(df: pd.DataFrame, metric: str = "qwk") -> pd.DataFrame:
    """Validation-chosen layer and scores per probe; surface baseline as its own rows.

    Columns are (protocol : test corpus [: shared levels]) x mode, so reference and tuned sit
    side by side.
    """
    d = df[(df.metric == metric) & df.layer.isin([SELECTED, NO_LAYER])].copy()
    if d.empty:
        return pd.DataFrame()
    d["column"] = [
        f"{PROTO_NAMES.get(p, p)}: {'pooled' if t == 'all' else t}"
        + ("" if lv == "all" else " (shared levels)")
        for p, t, lv in zip(d.protocol, d.test_corpus, d.levels, strict=True)
    ]
    d["cell"] = [_fmt(r) for _, r in d.iterrows()]
    d["row_model"] = np.where(d.probe == "surface", "—", d.model)
    tab = d.pivot_table(index=["row_model", "probe"], columns=["column", "mode"], values="cell",
                        aggfunc="first", sort=False)
    layers = d[d.layer == SELECTED].drop_duplicates(["model", "probe", "mode", "protocol"])
    for (mode, proto), g in layers.groupby(["mode", "protocol"], sort=False):
        name = (f"layer ({PROTO_NAMES.get(proto, proto)}; per fold)", mode)
        vals = {(r.model, r.probe): f"{r.selected_layer} ({r.selected_layers})"
                for _, r in g.iterrows()}
        tab[name] = [vals.get(k, "") for k in tab.index]
    first = [c for c in tab.columns if str(c[0]).startswith("layer")]
    tab = tab[first + [c for c in tab.columns if c not in first]].fillna("")
    tab.index.names = ["model", "probe"]
    return tab


def _table_html(tab: pd.DataFrame) -> str:
    if tab.empty:
        return "<p>No selected-layer results.</p>"
    head1 = "".join(f'<th>{html.escape(str(c[0]))}</th>' for c in tab.columns)
    head2 = "".join(f'<th>{html.escape(str(c[1]))}</th>' for c in tab.columns)
    rows = []
    for idx, r in tab.iterrows():
        cls = ' class="surface"' if idx[1] == "surface" else ""
        cells = "".join(f"<td>{_cell_html(v)}</td>" for v in r.values)
        rows.append(f'<tr{cls}><td class="l">{html.escape(idx[0])}</td>'
                    f'<td class="l">{html.escape(idx[1])}</td>{cells}</tr>')
    # cells wrap (value over interval) and the wrapper scrolls rather than overflow the page
    return (f'<div class="tablewrap"><table class="summary" id="summary-table"><tr>'
            f'<th class="l">model</th><th class="l">probe</th>{head1}</tr>'
            f'<tr><th></th><th></th>{head2}</tr>' + "".join(rows) + "</table></div>")


def transfer_html(df: pd.DataFrame) -> str:
    """The transfer table (``study.summary.transfer_table``): methods x held-out corpus with
    paired differences to the plain probe and the surface baseline; empty without one."""
    tab = transfer_table(df)
    if tab.empty:
        return ""
    # one column per held-out corpus (and pooled): score, then the two paired differences
    corpora = [c[: -len(" qwk")] for c in tab.columns if c.endswith(" qwk")]
    head = ('<th class="l">method</th><th class="l">transductive</th>'
            + "".join(f"<th>{html.escape('pooled' if c == 'all' else 'held out: ' + c)}"
                      "<br><small>QWK / vs plain / vs surface</small></th>" for c in corpora)
            + '<th class="l">chosen (nested LOCO, per held-out corpus)</th>')
    rows = []
    for _, r in tab.iterrows():
        cls = ' class="surface"' if r["method"] == "surface" else ""
        cells = [f'<td class="l">{html.escape(str(r["method"]))}</td>',
                 f'<td class="l">{html.escape(str(r["transductive"]))}</td>']
        for c in corpora:
            parts = [str(r.get(f"{c} {k}", "") or "") for k in ("qwk", "vs plain", "vs surface")]
            lines = [f"<b>{_cell_html(parts[0])}</b>"] + [
                f'<span class="diff">{lab} {_cell_html(v)}</span>'
                for lab, v in (("Δplain", parts[1]), ("Δsurface", parts[2])) if v]
            cells.append("<td>" + "<br>".join(lines) + "</td>")
        chosen = str(r.get("chosen (per held-out corpus)", "") or "")
        cells.append(f'<td class="l chosen">{html.escape(chosen)}</td>')
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    note = ('<p class="note">Held-out corpus = the leave-one-corpus-out test corpus. Each '
            "method's variant and layer are chosen by <b>nested</b> leave-one-corpus-out "
            "inside the training corpora (each held out in turn), never on the held-out "
            "corpus. <i>vs plain</i> / <i>vs surface</i>: paired bootstrap difference of QWK "
            "on the same texts with its 95% CI; an interval above 0 is a reliable gain. "
            "<i>transductive</i>: the method adapts to the unlabeled held-out texts (never "
            "their labels).</p>")
    return (note + '<div class="tablewrap"><table class="transfer" id="transfer-table"><tr>'
            + head + "</tr>" + "".join(rows) + "</table></div>")


def residual_rows(pooled: Sequence[Pooled], y: np.ndarray, corpora: np.ndarray,
                  n_classes: int) -> list[dict[str, Any]]:
    """Residual analysis (learnerprobe.evaluation.residuals) of every selected-layer cell and test
    corpus."""
    out = []
    for p in pooled:
        if p.key["layer"] not in (SELECTED, NO_LAYER, NESTED):
            continue
        if p.key["protocol"] == "iid":
            parts = [("all", np.ones(len(p.idx), bool), p.train_labels)]
        else:
            parts = [(f, p.fold == f, p.fold_priors[f]) for f in dict.fromkeys(p.fold)]
        for name, m, train in parts:
            res = residual_analysis(y[p.idx[m]], p.pred[m], n_classes=n_classes,
                                    train_labels=train)
            flat = {k: float(v) for k, v in res.items()
                    if isinstance(v, (int, float, np.floating, np.integer))}
            flat.update({f"entropy_{k}": v for k, v in res.get("entropy", {}).items()})
            flat.update({f"js_{k}": v for k, v in res.get("js", {}).items()})
            out.append({**{k: v for k, v in p.key.items() if k != "layer"},
                        "test_corpus": name, **flat})
    return out


def write_report(path: Path, df: pd.DataFrame, pooled: Sequence[Pooled], data: Any,
                 sections: Sequence[ReportSection], manifest: dict[str, Any],
                 timings: dict[str, float], *, task: str, name: str,
                 models: Sequence[str]) -> Path:
    """Render report.html (and residuals.csv next to it for the cefr task); ``task``,
    ``name``, ``models``: the study's."""
    all_sections: list[ReportSection] = []
    lead: list[ReportSection] = []
    summary_html = ""
    kind = get_task(task)  # ordinal probe tasks get curves, transfer, residuals, confusions
    if kind.uses_probes and kind.label_kind == "ordinal" and len(df):
        summary_html = _table_html(summary_table(df))
        t_html = transfer_html(df)
        if t_html:  # what the transfer methods do to the label mix comes first
            lead.append(ReportSection(
                "Transfer to a held-out corpus: predicted vs true level distributions",
                figures=plots.transfer_distributions(pooled, data.y, data.labels)))
            lead.append(ReportSection("Transfer methods: paired comparisons", html=t_html))
        lead += adapt_sections(df)  # loco_k learning curves (study.report_adapt), if any
        all_sections.append(ReportSection("Layer curves", figures=plots.layer_curves(df)))
        all_sections.append(ReportSection(
            "Transfer between corpora", figures=plots.transfer_matrix(df)))
        if pooled:
            res_html = ""
            res = pd.DataFrame(residual_rows(pooled, data.y, data.corpora, data.n_classes))
            if len(res):
                res.to_csv(Path(path).parent / "residuals.csv", index=False)
                res_html = ('<div class="tablewrap">'
                            + res.to_html(index=False, float_format=lambda v: f"{v:.3f}",
                                          classes="residuals", border=0) + "</div>")
            all_sections.append(ReportSection(
                "Residuals: does the probe collapse out of distribution?", html=res_html,
                figures=plots.collapse(pooled, data.y, data.corpora, data.labels)
                + plots.signed_error(pooled, data.y, data.labels)))
            all_sections.append(ReportSection(
                "Confusion matrices", figures=plots.confusion_matrices(pooled, data.y,
                                                                       data.labels)))
    elif len(df):  # other tasks: generic table of pooled scores
        d = df[(df.test_corpus == "all") & (df.levels == "all")]
        summary_html = d.to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0)
    all_sections.extend(trust_sections(df, pooled, data.y) if len(df) and data is not None else [])
    all_sections.extend(sections)
    all_sections.extend(precision_sections(df))
    env = Environment(loader=PackageLoader("learnerprobe.study", "templates"),
                      autoescape=select_autoescape(["html"]))
    def views(secs: Sequence[ReportSection]) -> list[dict[str, Any]]:
        return [{"title": s.title, "html": s.html,
                 "images": [(c, base64.b64encode(b).decode("ascii")) for c, b in s.figures]}
                for s in secs]

    view = views(all_sections)
    text = env.get_template("report.html").render(
        title=f"learnerprobe study: {name}", manifest=manifest, models=list(models),
        summary_html=summary_html, sections=view, lead_sections=views(lead),
        timings=timings)
    Path(path).write_text(text, encoding="utf-8")
    write_figures(Path(path).parent / "figures", lead + all_sections)
    return Path(path)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "figure"


def write_figures(folder: Path, sections: Sequence[ReportSection]) -> list[Path]:
    """The report's figures as PNG files too, so a paper or slide can use them without
    unpacking the HTML: ``NN-section-title-i.png`` in report order."""
    out: list[Path] = []
    n = 0
    for s in sections:
        for i, (_caption, png) in enumerate(s.figures):
            n += 1
            if not out:
                folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{n:02d}-{_slug(s.title)}-{i + 1}.png"
            path.write_bytes(png)
            out.append(path)
    return out
