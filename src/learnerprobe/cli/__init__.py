"""The `learnerprobe` command. Each area registers its commands from its own module."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from learnerprobe.errors import LearnerprobeError

app = typer.Typer(
    name="learnerprobe",
    help="Proficiency probing and native-language identification on learner texts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _register() -> None:
    # Imported for their side effect of adding commands/sub-apps to `app`.
    import learnerprobe.cli.nli  # noqa: F401  (nli-task)
    from learnerprobe.cli import (  # noqa: F401
        bench,
        corpus,
        extract,
        models,
        nli_llm,  # noqa: F401  (bench nli-zeroshot / nli-finetune)
        predict,
        prep,
        probes,  # noqa: F401  (bench probes)
        study,
        train,
    )

    app.add_typer(bench.bench_app, name="bench", help="Benchmarks that print and save figures.")


_register()


def main() -> None:
    """Console-script entry: turn known errors into a one-line message and exit code 2."""
    try:
        app()
    except LearnerprobeError as e:
        err_console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)
