"""`learnerprobe predict`, `serve` and `bench predict`: use trained bundles on new texts."""

from __future__ import annotations

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import csv
import io
import json
import re
import sys
from pathlib import Path

import typer

from learnerprobe.cli import app
from learnerprobe.cli.bench import bench_app
from learnerprobe.errors import LearnerprobeError
from learnerprobe.outputs import atomic_write_text, check_writable
from learnerprobe.serve import BODY_TIMEOUT_S
from learnerprobe.textinput import (
    MAX_CHARS,
    TextInputError,
    check_max_chars,
    check_text,
    check_texts,
    check_top_k,
    decode_utf8,
    escape_controls,
    json_for_terminal,
    loads_json,
    read_stdin,
    split_lines,
)


def _type_name(value: object) -> str:
    """What a JSON value is, in JSON's words."""
    names = {dict: "an object", list: "a list", bool: "true/false", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _jsonl_texts(content: str, file: Path, max_chars: int) -> list[str]:
    texts: list[str] = []
    for i, line in enumerate(split_lines(content), 1):
        if not line.strip():
            continue
        try:
            obj = loads_json(line)
        except (json.JSONDecodeError, RecursionError) as e:
            msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
            raise LearnerprobeError(f"{file}, line {i}: invalid JSON ({msg})") from None
        if not isinstance(obj, dict) or "text" not in obj:
            raise LearnerprobeError(f"{file}, line {i}: expected an object with a 'text'")
        if not isinstance(obj["text"], str):
            raise TextInputError(f"{file}, line {i}: expected an object with a string 'text', "
                                 f"got {_type_name(obj['text'])}")
        texts.append(check_text(obj["text"], f"{file}, line {i}", max_chars))
    return texts


def _csv_texts(content: str, file: Path, max_chars: int) -> list[str]:
    texts: list[str] = []
    try:
        reader = csv.DictReader(io.StringIO(content, newline=""), strict=True)
        names = reader.fieldnames or []
        if "text" not in names:
            raise LearnerprobeError(f"{file}: CSV needs a 'text' column")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise LearnerprobeError(f"{file}: CSV column(s) named twice: {', '.join(twice)}")
        for row in reader:
            t = row.get("text")
            if t is None:  # a short row: no cell under 'text'
                raise TextInputError(f"{file}, row {reader.line_num}: no 'text' cell")
            texts.append(check_text(t, f"{file}, row {reader.line_num}", max_chars))
    except csv.Error as e:
        raise LearnerprobeError(f"{file}: invalid CSV ({e})") from None
    return texts


def read_texts(file: Path, max_chars: int = MAX_CHARS) -> list[str]:
    """Texts from .txt (one per line), .jsonl (field `text`) or .csv (column `text`), UTF-8
    with or without a BOM; lines end at LF or CRLF only."""
    if file.is_dir():
        raise LearnerprobeError(f"{file} is a directory; --file takes a .txt, .jsonl or .csv file")
    if not file.is_file():
        raise LearnerprobeError(f"no such file: {file}")
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise LearnerprobeError(f"cannot read {file}: {e.strerror or e}") from None
    content = decode_utf8(raw, str(file))
    if "\x00" in content:
        raise TextInputError(f"{file} holds NUL bytes; is it a binary file?")
    suffix = file.suffix.lower()
    if suffix == ".jsonl":
        texts = _jsonl_texts(content, file, max_chars)
    elif suffix == ".csv":
        texts = _csv_texts(content, file, max_chars)
    else:
        texts = [check_text(line, f"{file}, line {i}", max_chars)
                 for i, line in enumerate(split_lines(content), 1) if line.strip()]
    if not texts:
        raise LearnerprobeError(f"{file}: no texts in it")
    return texts


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):
        return False


def _check_bundles(bundle: list[Path], expect_digest: list[str] | None) -> None:
    """Cheap checks before anything is loaded: each bundle a folder; one digest per bundle."""
    for b in bundle:
        if not b.is_dir():
            raise LearnerprobeError(f"--bundle {b}: no such bundle folder")
    if expect_digest:
        if len(expect_digest) != len(bundle):
            raise LearnerprobeError(
                f"give one --expect-digest per --bundle, in the same order "
                f"({len(expect_digest)} digests for {len(bundle)} bundles)"
            )
        for d in expect_digest:  # the bundle module checks them too; this is before loading
            if not re.fullmatch(r"(?:sha256:)?[0-9a-f]{64}", d.strip().lower()):
                raise LearnerprobeError(
                    f"--expect-digest {d!r} is not a sha256 digest (64 hexadecimal characters)"
                )


