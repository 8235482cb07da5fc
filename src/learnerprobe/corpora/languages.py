"""Normalise the many spellings of a learner's L1 to one English language name.

Corpora write L1s as English names ("Russian"), local names ("Russisch", "russo"), ISO codes
("ru", "rus"), free text ("Chinese(Mandarin)") or several at once ("English,Spanish",
"Russian; Other"). NLI needs one stable label per language, so everything is mapped onto the
English CLDR display name (via babel) with a few documented overrides.

Rules:
- missing markers ("", "n/a", "not reported", "EMPTY", ...) -> None;
- "other" -> "Other" (a real answer category in MERLIN and COWS-L2H, kept as its own class);
- several languages -> the normalised names sorted alphabetically ("Other" last) and joined
  with "/" (``multi="join"``, default: bilinguals are a class of their own, and
  "English,Spanish" == "Spanish, English"), or the first one (``multi="first"``), or None
  (``multi="none"``);
- anything not recognised (e.g. "Slavic background", a bare number) -> None; the corpus
  loaders always keep the original string in ``l1_raw``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

Multi = Literal["join", "first", "none"]

MISSING = {
    "", "-", "--", ".", "?", "x", "na", "n/a", "n/a.", "nan", "none", "null", "no", "empty",
    "not reported", "not applicable", "unknown", "not specified", "prefer not to say",
}
# Locales whose language names we accept as input (the corpora's and the masking languages).
_LOCALES = ("en", "de", "it", "cs", "es", "pt", "fr", "nl", "pl", "ru")
# Overrides where the CLDR name is not what learner-corpus research uses, or where corpora use
# a spelling CLDR does not list (feminine adjectives, "Farsi", Chinese varieties).
_ALIASES = {
    "other": "Other",
    "others": "Other",
    "mandarin": "Mandarin",
    "mandarin chinese": "Mandarin",
    "chinese (mandarin)": "Mandarin",
    "chinese(mandarin)": "Mandarin",
    "cmn": "Mandarin",
    "cantonese": "Cantonese",
    "yue": "Cantonese",
    "farsi": "Persian",
    "russa": "Russian",
    "bangla": "Bengali",
    "bengali": "Bengali",
    "filipino": "Tagalog",
    "hokkien": "Min Nan Chinese",
    "greek": "Greek",
    "modern greek": "Greek",
    "panjabi": "Punjabi",
    "castilian": "Spanish",
}
_SPLIT = re.compile(r"\s*(?:[,;/&+|]|\band\b|\bund\b|\be\b|\by\b)\s*", re.I)


@lru_cache(maxsize=1)
def _name_table() -> dict[str, str]:
    """lower-case name or code -> English display name, built once from CLDR (babel)."""
    from babel import Locale

    english = Locale("en").languages
    table: dict[str, str] = {}
    for loc in _LOCALES:
        for code, name in Locale(loc).languages.items():
            if "_" in code or code not in english:
                continue
            table.setdefault(name.lower(), english[code])
    for code, name in english.items():
        if "_" not in code:
            table.setdefault(code.lower(), name)
    # ISO 639-2/3 three-letter codes (FCE and other releases use them).
    import pycountry

    for lang in pycountry.languages:
        a2 = getattr(lang, "alpha_2", None)
        if a2 and a2 in english:
            table.setdefault(lang.alpha_3.lower(), english[a2])
            b = getattr(lang, "bibliographic", None)
            if b:
                table.setdefault(b.lower(), english[a2])
    return table


@lru_cache(maxsize=4096)
def _one(token: str) -> str | None:
    t = " ".join(token.replace("\xa0", " ").split()).strip(" .").lower()
    if t in MISSING:
        return None
    if t in _ALIASES:
        return _ALIASES[t]
    hit = _name_table().get(t)
    if hit is not None:
        return _ALIASES.get(hit.lower(), hit)
    return None


def normalise_l1(raw: object, multi: Multi = "join") -> str | None:
    """Map a raw L1 string to a normalised English language name (see module docstring)."""
    if raw is None:
        return None
    s = str(raw).replace("\xa0", " ").strip()
    if s.lower().strip(" .") in MISSING:
        return None
    whole = _one(s)
    if whole is not None:
        return whole
    parts = [p for p in _SPLIT.split(s) if p and p.strip()]
    if len(parts) <= 1:
        return None
    names: list[str] = []
    for p in parts:
        n = _one(p)
        if n is None:
            continue
        if n not in names:
            names.append(n)
    if not names:
        return None
    if len(names) == 1:
        return names[0]
    if multi == "first":
        return names[0]
    if multi == "none":
        return None
    names.sort(key=lambda n: (n == "Other", n))
    return "/".join(names)


def split_l1(label: str | None) -> list[str]:
    """The individual languages of a (possibly joined) normalised L1 label."""
    return [] if not label else label.split("/")


@lru_cache(maxsize=1024)
def language_code(raw: str) -> str | None:
    """ISO 639-1 code for a language name or code ("German", "deu", "de" -> "de")."""
    from babel import Locale

    t = str(raw).strip()
    if not t:
        return None
    if len(t) == 2 and t.lower() in Locale("en").languages:
        return t.lower()
    name = _one(t)
    if name is None:
        return None
    for code, n in Locale("en").languages.items():
        if n == name and len(code) == 2:
            return code
    return None
