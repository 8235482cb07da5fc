"""Validation of texts handed to a trained model (CLI, Python API, web server): one rule set.

Why here and not in each front end: the CLI, `Predictor.predict` and the HTTP API must refuse the
same inputs with the same words, or a text refused by the page would be scored by the CLI.
A text is refused when it is not a `str`, holds a lone surrogate (not encodable as UTF-8), holds
NUL or other binary control bytes (a binary file read as text), or has no visible character
(only whitespace, zero-width or control characters).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from learnerprobe.errors import LearnerprobeError


class TextInputError(LearnerprobeError):
    """A text cannot be scored; the message says which one and why."""


# Categories with no visible glyph: controls, format chars (zero-width space/joiners, BOM, bidi
# marks), surrogates, unassigned, private use, and separators (spaces, line/paragraph separators).
_INVISIBLE = {"Cc", "Cf", "Cs", "Cn", "Co", "Zs", "Zl", "Zp"}
# C0 controls other than tab/newline/carriage return/form feed never occur in real texts; a NUL or
# a run of them means binary data.
_BINARY = {chr(c) for c in range(32) if chr(c) not in "\t\n\r\f"} | {"\x7f"}


def text_problem(text: object) -> str | None:
    """Why `text` cannot be scored, or None when it can."""
    if not isinstance(text, str):
        return f"expected a string, got {type(text).__name__}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text holds a lone surrogate (not valid Unicode); send UTF-8 text"
    if any(ch in _BINARY for ch in text):
        return "text holds binary control characters (is it a binary file?)"
    if all(unicodedata.category(ch) in _INVISIBLE for ch in text):
        return "text is empty (only whitespace, zero-width or control characters)"
    return None


def check_text(text: object, where: str = "text") -> str:
    """Return `text` if it can be scored, else raise TextInputError naming `where`."""
    problem = text_problem(text)
    if problem is not None:
        raise TextInputError(f"{where}: {problem}")
    return text  # type: ignore[return-value]


def check_texts(texts: Sequence[object], what: str = "text") -> list[str]:
    """Check each text; the error names the first bad one by its 1-based position."""
    if isinstance(texts, str):
        raise TextInputError("expected a list of texts, not a single string")
    if len(texts) == 0:
        raise TextInputError("no text given")
    return [check_text(t, f"{what} {i}" if len(texts) > 1 else what)
            for i, t in enumerate(texts, 1)]
