"""CLI commands of the preparation area: `learnerprobe mask` (registered on learnerprobe.cli.app)."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from learnerprobe.cli import app
from learnerprobe.errors import ConfigError
from learnerprobe.prep.mask import CATEGORIES, format_replacements, mask_text
from learnerprobe.textinput import (
    MAX_CHARS,
    check_max_chars,
    check_text,
    decode_utf8,
    escape_controls,
    json_for_terminal,
    read_stdin,
)


def _read_source(source: str, text: bool, max_chars: int) -> str:
    """The text to mask: SOURCE itself, stdin or a UTF-8 file (a BOM dropped, CRLF and CR read as
    LF as a text-mode read does), checked by the rule every command applies."""
    if text:
        return check_text(source, "--text", max_chars)
    if source == "-":
        raw, where = read_stdin(max_bytes=4 * max_chars + 3), "stdin"
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"no such file: {path} (use --text to mask a literal string)")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
        raw, where = decode_utf8(data, str(path)), str(path)
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    return check_text(raw, where, max_chars)


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
    max_chars: int = typer.Option(
        MAX_CHARS, "--max-chars", help="Longest text in characters; longer ones are refused."
    ),
) -> None:
    """Mask country, nationality, language and city names in one text and show what changed."""
    check_max_chars(max_chars, "--max-chars")
    if placeholders not in ("native", "english"):
        raise ConfigError(f"--placeholders must be 'native' or 'english', not {placeholders!r}")
    raw = _read_source(source, text, max_chars)
    res = mask_text(raw, lang, placeholders=placeholders)  # type: ignore[arg-type]
    if as_json:
        typer.echo(json_for_terminal({
            "text": res.text,
            "counts": {c: res.counts.get(c, 0) for c in CATEGORIES},
            "spans": [
                {"start": s, "end": e, "original": o, "replacement": r, "category": c}
                for s, e, o, r, c in res.spans
            ],
        }))
        return
    console = Console()
    typer.echo(escape_controls(res.text, keep="\n\t"))
    table = Table("category", "masked")
    for c in CATEGORIES:
        table.add_row(c, str(res.counts.get(c, 0)))
    console.print(table)
    if show_masked and res.spans:
        typer.echo(escape_controls(format_replacements(res, context=20), keep="\n"))
