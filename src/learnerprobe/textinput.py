"""Texts coming in (CLI, Python API, web server, corpus loaders): one rule set, one reader.

Why here and not in each front end: the CLI, `Predictor.predict`, `mask`, the HTTP API and the
corpus loaders must refuse the same inputs with the same words, or a text refused by the page
would be scored by the CLI. A text is refused when it is not a `str`, holds a lone surrogate (not
encodable as UTF-8), holds NUL or other binary control characters (a binary file read as text),
has no visible character (only whitespace, zero-width, combining or blank "filler" characters),
or is longer than the character limit the caller applies (the front ends: `MAX_CHARS` unless
configured; a model's memory grows with the text, and the server and the CLI must agree).

Also here, because every front end needs them the same way: strict UTF-8 decoding that accepts a
BOM, line splitting on `\\n`/`\\r\\n` only (`str.splitlines` also splits on U+2028, form feed and
`\\x1c`-`\\x1e`, which occur inside real lines), JSON parsing that refuses duplicate keys, the
`top_k` and limit checks, and the escaping of control characters in anything printed to a
terminal (file names and bundle labels come from strangers).
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any

from learnerprobe.errors import LearnerprobeError
from learnerprobe.limits import check_depth, parse_error, unique_pairs

MAX_CHARS = 20_000
"""Default longest text, in characters (code points), for the CLI, `Predictor` and the server."""


class InputError(LearnerprobeError):
    """An input handed to a model (a text, `top_k`, a limit) is refused; the message says why."""


class TextInputError(InputError):
    """A text cannot be scored; the message says which one and why."""


class TextTooLongError(TextInputError):
    """A text is over the character limit (the server answers 413)."""


# Categories with no visible glyph of their own: controls, format chars (zero-width space/joiners,
# BOM, bidi marks), surrogates, unassigned, private use, separators (spaces, line/paragraph
# separators) and non-spacing marks (a lone combining accent, variation selectors).
_INVISIBLE = {"Cc", "Cf", "Cs", "Cn", "Co", "Zs", "Zl", "Zp", "Mn"}
# Letters and symbols that render as blank space: the Hangul fillers and the Braille blank.
_BLANK = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}
# C0 controls other than tab/newline/carriage return/form feed never occur in real texts; a NUL or
# a run of them means binary data.
_BINARY = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _visible(ch: str) -> bool:
    return ch not in _BLANK and unicodedata.category(ch) not in _INVISIBLE


def text_problem(text: object, max_chars: int | None = None) -> str | None:
    """Why `text` cannot be scored, or None when it can (`max_chars`: None = no limit)."""
    if not isinstance(text, str):
        return f"expected a string, got {type(text).__name__}"
    if max_chars is not None and len(text) > max_chars:
        return f"text over {max_chars} characters ({len(text)})"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text holds a lone surrogate (not valid Unicode); send UTF-8 text"
    if "\x00" in text:
        return "text holds NUL bytes (is it a binary file?)"
    if _BINARY.search(text):
        return "text holds binary control characters (is it a binary file?)"
    if not any(_visible(ch) for ch in text):
        return "text is empty (only whitespace, zero-width, combining or blank characters)"
    return None


def check_text(text: object, where: str = "text", max_chars: int | None = None) -> str:
    """Return `text` if it can be scored, else raise TextInputError naming `where`.

    The corpus loaders call this without `max_chars` (a corpus text may be long); the front ends
    (CLI, `Predictor`, server) pass their character limit."""
    problem = text_problem(text, max_chars)
    if problem is not None:
        cls = TextTooLongError if problem.startswith("text over ") else TextInputError
        raise cls(f"{where}: {problem}")
    return text  # type: ignore[return-value]


def check_texts(texts: Sequence[object], what: str = "text",
                max_chars: int | None = None) -> list[str]:
    """Check each text; the error names the first bad one by its 1-based position."""
    if isinstance(texts, (str, bytes)):
        raise TextInputError("expected a list of texts, not a single string")
    if len(texts) == 0:
        raise TextInputError("no text given")
    return [check_text(t, f"{what} {i}" if len(texts) > 1 else what, max_chars)
            for i, t in enumerate(texts, 1)]


def check_max_chars(value: object, where: str = "max_chars") -> int:
    """A character limit: a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{where} must be a whole number of characters >= 1 (got {value!r})")
    return value


