"""`learnerprobe bench study CONFIG`: per-stage times and peak memory, fitting time per probe."""

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
    synthetic: str = typer.Option(
        None, metavar="CORPORAxTEXTSxLAYERSxHIDDEN",
        help="Run the config on a synthetic study of this size (random memory-mapped "
             "activations, no corpus, no model), e.g. 7x7163x13x384."),
) -> None:
    """Run the study once with every cell fitted (cell cache off) into a temporary folder and
    print/save stage times and peak resident memory, fitting seconds per mode and probe, and
    the load average."""
    # start-up: the study pipeline (numpy, scikit-learn) loads when the command runs
    from learnerprobe.study.bench_study import bench_study, summary_lines, write_bench
    from learnerprobe.study.synthetic import SyntheticShape

    shape = SyntheticShape.parse(synthetic) if synthetic else None
    figures = bench_study(config, cache_cells=cache_cells, log=lambda s: None, synthetic=shape)
    write_bench(figures, out)
    for line in summary_lines(figures):
        typer.echo(line)
    typer.echo(f"-> {out}")
