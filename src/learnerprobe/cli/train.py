"""`learnerprobe train CONFIG --bundle DIR`."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
from pathlib import Path

import typer

from learnerprobe.cli import app


@app.command()
def train(
    config: Path = typer.Argument(..., help="A study config (task cefr or l1)."),
    bundle: Path = typer.Option(..., "--bundle", help="Folder to write the bundle to."),
    results: Path = typer.Option(None, "--results", help="A finished run's folder: attach its "
                                 "out-of-fold test scores to the bundle card."),
) -> None:
    """Train the config's best validation-chosen model on all its data and save a bundle.

    The destination is checked for writability before training; the bundle's digest is printed.
    """
    from rich.console import Console

    from learnerprobe.train import train_bundle

    console = Console(stderr=True)
    from learnerprobe.bundle import bundle_digest

    path = train_bundle(config, bundle, results_dir=results, log=console.print)
    print(f"bundle written to {path}")
    print(f"digest: {bundle_digest(path)}  (pin it: --expect-digest; check: learnerprobe bundle "
          "verify)")