def check_top_k(value: object, where: str = "top_k") -> int | None:
    """None (list every label) or a whole number >= 1; 0, negatives, floats and bools are
    refused rather than meaning "all" or "all but two"."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{where} must be a whole number >= 1 or None (got {value!r})")
    return value


def decode_utf8(data: bytes, where: str) -> str:
    """Strict UTF-8, a leading BOM dropped (editors on Windows write one)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TextInputError(
            f"{where} is not UTF-8 text (byte {e.start}); is it a binary file?"
        ) from None


def split_lines(content: str) -> list[str]:
    """Lines split on `\\n` and `\\r\\n` only: a form feed, U+2028 or `\\x1e` stays in its line."""
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def loads_json(doc: str | bytes) -> Any:
    """`json.loads` for request bodies and `--file` lines, whose callers answer malformed JSON
    themselves: a repeated key (:func:`~learnerprobe.limits.unique_pairs`), a nesting deeper
    than the recursion limit or a number with thousands of digits is a JSONDecodeError saying
    so, like any other malformed document (configs use :func:`learnerprobe.limits.loads_json`)."""
    try:
        obj = json.loads(doc, object_pairs_hook=unique_pairs)
        return check_depth(obj, "JSON", error=InputError)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError, InputError) as e:
        text = doc if isinstance(doc, str) else doc.decode("utf-8", "replace")
        msg = (str(e) if isinstance(e, InputError) else parse_error(e, "JSON", "JSON"))
        msg = msg.removeprefix("JSON: ").removeprefix("not valid JSON: ")
        raise json.JSONDecodeError(msg, text, 0) from None


def read_stdin(max_bytes: int | None = None) -> str:
    """All of stdin as strict UTF-8 text; stdin may be closed (`<&-`), a directory or binary.

    `max_bytes`: read at most this many bytes plus one (the caller's limit then refuses a text
    that long without first reading gigabytes)."""
    stream = sys.stdin
    if stream is None:
        raise InputError("stdin is closed; give a TEXT or --file FILE")
    try:
        buf = getattr(stream, "buffer", None)
        if buf is not None:
            data = buf.read(-1 if max_bytes is None else max_bytes + 1)
        else:
            data = stream.read().encode("utf-8", "surrogateescape")
    except (OSError, ValueError) as e:  # EISDIR, EBADF, reading a closed file
        raise InputError(f"cannot read stdin: {getattr(e, 'strerror', None) or e}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise TextTooLongError(f"stdin: text over {max_bytes} bytes")
    return decode_utf8(data, "stdin")


# C0 and C1 controls, DEL, lone surrogates (undecodable file-name bytes), line/paragraph
# separators and the bidi embedding/override/isolate controls (they reorder what is shown).
_TERMINAL_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                              "\ud800-\udfff]")


def escape_controls(text: str, keep: str = "") -> str:
    """`text` safe to print on a terminal: control characters (escape sequences, carriage
    returns, bidi overrides) and lone surrogates shown as `\\xNN`/`\\uNNNN`, except those in
    `keep` (e.g. "\\n\\t" for a multi-line text)."""

    def sub(m: re.Match[str]) -> str:
        ch = m.group()
        if ch in keep:
            return ch
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"

    return _TERMINAL_UNSAFE.sub(sub, text)


def json_for_terminal(obj: Any, **dumps_kw: Any) -> str:
    """One line of JSON with non-ASCII text kept readable but every control character, bidi
    control and lone surrogate written as a `\\uNNNN` escape (json.dumps leaves C1 controls,
    which some terminals obey, raw); the result parses to the same value."""
    return _TERMINAL_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}",
                                json.dumps(obj, ensure_ascii=False, **dumps_kw))
