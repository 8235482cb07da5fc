"""`learnerprobe bench probes`: time the all-layer sweep (tuned) against the reference loop."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import json
from pathlib import Path

import typer

from learnerprobe.cli.bench import bench_app


@bench_app.command("probes")
def bench_probes(
    layers: int = typer.Option(13, help="Layers (e5-small has 13 incl. embeddings)."),
    n: int = typer.Option(1800, help="Texts (80% train, 20% test)."),
    dim: int = typer.Option(384, help="Hidden size."),
    probes: str = typer.Option("ridge,logistic,ordinal,mlp_reg,mlp_clf", help="Comma list."),
    modes: str = typer.Option("tuned,reference", help="Comma list of modes to time."),
    n_jobs: int = typer.Option(2, help="Parallel layer fits (logistic/ordinal, reference loop)."),
    seed: int = 0,
    out: Path | None = typer.Option(None, help="Write the timings here as JSON."),
) -> None:
    """Fit every probe on synthetic planted-signal activations (layers x n x dim) and print the
    seconds per probe and mode with the test QWK of the best layer."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    # start-up: scikit-learn, scipy (torch at run time)
    from learnerprobe.estimators.probes.all_layers import fit_predict_layers
    from learnerprobe.evaluation.metrics import qwk

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(layers, n, dim)).astype(np.float32)
    # The level is a noisy linear read-out whose strength peaks in the middle layers.
    strength = np.exp(-((np.arange(layers) - layers / 2) ** 2) / (layers / 2) ** 2)
    w = rng.normal(size=dim) / np.sqrt(dim)
    latent = rng.normal(size=n)
    X += (strength[:, None, None] * latent[None, :, None] * w[None, None, :] * 3).astype(
        np.float32)
    X *= 50.0  # unscaled magnitudes, as from a decoder
    y = np.digitize(latent + rng.normal(scale=0.3, size=n), [-1.0, -0.35, 0.35, 1.0])
    cut = int(n * 0.8)
    rows = []
    table = Table("probe", "mode", "seconds", "best-layer QWK")
    for probe in probes.split(","):
        for mode in modes.split(","):
            res = fit_predict_layers(X[:, :cut], y[:cut], X[:, cut:], probe, mode=mode,
                                     n_classes=5, width=dim, seed=seed, n_jobs=n_jobs)
            best = max(qwk(y[cut:], p, labels=5) for p in res["pred"])
            rows.append({"probe": probe, "mode": mode, "seconds": res["seconds"], "qwk": best})
            table.add_row(probe, mode, f"{res['seconds']:.1f}", f"{best:.3f}")
            Console().print(f"{probe} {mode}: {res['seconds']:.1f}s, best QWK {best:.3f}")
    Console().print(table)
    if out is not None:
        out.write_text(json.dumps(rows, indent=1))
