"""CLI commands of the corpus area: ``learnerprobe corpus list|stats|export``."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from learnerprobe.cli import app
from learnerprobe.corpora import CORPORA
from learnerprobe.corpora.record_files import corpus_stats, write_records
from learnerprobe.corpora.registry import get_corpus, loader_options
from learnerprobe.errors import ConfigError, LearnerprobeError
from learnerprobe.limits import loads_json, loads_toml
from learnerprobe.outputs import atomic_write, check_writable
from learnerprobe.prep.clean import clean
from learnerprobe.prep.mask import format_replacements, mask_records, mask_text
from learnerprobe.textinput import escape_controls, json_for_terminal

corpus_app = typer.Typer(no_args_is_help=True, help="Learner corpora: list, count, export.")
app.add_typer(corpus_app, name="corpus")
console = Console()

ROOT_HELP = "Data root (default: $LEARNERPROBE_DATA or ~/.cache/learnerprobe/data)."
OPT_HELP = ("Loader option KEY=VALUE, repeatable (e.g. -o languages=cs,de; for 'table': "
            "-o path=my.csv -o language=en -o columns.text=essay).")
CONFIG_HELP = "TOML or JSON file with loader options (e.g. the column mapping for 'table')."


def _value(pair: str, v: str) -> Any:
    """A ``-o`` value: JSON when it parses as JSON (5, true, ["a"]), else a comma list or the
    plain string; a too-deep or too-long JSON value is a ConfigError, not a traceback."""
    try:
        json.loads(v)
    except json.JSONDecodeError:
        return [x.strip() for x in v.split(",") if x.strip()] if "," in v else v
    except (ValueError, RecursionError):
        pass  # JSON, but refused below with the reason
    return loads_json(v, f"-o {pair[:60]!r}")


def parse_options(pairs: list[str] | None, config: Path | None) -> dict[str, Any]:
    """Loader options from a config file and ``KEY=VALUE`` pairs (dotted keys nest)."""
    opts: dict[str, Any] = {}
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"--config {config}: file not found")
        try:
            text = config.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"--config {config}: cannot read ({e})") from None
        where = f"--config {config}"
        toml = config.suffix.lower() == ".toml"
        opts = loads_toml(text, where) if toml else loads_json(text, where)
        if not isinstance(opts, dict):
            raise ConfigError(f"--config {config}: expected a table/object of options")
    for pair in pairs or []:
        key, sep, val = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-o {pair!r}: expected KEY=VALUE")
        *parents, leaf = key.strip().split(".")
        d = opts
        for p in parents:
            d = d.setdefault(p, {})
            if not isinstance(d, dict):
                raise ConfigError(f"-o {pair!r}: {p!r} is not a mapping")
        d[leaf] = _value(pair, val)
    return opts


def _one_item_lists(opts: dict[str, Any], types: dict[str, Any]) -> dict[str, Any]:
    """``-o languages=cs`` is the list ``["cs"]`` for an option that takes a list (only a comma
    makes ``-o`` build one); the loader's option types then check every value."""
    from pydantic import TypeAdapter, ValidationError

    out = dict(opts)
    for k, v in opts.items():
        if not isinstance(v, str) or k not in types:
            continue
        ta = TypeAdapter(types[k])
        try:
            ta.validate_python(v)
        except ValidationError:
            try:
                out[k] = ta.validate_python([v])
            except ValidationError:
                pass  # refused with the loader's message when loading
    return out


def _load(name: str, root: Path | None, option: list[str] | None, config: Path | None):
    """The corpus for stats/export: neither needs labels, so a loader with a ``labels`` option
    loads unlabelled texts with a warning (``labels="optional"``) unless told otherwise."""
    entry = get_corpus(name)
    opts = _one_item_lists(parse_options(option, config), loader_options(entry.loader))
    if "labels" in loader_options(entry.loader):  # neither stats nor export needs labels
        opts.setdefault("labels", "optional")
    return entry.load(root, **opts)


