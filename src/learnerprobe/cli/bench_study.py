"""`learnerprobe bench study CONFIG`: per-stage times and fitting time per probe (both modes)."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
from pathlib import Path

import typer

from learnerprobe.cli.bench import bench_app


@bench_app.command("study")
def bench_study_cmd(
    config: Path = typer.Argument(..., help="Study config (TOML)."),
    out: Path = typer.Option(Path("bench-study.json"), help="Write the figures here as JSON."),
    cache_cells: bool = typer.Option(False, help="Reuse cached cells (default: fit every cell)."),
) -> None:
    """Run the study once with every cell fitted (cell cache off) into a temporary folder and
    print/save stage times, fitting seconds per mode and probe, and the load average."""
    # start-up: the study pipeline (numpy, scikit-learn) loads when the command runs
    from learnerprobe.study.bench_study import bench_study, summary_lines, write_bench

    figures = bench_study(config, cache_cells=cache_cells, log=lambda s: None)
    write_bench(figures, out)
    for line in summary_lines(figures):
        typer.echo(line)
    typer.echo(f"-> {out}")
