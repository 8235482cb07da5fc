"""CLI commands of the preparation area: `learnerprobe mask` (registered on learnerprobe.cli.app)."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from learnerprobe.cli import app
from learnerprobe.errors import ConfigError


@app.command("mask")
def mask_cmd(
    source: str = typer.Argument(
        ..., help="A text file to mask, '-' for stdin, or the text itself with --text."
    ),
    lang: str = typer.Option(..., "--lang", "-l", help="Language the text is written in."),
    text: bool = typer.Option(False, "--text", help="SOURCE is the text itself, not a file."),
    placeholders: str = typer.Option("native", help="'native' (text's language) or 'english'."),
    show_masked: bool = typer.Option(False, "--show-masked", help="List every replacement."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Mask country, nationality, language and city names in one text and show what changed."""
    from learnerprobe.prep.mask import CATEGORIES, format_replacements, mask_text

    if text:
        raw = source
    elif source == "-":
        raw = sys.stdin.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"no such file: {path} (use --text to mask a literal string)")
        try:
            raw = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not a UTF-8 text file (byte {e.start}: {e.reason})"
                              ) from None
    if placeholders not in ("native", "english"):
        raise ConfigError(f"--placeholders must be 'native' or 'english', not {placeholders!r}")
    res = mask_text(raw, lang, placeholders=placeholders)  # type: ignore[arg-type]
    if as_json:
        typer.echo(json.dumps({
            "text": res.text,
            "counts": {c: res.counts.get(c, 0) for c in CATEGORIES},
            "spans": [
                {"start": s, "end": e, "original": o, "replacement": r, "category": c}
                for s, e, o, r, c in res.spans
            ],
        }, ensure_ascii=False))
        return
    console = Console()
    typer.echo(res.text)
    table = Table("category", "masked")
    for c in CATEGORIES:
        table.add_row(c, str(res.counts.get(c, 0)))
    console.print(table)
    if show_masked and res.spans:
        typer.echo(format_replacements(res, context=20))