@corpus_app.command("list")
def list_corpora() -> None:
    """Show the corpus registry: languages, labels, licence and where to get each corpus."""
    t = Table(title="learnerprobe corpora", show_lines=False)
    t.add_column("name", no_wrap=True, style="bold")
    for col in ("languages", "labels", "licence", "url", "description"):
        t.add_column(col, overflow="fold")
    for e in CORPORA.values():
        t.add_row(e.name, ", ".join(e.languages) or "any", ", ".join(e.label_types), e.licence,
                  e.url, e.description)
    # Piped output (files, grep) gets full lines instead of an 80-column fold.
    (console if console.is_terminal else Console(width=220)).print(t)


@corpus_app.command("stats")
def stats(
    name: str = typer.Argument(..., help="Corpus name (see `learnerprobe corpus list`)."),
    root: Path | None = typer.Option(None, "--root", help=ROOT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    option: list[str] | None = typer.Option(None, "--option", "-o", help=OPT_HELP),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
) -> None:
    """Count texts by language, CEFR level, L1 and split."""
    s = corpus_stats(_load(name, root, option, config))
    if as_json:
        typer.echo(json_for_terminal({"corpus": name, **s}))
        return
    console.print(f"[bold]{name}[/]: {s['n_texts']} texts, {s['n_authors']} authors, "
                  f"{s['n_with_correction']} with a correction, mean {s['mean_chars']} chars")
    for key in ("by_language", "by_cefr", "by_l1", "by_split", "by_level"):
        if key not in s:
            continue
        t = Table(title=key.replace("by_", "by "), title_justify="left")
        t.add_column("label")
        t.add_column("texts", justify="right")
        for lab, n in s[key].items():
            t.add_row(escape(escape_controls(str(lab))), str(n))  # labels from the corpus
        console.print(t)


@corpus_app.command("export")
def export(
    name: str = typer.Argument(..., help="Corpus name (see `learnerprobe corpus list`)."),
    out: Path = typer.Option(..., "--out", help="Output file: .parquet or .jsonl."),
    root: Path | None = typer.Option(None, "--root", help=ROOT_HELP),
    mask: bool = typer.Option(False, "--mask", help="Mask countries, nationalities, languages "
                              "and cities (learnerprobe.prep.mask)."),
    show_masked: bool = typer.Option(False, "--show-masked", help="With --mask: print every "
                                     "replacement (text id, category, original -> placeholder)."),
    dedupe: bool = typer.Option(False, "--dedupe", help="Clean and de-duplicate first "
                                "(learnerprobe.prep.clean), printing what was dropped."),
    option: list[str] | None = typer.Option(None, "--option", "-o", help=OPT_HELP),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
) -> None:
    """Write a corpus as LearnerText rows to Parquet or JSONL (by the suffix of --out)."""
    if out.suffix.lower() not in (".parquet", ".jsonl"):
        raise LearnerprobeError(f"--out {out}: use a .parquet or .jsonl file name")
    if show_masked and not mask:
        raise LearnerprobeError("--show-masked needs --mask")
    check_writable(out, folder=False)  # before the corpus is read, cleaned and masked
    records = _load(name, root, option, config)
    n0 = len(records)
    if dedupe:
        records, report = clean(records)
        console.print(f"clean: kept {len(records)} of {n0} texts")
        console.print(_show(report), markup=False)
    if mask:
        if show_masked:
            for r in records:
                res = mask_text(r.text, r.language)
                if res.spans:
                    typer.echo(escape_controls(f"# {r.id}\n{format_replacements(res, context=20)}",
                                               keep="\n"))
        records, counts = mask_records(records)
        console.print(f"mask: replacements per category: {_show(counts)}", markup=False)
    # a temporary sibling moved into place: a full disk never leaves a half-written file
    atomic_write(out, lambda tmp: write_records(records, tmp))
    console.print(escape_controls(f"wrote {len(records)} texts of {name!r} to {out}"),
                  markup=False)


def _show(obj: Any) -> str:
    """Readable one-liner for a report object (dataclass, pydantic model or mapping)."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    elif hasattr(obj, "model_dump"):
        obj = obj.model_dump()
    try:
        return json_for_terminal(obj, default=str)
    except TypeError:
        return escape_controls(str(obj))
