"""`learnerprobe predict`, `serve` and `bench predict`: use trained bundles on new texts."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer

from learnerprobe.cli import app
from learnerprobe.cli.bench import bench_app
from learnerprobe.errors import LearnerprobeError


def read_texts(file: Path) -> list[str]:
    """Texts from .txt (one per line), .jsonl (field `text`) or .csv (column `text`)."""
    if not file.is_file():
        raise LearnerprobeError(f"no such file: {file}")
    suffix = file.suffix.lower()
    texts: list[str] = []
    with open(file, encoding="utf-8") as f:
        if suffix == ".jsonl":
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LearnerprobeError(f"{file}, line {i}: invalid JSON ({e.msg})") from None
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                    raise LearnerprobeError(f"{file}, line {i}: expected an object with a 'text'")
                texts.append(obj["text"])
        elif suffix == ".csv":
            reader = csv.DictReader(f)
            if "text" not in (reader.fieldnames or []):
                raise LearnerprobeError(f"{file}: CSV needs a 'text' column")
            texts = [row["text"] for row in reader]
        else:
            texts = [line.rstrip("\n") for line in f if line.strip()]
    return texts


@app.command()
def predict(
    text: str = typer.Argument(None, help="A text, or '-' to read one text from stdin."),
    bundle: list[Path] = typer.Option(..., "--bundle", help="Bundle folder (repeat for cefr + l1)."),
    file: Path = typer.Option(None, "--file", help="Texts: .txt lines, .jsonl or .csv with 'text'."),
    top_k: int = typer.Option(None, "--top-k", min=1, help="List only the k most likely labels."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per text."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
) -> None:
    """Predict CEFR level and/or L1 with the exact preprocessing used in training."""
    from rich.console import Console
    from rich.progress import Progress

    from learnerprobe.predict import Predictor

    if file is not None:
        texts = read_texts(file)
    elif text == "-" or (text is None and not sys.stdin.isatty()):
        texts = [sys.stdin.read()]
    elif text is not None:
        texts = [text]
    else:
        raise LearnerprobeError("give a TEXT, --file FILE, or '-' for stdin")
    if not texts or any(not t.strip() for t in texts):
        raise LearnerprobeError("empty text")
    predictor = Predictor.load(*bundle)
    results: list[dict] = []
    with Progress(console=Console(stderr=True), transient=True, disable=len(texts) <= batch_size) as prog:
        task = prog.add_task("predicting", total=len(texts))
        for i in range(0, len(texts), batch_size):
            results.extend(predictor.predict(texts[i : i + batch_size], top_k=top_k))
            prog.advance(task, min(batch_size, len(texts) - i))
    console = Console()
    for r in results:
        if as_json:
            print(json.dumps(r, ensure_ascii=False))
            continue
        parts = []
        for t, v in r.items():
            probs = ", ".join(f"{k} {p:.2f}" for k, p in list(v["probabilities"].items())[: top_k or 5])
            parts.append(f"[bold]{t}[/]: {v['label']} ({probs})")
        console.print("  ".join(parts))


@app.command()
def serve(
    bundle: list[Path] = typer.Option(..., "--bundle", help="Bundle folder (repeat for cefr + l1)."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    max_chars: int = typer.Option(20_000, "--max-chars", help="Texts over this get HTTP 413."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds before a request gets 504."),
) -> None:
    """Serve the JSON API and the web page (docs at /docs)."""
    import uvicorn

    from learnerprobe.predict import Predictor
    from learnerprobe.serve.app import create_app

    application = create_app(Predictor.load(*bundle), max_chars=max_chars, timeout_s=timeout)
    uvicorn.run(application, host=host, port=port, log_level="info")


@bench_app.command("predict")
def bench_predict(
    bundle: list[Path] = typer.Option(..., "--bundle"),
    n: int = typer.Option(50, "--n", help="Single-text requests timed for p50/p95."),
    batch: int = typer.Option(200, "--batch", help="Texts in the batch-mode measurement."),
    out: Path = typer.Option(Path("runs/bench/predict.json"), "--out"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """p50/p95 latency for a 200-word text and texts/s in batch mode."""
    from learnerprobe.bench_predict import run_bench

    res = run_bench(bundle, n=n, batch=batch)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    if as_json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")
        print(f"saved {out}")
