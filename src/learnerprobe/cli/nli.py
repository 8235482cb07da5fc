"""CLI of the NLI area: inspect an L1 task (counts, dropped L1s, majority rate) before a run.

The NLI experiment itself runs through the study runner: ``learnerprobe run
configs/nli-merlin-de.toml --out DIR`` (task = "l1").
"""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import json

import typer

from learnerprobe.cli import app
from learnerprobe.corpora.registry import load_corpus


@app.command("nli-task")
def nli_task(
    corpus: str = typer.Argument(..., help="Corpus name, e.g. merlin-de or cowsl2h."),
    min_texts: int = typer.Option(30, "--min-texts", min=1, help="Minimum texts per L1."),
    mask: bool = typer.Option(False, "--mask/--no-mask", help="Also run masking (slower)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show which L1s an NLI study on CORPUS would keep, their counts, majority rate and chance."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # start-up: numpy
    from learnerprobe.tasks.l1 import prepare_l1_task

    task = prepare_l1_task(load_corpus(corpus), min_texts_per_l1=min_texts, mask=mask)
    s = task.summary()
    if as_json:
        typer.echo(json.dumps(s, indent=2, default=str))
        return
    t = Table(title=f"{escape(corpus)}: L1 task (>= {min_texts} texts per L1)")
    t.add_column("L1")
    t.add_column("texts", justify="right")
    t.add_column("share", justify="right")
    for lab, n in s["counts"].items():
        t.add_row(escape(str(lab)), str(n), f"{n / s['n_texts']:.3f}")
    con = Console()
    con.print(t)
    con.print(f"{s['n_texts']} texts by {s['n_authors']} authors; majority rate "
              f"{s['majority_rate']:.3f}, chance {s['chance']:.3f}; unlabelled "
              f"{s['n_unlabelled']}; dropped (too few texts): {s['dropped_l1'] or 'none'}",
              markup=False)
