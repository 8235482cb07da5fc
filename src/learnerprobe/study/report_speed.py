"""The report's precision note: which precision fitted each probe's cells (results.csv's
``probe_precision`` column, :mod:`learnerprobe.estimators.probes.precision`)."""

from __future__ import annotations

import html

import pandas as pd

from learnerprobe.evaluation.results import ReportSection


def precision_sections(df: pd.DataFrame) -> list[ReportSection]:
    """One short section naming the precision of every probe's cells (none without the
    column)."""
    if "probe_precision" not in df.columns or not len(df):
        return []
    per = df.groupby("probe")["probe_precision"].agg(lambda s: ", ".join(sorted(set(s))))
    items = "".join(f"<li>{html.escape(str(p))}: {html.escape(v)}</li>" for p, v in per.items())
    note = ("<p>Precision that fitted each probe's cells (bf16-autocast: bf16 matrix products "
            "with fp32 master weights; config key <code>probe_precision</code>).</p>")
    if "extraction_dtype" in df.columns:
        dt = df.groupby("model")["extraction_dtype"].agg(lambda s: ", ".join(sorted(set(s))))
        items += "".join(f"<li>activations of {html.escape(str(m))}: {html.escape(v)}</li>"
                         for m, v in dt.items() if v != "none")
    return [ReportSection("Probe precision", html=note + f"<ul>{items}</ul>")]
