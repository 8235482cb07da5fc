"""`learnerprobe run CONFIG`: the study runner's command (registered on learnerprobe.cli.app)."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from learnerprobe.cli import app
from learnerprobe.errors import LearnerprobeError
from learnerprobe.study.rundir import read_run_results
from learnerprobe.textinput import escape_controls

if TYPE_CHECKING:
    from learnerprobe.config.study import StudyConfig


@app.command("run")
def run_cmd(
    config: Path = typer.Argument(..., help="Study config (TOML), e.g. configs/merlin-e5.toml."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default: the "
                                    "config's `output`, else runs/<name>)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout "
                                 "(progress and stage times go to stderr)."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.html."),
    backend: str | None = typer.Option(None, "--backend", help="local or ray (overrides the "
                                       "config's [execution] backend)."),
    address: str | None = typer.Option(None, "--address", help="Ray address (auto, "
                                       "ray://head:10001)."),
    workers: int | None = typer.Option(None, "--workers", help="Ray extraction actors."),
) -> None:
    """Run a study: extract -> probe -> evaluate -> report (resumes from cached cells)."""
    from rich.console import Console

    # start-up: the study pipeline (pandas, scikit-learn)
    from learnerprobe.study.runner import run

    console = Console(stderr=as_json)

    def log(s: str) -> None:
        console.print(s, markup=False, highlight=False)

    # start-up: numpy (the registries)
    from learnerprobe.study.check import load_study

    cfg = load_study(config)  # read once; the runner gets the loaded config
    eff = configured(cfg, backend=backend, address=address, workers=workers, log=log)
    # config.toml: the file as written, unless the flags changed the config
    res = run(eff, out, source=config if eff is cfg else None, log=log, report=not no_report)
    d = res.results
    sel = d[(d.metric == "qwk") & d.layer.isin(["selected", "none"]) & (d.test_corpus == "all")
            & (d.levels == "all")]
    if as_json:
        print(json.dumps({
            "out": str(res.out), "timings": res.timings,
            "qwk": sel[["model", "mode", "protocol", "probe", "selected_layer", "value",
                        "ci_low", "ci_high", "n"]].to_dict(orient="records"),
        }, default=str))
        return
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="QWK, validation-chosen layer, pooled test texts (95% CI)")
    for c in ("model", "mode", "protocol", "probe", "layer", "QWK"):
        t.add_column(c)
    for _, r in sel.iterrows():
        layer = "" if r.layer == "none" else f"{r.selected_layer} ({r.selected_layers})"
        t.add_row(*(escape(str(v)) for v in (
            r.model, r["mode"], r.protocol, r.probe, layer,
            f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]")))
    console.print(t)
    report = f"  report: {res.out / 'report.html'}" if not no_report else ""
    console.print(escape_controls(f"results: {res.out / 'results.csv'}{report}"), markup=False,
                  highlight=False, soft_wrap=True)


def configured(cfg: StudyConfig, *, log: Callable[[str], None], all_layers: bool = False,
               **flags: Any) -> StudyConfig:
    """The loaded config with the ``[execution]`` flags (``--backend``, ``--address``,
    ``--workers``) applied; with a Ray backend (from the file or the flags) its activations are
    filled on the cluster first (``all_layers``: every layer, as ``train`` reads them)."""
    # start-up: the study pipeline (numpy, pydantic models)
    from learnerprobe.study.cluster import prefill_activations, with_execution

    ex = with_execution(cfg.execution, **flags)
    eff = cfg if ex is cfg.execution else cfg.model_copy(update={"execution": ex})
    if eff.execution.is_ray:
        prefill_activations(eff, all_layers=all_layers, log=log)
    return eff


@app.command("results")
def results_cmd(
    run_dir: Path = typer.Argument(..., help="A finished run's output folder (results.csv and "
                                   "its completion marker manifest.json)."),
    task: str | None = typer.Option(None, "--task", help="cefr or l1 (needed if both ran)."),
    metric: list[str] | None = typer.Option(None, "--metric", "-m", help="Metric column(s); "
                                            "default qwk (cefr) or accuracy, macro_f1, top3 (l1)."),
    markdown: bool = typer.Option(False, "--markdown", help="Print Markdown tables."),
) -> None:
    """Headline table of a finished run: the validation-chosen figures with 95 % CIs."""
    import pandas as pd
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # start-up: pandas
    from learnerprobe.study.summary import (
        adapt_table,
        comparisons,
        headline,
        stability_table,
        to_markdown,
    )

    df = read_run_results(run_dir)  # refuses a crashed / unfinished run's folder
    try:
        tabs = [("headline", headline(df, task, metric)),
                ("learning curves (loco_k: k labelled texts of the held-out corpus)",
                 adapt_table(df)),
                ("paired differences", comparisons(df)),
                ("stability over seeds (re-run spread of the headline cells)",
                 stability_table(df))]
    except ValueError as e:
        raise LearnerprobeError(str(e)) from None
    console = Console()
    for title, tab in tabs:
        if tab.empty:
            continue
        if markdown:
            typer.echo(f"\n{title}\n\n{to_markdown(tab)}")
            continue
        t = Table(title=title)
        for c in tab.columns:
            t.add_column(str(c))
        for row in tab.itertuples(index=False):
            t.add_row(*["" if pd.isna(v) else escape(str(v)) for v in row])
        console.print(t)
