"""`learnerprobe bundle verify DIR`: check a bundle completely and print its content digest."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import json
from pathlib import Path

import typer

from learnerprobe.cli import app
from learnerprobe.textinput import escape_controls

bundle_app = typer.Typer(no_args_is_help=True, help="Inspect and verify trained-model bundles.")
app.add_typer(bundle_app, name="bundle")


@bundle_app.command("verify")
def verify(
    path: Path = typer.Argument(..., help="A bundle folder."),
    expect_digest: str = typer.Option(None, "--expect-digest",
                                      help="Refuse the bundle unless its digest is this sha256."),
    weights: bool = typer.Option(True, "--weights/--no-weights",
                                 help="Also check the pinned model weights (hidden-state bundles)."),
    allow_version_mismatch: bool = typer.Option(False, "--allow-version-mismatch"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Verify everything `predict` will use: files, manifest schema and seal, the model's source
    (a registry model, a hub id or a folder under the model cache; no custom code), estimator
    types, zip sizes and token patterns, finite outputs on the bundle's own check inputs for the
    skops estimator and its array form, and (optionally) the model weights; print the digest to
    pin with --expect-digest. Exit code 2 with a message when any check fails."""
    # start-up: numpy
    from learnerprobe.bundles.io import load_bundle

    b = load_bundle(path, expect_digest, allow_version_mismatch=allow_version_mismatch)
    est = b.load_estimator()
    arrays = b.load_array_estimator()
    limits = b.load_limits()  # checked like the estimator (shapes, ranges, finite values)
    hidden = b.manifest["preprocessing"]["features"] == "hidden"
    checked_weights = False
    if hidden and weights:
        # start-up: numpy
        from learnerprobe.predict import _check_weights

        _check_weights(b)
        checked_weights = True
    m = b.manifest
    info = {
        "path": str(b.path), "digest": b.digest, "task": m["task"], "method": m["method"],
        "labels": m["labels"], "estimator": type(est).__name__,
        "array_form": arrays is not None, "outputs_finite": True,
        "model": (m.get("model") or {}).get("name"), "layer": m.get("layer"),
        "weights_sha256": (m.get("weights") or {}).get("sha256"),
        "weights_checked": checked_weights, "files": len(m["files"]) + 1,
        "digest_pinned": expect_digest is not None,
        "prediction_sets": limits is not None,
        "validation_ece": (m.get("applicability") or {}).get("validation_ece"),
    }
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(escape_controls(
        f"ok: {b.path} ({m['task']}, {m['method']}, {len(m['labels'])} labels"
        + (f", {info['model']} layer {m['layer']}" if hidden else "") + ")"))
    if hidden and not checked_weights:
        typer.echo("model weights not checked (--no-weights)")
    typer.echo(escape_controls(_limits_line(m)))
    typer.echo(f"digest: {b.digest}")


def _limits_line(m: dict) -> str:
    """The card's calibration and applicability statement."""
    a = m.get("applicability")
    if a is None:
        return ("no prediction sets or applicability flags (trained before them; retrain to "
                "get them)")
    u = a.get("unfamiliar")
    return (f"calibration: validation ECE {a['validation_ece']:.3f} on {a['n_calibration']} "
            f"validation texts (the conformal calibration set); flags: language (trained on "
            f"{', '.join(a['languages'])}), length ({a['length']['low']}–{a['length']['high']} "
            "words), unfamiliar ("
            + (f"Mahalanobis > {u['threshold']:.2f})" if u else "not available: text features)"))
