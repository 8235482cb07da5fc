"""`learnerprobe adapt BUNDLE --labelled FILE --out DIR [--method NAME]`."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import csv
import hashlib
import io
from pathlib import Path

import typer

from learnerprobe.cli import app
from learnerprobe.errors import DataFormatError
from learnerprobe.textinput import decode_utf8, escape_controls, loads_json, split_lines

MAX_LABELLED_BYTES = 50 * 1024 * 1024  # a few thousand essays; more is not a k-text sample
TEXT_KEYS = ("text",)
LEVEL_KEYS = ("level", "cefr", "label")


def _pick(row: dict, keys: tuple[str, ...], where: str) -> str:
    for k in keys:
        v = row.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip() if k != "text" else v
    raise DataFormatError(f"{where}: needs a non-empty {' / '.join(keys)} field")


def read_labelled(path: Path) -> tuple[list[str], list[str], str]:
    """Texts, levels and the file's sha256 from a CSV (header with ``text`` and ``level``) or
    a JSONL file (one ``{"text": ..., "level": ...}`` per line); DataFormatError naming the file
    and row for anything else."""
    try:
        if path.stat().st_size > MAX_LABELLED_BYTES:
            raise DataFormatError(f"{path}: over {MAX_LABELLED_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise DataFormatError(f"{path}: cannot read the labelled file ({e.strerror})") from None
    content = decode_utf8(data, str(path))
    rows: list[dict] = []
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for i, line in enumerate(split_lines(content), 1):
            if not line.strip():
                continue
            try:
                obj = loads_json(line)
            except Exception as e:  # noqa: BLE001 - any parse failure is one line
                raise DataFormatError(f"{path}: line {i}: not JSON ({e})") from None
            if not isinstance(obj, dict):
                raise DataFormatError(f"{path}: line {i}: not a JSON object")
            rows.append(obj)
    elif path.suffix.lower() in (".csv", ".tsv"):
        try:
            reader = csv.DictReader(io.StringIO(content),
                                    delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            rows = [dict(r) for r in reader]
        except csv.Error as e:
            raise DataFormatError(f"{path}: not valid CSV ({e})") from None
    else:
        raise DataFormatError(f"{path}: use a .csv, .tsv or .jsonl file with text and level")
    if not rows:
        raise DataFormatError(f"{path}: no labelled texts")
    texts = [_pick(r, TEXT_KEYS, f"{path}: row {i}") for i, r in enumerate(rows, 1)]
    levels = [_pick(r, LEVEL_KEYS, f"{path}: row {i}") for i, r in enumerate(rows, 1)]
    return texts, levels, hashlib.sha256(data).hexdigest()


@app.command()
def adapt(
    bundle: Path = typer.Argument(..., help="A hidden-state CEFR bundle (the source)."),
    labelled: Path = typer.Option(..., "--labelled", help="Your labelled texts: CSV/TSV with "
                                  "columns text and level, or JSONL with those keys."),
    out: Path = typer.Option(..., "--out", help="Folder to write the adapted bundle to."),
    method: str = typer.Option("prior_pull", "--method", help="shift, cutpoints, prior_pull "
                               "(default), pull_cuts, or probe_k (a probe on your texts "
                               "alone)."),
) -> None:
    """Adapt a bundle to your corpus and rubric from a few labelled texts of it.

    The result is an ordinary bundle for `predict` and `serve`; its manifest records the method,
    k, the labelled file's sha256 and the leave-one-out validation on your texts."""
    from rich.console import Console

    # start-up: numpy, the bundle stack
    from learnerprobe.bundles.integrity import bundle_digest
    from learnerprobe.predict import Predictor

    texts, levels, sha = read_labelled(labelled)
    predictor = Predictor.load(bundle, arrays=False, encoder="torch")
    adapted = predictor.adapt(texts, levels, method=method, out=out, labelled_sha256=sha)
    m = adapted.manifests["cefr"]
    val = m["metrics"].get("adaptation_validation")
    console = Console(stderr=True)
    if val:
        console.print(f"{val['scheme']} on the {val['n']} labelled texts: QWK "
                      f"{val['adapted']['qwk']:.3f} adapted vs {val['source']['qwk']:.3f} "
                      "before", highlight=False)
    path = Path(out)
    print(escape_controls(f"adapted bundle ({method}, k = {len(texts)}) written to {path}"))
    print(f"digest: {bundle_digest(path)}")
