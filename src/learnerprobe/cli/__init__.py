"""The `learnerprobe` command. Each area registers its commands from its own module."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import sys

import typer
from rich.console import Console

from learnerprobe.cli._lazy import lazy_group
from learnerprobe.cli.bench import bench_app
from learnerprobe.errors import LearnerprobeError
from learnerprobe.outputs import WRITE_ERRNOS, write_error_message

# The top-level commands: each area's module is imported only when its command runs (or for the
# full ``--help``). Order = the order ``--help`` lists them in.
_COMMANDS = {"nli-task": "nli", "extract": "extract", "predict": "predict", "serve": "predict",
             "mask": "prep", "run": "study", "results": "study", "train": "train", "adapt": "adapt",
             "bundle": "bundle", "corpus": "corpus", "models": "models", "bench": "bench"}


app = typer.Typer(
    cls=lazy_group(_COMMANDS, lambda: app),
    name="learnerprobe",
    help="Proficiency probing and native-language identification on learner texts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _register() -> None:
    # `bench` is a sub-app whose own commands load lazily (cli/bench.py); the other areas'
    # modules are imported by the lazy group when their command is used.
    app.add_typer(bench_app, name="bench", help="Benchmarks that print and save figures.")


_register()


def _error(message: str) -> None:
    """Print ``error: MESSAGE`` on one line; the message is shown verbatim (no rich markup:
    "[nli]" must stay visible and a path such as "[/bold]" must not break the printer) but with
    control characters escaped (a file name or label holding an escape sequence must not drive
    the terminal)."""
    import re

    from rich.text import Text

    # start-up: textinput loads pydantic, needed only to print an error
    from learnerprobe.textinput import escape_controls

    shown = escape_controls(" ".join(re.split(r"\r?\n", str(message))))
    line = Text("error:", style="bold red")
    line.append(" " + shown)
    try:
        err_console.print(line, soft_wrap=True, highlight=False)
    except Exception:  # a broken console must not turn a clear error into a traceback
        print(f"error: {shown}", file=sys.stderr)


def main() -> None:
    """Console-script entry: turn known errors into a one-line message and exit code 2.

    User-facing errors (LearnerprobeError) and "cannot write" OS errors (disk full, read-only,
    not a folder...) exit with 2, Ctrl-C with 130, without a traceback. Usage errors are
    click's (exit 2)."""
    try:
        app()
    except LearnerprobeError as e:
        _error(str(e))
        sys.exit(2)
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(130)
    except OSError as e:
        if e.errno not in WRITE_ERRNOS:
            raise
        _error(write_error_message(e))
        sys.exit(2)