def _load(bundle: list[Path], expect_digest: list[str] | None, allow_version_mismatch: bool,
          encoder: str = "auto", max_chars: int = MAX_CHARS):
    # start-up: numpy (`predict --help` stays light)
    from learnerprobe.predict import Predictor

    return Predictor.load(
        *bundle, expect_digests=list(expect_digest) if expect_digest else None,
        allow_version_mismatch=allow_version_mismatch, encoder=encoder, max_chars=max_chars,
    )


ENCODER_HELP = ("How hidden-state bundles run their model: auto (ONNX where it applies, else "
                "torch), onnx (onnxruntime; exported locally from the pinned weights on first "
                "use) or torch.")


def _check_encoder(encoder: str) -> str:
    if encoder not in ("auto", "onnx", "torch"):
        raise LearnerprobeError(f"--encoder must be auto, onnx or torch (got {encoder!r})")
    return encoder


EXPECT_DIGEST_HELP = (
    "Refuse to load unless the bundle's digest is this one (repeat: one per --bundle, in order)."
)
VERSION_HELP = "Load a bundle trained with other library versions (results may differ)."
MAX_CHARS_HELP = "Longest text in characters; longer ones are refused (memory grows with length)."
VERBOSE_HELP = ("Show third-party progress bars, log lines and warnings (transformers, torch, "
                "tokenizers), hidden by default.")


COVERAGE_HELP = ("Probability that the printed set holds the true label (split-conformal on the "
                 "bundle's validation texts), strictly between 0 and 1.")


def _check_coverage(coverage: float) -> None:
    if not 0.0 < coverage < 1.0:  # NaN fails too
        raise LearnerprobeError(f"--coverage must be strictly between 0 and 1 (got {coverage})")


def limits_text(v: dict, ordinal: bool) -> list[str]:
    """The set and the warnings of one task's result as short phrases, e.g.
    ``set A2–B1 (90 %)`` and ``warning: length (12 words; training texts 45–380)``."""
    out = []
    if v.get("set") is not None:
        out.append(f"set {set_text(v['set'], ordinal)} ({round(100 * v['coverage'], 1):g} %)")
    if v.get("note"):
        out.append(f"note: {v['note']}")
    c = v.get("checks") or {}
    why = {"language": f"language ({c.get('language')}; trained on "
                       f"{', '.join(c.get('training_languages') or [])})",
           "length": "length ({} words; training texts {}–{})".format(
               c.get("words"), *(c.get("training_words") or ["?", "?"])),
           "unfamiliar": f"unfamiliar (distance {c.get('distance')} > {c.get('threshold')})"}
    fired = [why[k] for k, on in (v.get("flags") or {}).items() if on and k in why]
    if fired:
        out.append("warning: " + "; ".join(fired))
    return out


def set_text(members: list, ordinal: bool) -> str:
    """``A2–B1`` for a range of levels, ``{de, it}`` for a set of languages, ``∅`` if empty."""
    if not members:
        return "∅"
    if ordinal:
        return members[0] if len(members) == 1 else f"{members[0]}–{members[-1]}"
    return "{" + ", ".join(map(str, members)) + "}"


