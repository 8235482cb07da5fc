"""`learnerprobe train CONFIG --bundle DIR`."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
from pathlib import Path

import typer

from learnerprobe.cli import app
from learnerprobe.cli.study import configured
from learnerprobe.errors import ConfigError
from learnerprobe.textinput import escape_controls


@app.command()
def train(
    config: Path = typer.Argument(..., help="A study config (task cefr or l1)."),
    bundle: Path = typer.Option(..., "--bundle", help="Folder to write the bundle to."),
    results: Path = typer.Option(None, "--results", help="A finished run's folder: attach its "
                                 "out-of-fold test scores to the bundle card."),
    backend: str | None = typer.Option(None, "--backend", help="local or ray: where the "
                                       "activations are extracted."),
    address: str | None = typer.Option(None, "--address", help="Ray address (auto, "
                                       "ray://head:10001)."),
    workers: int | None = typer.Option(None, "--workers", help="Ray extraction actors."),
    method: str | None = typer.Option(None, "--method", help="Bundle this inductive transfer "
                                      "method (e.g. leace, thresholds; task cefr) instead of "
                                      "the best probe: variant and layer chosen by "
                                      "leave-one-corpus-out validation, refitted on all texts."),
) -> None:
    """Train the config's best validation-chosen model on all its data and save a bundle.

    The destination is checked for writability before training; the bundle's digest is printed.
    """
    from rich.console import Console

    # start-up: the training pipeline (pandas, scikit-learn)
    from learnerprobe.train import train_bundle

    console = Console(stderr=True)
    # start-up: numpy
    from learnerprobe.bundles.integrity import bundle_digest

    if backend not in (None, "local", "ray"):
        raise ConfigError(f"--backend must be local or ray, not {backend!r}")
    if method is not None:  # a transductive or unknown method is refused before any work
        # start-up: the training pipeline (pandas, scikit-learn)
        from learnerprobe.train import bundle_transfer_method

        bundle_transfer_method(method)
    # start-up: numpy (the registries)
    from learnerprobe.study.check import load_study

    cfg = load_study(config)  # read once
    # With Ray the activations (all layers) are extracted on the cluster first; training then
    # reads them from the cache exactly as with the local backend (the flags choose where the
    # activations are extracted, nothing else: training gets the config as written).
    configured(cfg, backend=backend, address=address, workers=workers, all_layers=True,
               log=console.print)
    path = train_bundle(cfg, bundle, results_dir=results, log=console.print, method=method)
    print(escape_controls(f"bundle written to {path}"))
    print(f"digest: {bundle_digest(path)}  (pin it: --expect-digest; check: learnerprobe bundle "
          "verify)")