@app.command()
def predict(
    text: str = typer.Argument(None, help="A text, or '-' to read one text from stdin."),
    bundle: list[Path] = typer.Option(..., "--bundle", help="Bundle folder (repeat for cefr + l1)."),
    file: Path = typer.Option(None, "--file", help="Texts: .txt lines, .jsonl or .csv with 'text'."),
    top_k: int = typer.Option(None, "--top-k", help="List only the k most likely labels."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per text."),
    batch_size: int = typer.Option(32, "--batch-size"),
    expect_digest: list[str] = typer.Option(None, "--expect-digest", help=EXPECT_DIGEST_HELP),
    allow_version_mismatch: bool = typer.Option(
        False, "--allow-version-mismatch", help=VERSION_HELP
    ),
    encoder: str = typer.Option("auto", "--encoder", help=ENCODER_HELP),
    max_chars: int = typer.Option(MAX_CHARS, "--max-chars", help=MAX_CHARS_HELP),
    coverage: float = typer.Option(0.9, "--coverage", help=COVERAGE_HELP),
    verbose: bool = typer.Option(False, "--verbose", help=VERBOSE_HELP),
) -> None:
    """Predict CEFR level and/or L1 with the exact preprocessing used in training."""
    from learnerprobe.models.quiet import quiet_third_party

    with quiet_third_party(not verbose):
        _predict(text, bundle, file, top_k, as_json, batch_size, expect_digest,
                 allow_version_mismatch, encoder, max_chars, coverage)


def _predict(text: str | None, bundle: list[Path], file: Path | None, top_k: int | None,
             as_json: bool, batch_size: int, expect_digest: list[str] | None,
             allow_version_mismatch: bool, encoder: str, max_chars: int,
             coverage: float) -> None:
    from rich.console import Console
    from rich.markup import escape

    # Everything is checked before a model is loaded (loading can take a minute).
    _check_coverage(coverage)
    _check_encoder(encoder)
    check_top_k(top_k, "--top-k")
    check_max_chars(max_chars, "--max-chars")
    if batch_size < 1:
        raise LearnerprobeError(f"--batch-size must be at least 1 (got {batch_size})")
    if file is not None and text is not None:
        raise LearnerprobeError("give either a TEXT or --file FILE, not both")
    _check_bundles(bundle, expect_digest)
    if file is not None:
        texts = read_texts(file, max_chars)
    elif text == "-" or (text is None and sys.stdin is not None and not _stdin_is_tty()):
        texts = [read_stdin(max_bytes=4 * max_chars + 3)]  # UTF-8: <= 4 bytes a character
    elif text is not None:
        texts = [text]
    elif sys.stdin is None:
        raise LearnerprobeError("stdin is closed; give a TEXT, --file FILE, or '-' for stdin")
    else:
        raise LearnerprobeError("give a TEXT, --file FILE, or '-' for stdin")
    texts = check_texts(texts, max_chars=max_chars)
    predictor = _load(bundle, expect_digest, allow_version_mismatch, encoder, max_chars)
    results: list[dict] = []
    if len(texts) <= batch_size:  # one batch: no progress bar (rich.progress is not imported)
        results = predictor.predict(texts, top_k=top_k, coverage=coverage)
    else:
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as prog:
            task = prog.add_task("predicting", total=len(texts))
            for i in range(0, len(texts), batch_size):
                results.extend(predictor.predict(texts[i : i + batch_size], top_k=top_k,
                                                 coverage=coverage))
                prog.advance(task, min(batch_size, len(texts) - i))
    console = Console(highlight=False)

    def shown(s: object) -> str:  # labels come from the bundle: no markup, no escape sequences
        return escape(escape_controls(str(s)))

    for r in results:
        if as_json:
            print(json_for_terminal(r))
            continue
        parts = []
        for t, v in r.items():
            probs = ", ".join(
                f"{shown(k)} {p:.2f}" for k, p in list(v["probabilities"].items())[: top_k or 5]
            )
            parts.append(f"[bold]{shown(t)}[/]: {shown(v['label'])} ({probs})"
                         + "".join(f"  {shown(x)}" for x in limits_text(v, t == "cefr")))
        console.print("  ".join(parts))


def _check_host_port(host: str, port: int) -> None:
    import socket

    if not 1 <= port <= 65535:
        raise LearnerprobeError(f"--port must be between 1 and 65535 (got {port})")
    if not host or not host.isprintable() or len(host) > 253:
        raise LearnerprobeError(f"--host {host!r} is not a host name or address")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, ValueError) as e:
        raise LearnerprobeError(f"--host {host!r}: cannot resolve it ({e})") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:  # fail now, not after loading the models
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise LearnerprobeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


@app.command()
def serve(
    bundle: list[Path] = typer.Option(..., "--bundle", help="Bundle folder (repeat for cefr + l1)."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    max_chars: int = typer.Option(MAX_CHARS, "--max-chars", help="Texts over this get HTTP 413."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds before a request gets 504."),
    body_timeout: float = typer.Option(
        BODY_TIMEOUT_S, "--body-timeout",
        help="Seconds a client has to send its whole request body before it gets 408.",
    ),
    max_queue: int = typer.Option(
        32, "--max-queue", help="Predictions queued or running before requests get HTTP 503."
    ),
    docs: bool = typer.Option(
        False, "--docs", help="Serve Swagger UI at /docs from local files (needs the fastapi-offline package)."
    ),
    expect_digest: list[str] = typer.Option(None, "--expect-digest", help=EXPECT_DIGEST_HELP),
    allow_version_mismatch: bool = typer.Option(
        False, "--allow-version-mismatch", help=VERSION_HELP
    ),
    max_batch: int = typer.Option(
        64, "--max-batch", help="Texts of concurrent requests scored together (0: no batching)."
    ),
    verbose: bool = typer.Option(False, "--verbose", help=VERBOSE_HELP),
) -> None:
    """Serve the JSON API and the web page (API schema at /openapi.json; /docs with --docs)."""
    import math

    check_max_chars(max_chars, "--max-chars")
    for name, value in (("--timeout", timeout), ("--body-timeout", body_timeout)):
        if not (math.isfinite(value) and value > 0):
            raise LearnerprobeError(f"{name} must be a positive number of seconds (got {value})")
    if max_queue < 1:
        raise LearnerprobeError(f"--max-queue must be at least 1 (got {max_queue})")
    if max_batch < 0:
        raise LearnerprobeError(f"--max-batch must be 0 or more (got {max_batch})")
    if docs:
        # heavy optional: fastapi, uvicorn (serve only)
        from learnerprobe.serve.app import _swagger_assets

        if _swagger_assets() is None:
            raise LearnerprobeError(
                "--docs needs the fastapi-offline package for local Swagger UI files "
                "(pip install fastapi-offline); the docs are never loaded from a CDN"
            )
    _check_host_port(host, port)
    _check_bundles(bundle, expect_digest)

    import uvicorn

    from learnerprobe.models.quiet import quiet_third_party

    # heavy optional: fastapi, uvicorn (serve only)
    from learnerprobe.serve.app import JsonErrorH11Protocol, create_app

    with quiet_third_party(not verbose):
        predictor = _load(bundle, expect_digest, allow_version_mismatch, max_chars=max_chars)
        # Warm: every model loaded (encoders included) before uvicorn reports ready.
        seconds = predictor.warm()
        print(f"learnerprobe: {', '.join(predictor.tasks)} bundles loaded and warm "
              f"({seconds:.1f} s)", file=sys.stderr)
        application = create_app(
            predictor, max_chars=max_chars, timeout_s=timeout, max_queue=max_queue, docs=docs,
            body_timeout_s=body_timeout, max_batch=max_batch,
        )
        # h11 with JSON bodies on its own 400s (a malformed request line or Content-Length)
        uvicorn.run(application, host=host, port=port, log_level="info",
                    http=JsonErrorH11Protocol)


@bench_app.command("predict")
def bench_predict(
    bundle: list[Path] = typer.Option(..., "--bundle"),
    n: int = typer.Option(50, "--n", help="Single-text requests timed for p50/p95."),
    batch: int = typer.Option(200, "--batch", help="Texts in the batch-mode measurement."),
    out: Path = typer.Option(Path("runs/bench/predict.json"), "--out"),
    cold: bool = typer.Option(True, "--cold/--no-cold", help="Also time a cold CLI process."),
    as_json: bool = typer.Option(False, "--json"),
    encoder: str = typer.Option("auto", "--encoder", help=ENCODER_HELP),
    arrays: bool = typer.Option(
        True, "--arrays/--skops", help="Apply estimators through their array form (numpy only) "
        "or through the skops file (scikit-learn), to compare the two."),
    dtypes: bool = typer.Option(
        True, "--dtypes/--no-dtypes",
        help="Also time the fp32 and the bf16 encoder paths (batch and serve texts/s)."),
) -> None:
    """Cold one-text CLI wall time, p50/p95 latency for a 200-word text, texts/s in batches."""
    # start-up: numpy
    from learnerprobe.bench_predict import run_bench

    _check_encoder(encoder)
    if n < 1 or batch < 1:
        raise LearnerprobeError(f"--n and --batch must be at least 1 (got {n}, {batch})")
    _check_bundles(bundle, None)
    check_writable(out, folder=False)  # before the benchmark, not after it
    # heavy optional: fastapi (the serve figures run the web API in this process)
    from learnerprobe.models.quiet import quiet_third_party
    from learnerprobe.serve.app import create_app

    with quiet_third_party():  # the figures, not transformers' loading bars
        res = run_bench(bundle, n=n, batch=batch, cold=cold, encoder=encoder, arrays=arrays,
                        dtypes=dtypes, make_app=create_app)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(res, indent=2))
    if as_json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(escape_controls(f"{k}: {v}"))
        print(escape_controls(f"saved {out}"))
