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

This module owns language names for the whole package: the one alias table (:data:`ALIASES`),
corpus-field normalisation (:func:`normalise_l1`, :func:`language_code`) and the name index
free-text LLM answers are resolved with (``language_code(name, answers=True)``,
:func:`english_name`; :mod:`learnerprobe.estimators.nli.aliases` adds only what is specific to
parsing answers: lead-ins, demonyms, candidate matching). Corpus fields and answers read a few
names differently: :data:`ANSWER_ONLY` and :data:`CORPUS_ONLY` say which aliases a caller does
not accept, and answers fold varieties onto one code ("Chinese" and "Mandarin" are
one answer, two corpus labels).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Literal

Multi = Literal["join", "first", "none"]

MISSING = {
    "", "-", "--", ".", "?", "x", "na", "n/a", "n/a.", "nan", "none", "null", "no", "empty",
    "not reported", "not applicable", "unknown", "not specified", "prefer not to say",
}
# Locales whose language names we accept as input (the corpora's and the masking languages).
_LOCALES = ("en", "de", "it", "cs", "es", "pt", "fr", "nl", "pl", "ru")
#: The one alias table (corpus L1 fields and free-text LLM answers): casefolded alias -> the
#: project's English language name. Overrides where the CLDR name is not what learner-corpus
#: research uses, and spellings CLDR does not list (feminine adjectives, "Farsi", Chinese
#: varieties, informal names in answers). Two aliases sets below keep each caller's results as
#: they were when the two old tables were merged:
ALIASES: dict[str, str] = {
    "other": "Other",
    "others": "Other",
    "mandarin": "Mandarin",
    "mandarin chinese": "Mandarin",
    "chinese (mandarin)": "Mandarin",
    "chinese(mandarin)": "Mandarin",
    "putonghua": "Mandarin",
    "cmn": "Mandarin",
    "chinese": "Chinese",
    "cantonese": "Cantonese",
    "yue": "Cantonese",
    "hokkien": "Min Nan Chinese",
    "farsi": "Persian",
    "persian": "Persian",
    "dari": "Persian",
    "russa": "Russian",
    "bangla": "Bengali",
    "bengali": "Bengali",
    "filipino": "Tagalog",
    "pilipino": "Tagalog",
    "tagalog": "Tagalog",
    "greek": "Greek",
    "modern greek": "Greek",
    "panjabi": "Punjabi",
    "punjabi": "Punjabi",
    "castilian": "Spanish",
    "hispanic": "Spanish",
    "latino": "Spanish",
    "latina": "Spanish",
    "flemish": "Dutch",
    "arab": "Arabic",
    "arabian": "Arabic",
    "moldovan": "Romanian",
    "moldavian": "Romanian",
    "bosnian": "Bosnian",
    "croat": "Croatian",
    "serb": "Serbian",
    "hebrew": "Hebrew",
    "kazakh": "Kazakh",
    "kirghiz": "Kyrgyz",
    "pashto": "Pashto",
    "swahili": "Swahili",
    # ALC mother tongues CLDR lacks or names otherwise (ISO 639-3 names where CLDR has none)
    "cambodian": "Khmer",
    "moore": "Mossi",
    "mooré": "Mossi",
    "mandinka": "Mandingo",
    "dagomba": "Dagbani",
    "dagbani": "Dagbani",
    "maguindanao": "Maguindanao",
    "maguindanaon": "Maguindanao",
    "maranao": "Maranao",
    "yakan": "Yakan",
    "kotokoli": "Tem",
    # Icelandic L2 Error Corpus spelling
    "ukranian": "Ukrainian",
}
#: Aliases only answer parsing (``language_code(name, answers=True)``) accepts. Corpus L1 fields
#: (:func:`normalise_l1`) never resolved them -- "Serb", "Dari" stayed None and "Latino" is CLDR's
#: Italian/Spanish name of Latin -- and keep doing so, so that no corpus label changes.
ANSWER_ONLY = frozenset({
    "putonghua", "dari", "pilipino", "hispanic", "latino", "latina", "flemish", "arab",
    "arabian", "moldovan", "moldavian", "croat", "serb", "kirghiz",
})
#: Aliases only corpus L1 fields accept. Answer parsing never resolved them ("other" is no
#: language, codes like "cmn" are not answers) or resolved them another way ("modern greek" by
#: its word "greek"), and keeps doing so.
CORPUS_ONLY = frozenset({
    "other", "others", "chinese (mandarin)", "chinese(mandarin)", "cmn", "yue", "hokkien",
    "russa", "modern greek",
    # names added for ALC and the Icelandic L2 corpus: corpus fields only, answers unchanged
    "cambodian", "moore", "mooré", "mandinka", "dagomba", "dagbani", "maguindanao",
    "maguindanaon", "maranao", "yakan", "kotokoli", "ukranian",
})
_CORPUS_ALIASES = {k: v for k, v in ALIASES.items() if k not in ANSWER_ONLY}
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
    if t in _CORPUS_ALIASES:
        return _CORPUS_ALIASES[t]
    hit = _name_table().get(t)
    if hit is not None:
        return _CORPUS_ALIASES.get(hit.lower(), hit)
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


def language_code(raw: str, *, answers: bool = False) -> str | None:
    """ISO 639 code of a language name or code.

    Corpus fields (default): the ISO 639-1 code of the name :func:`normalise_l1` gives
    ("German", "deu", "de" -> "de"; "Mandarin" -> None: no ISO 639-1 code of its own).
    ``answers=True`` (free-text LLM answers, :mod:`learnerprobe.estimators.nli.aliases`): names in
    20 display languages and ISO 639 names, the answer aliases, and codes folded onto the one code
    answers are compared on (Mandarin/Chinese/Putonghua -> "zh", Farsi/Dari -> "fa").
    """
    if answers:
        key = clean_name(raw)
        return answer_index().get(key) if key else None
    return _corpus_code(raw)


@lru_cache(maxsize=1024)
def _corpus_code(raw: str) -> str | None:
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


# ----------------------------------------------------------------------------- answers
#: Display languages whose language names answers may use (answers sometimes come in the target
#: language or the L1 itself).
_DISPLAY_LOCALES = (
    "en", "de", "it", "cs", "es", "fr", "pt", "pl", "ru", "tr", "hu", "nl", "sv", "ar", "zh",
    "ja", "ko", "uk", "ro", "el",
)
#: Codes answers are compared on: macrolanguage members and variants collapse onto one code.
_CODE_FOLD = {
    "cmn": "zh", "zho": "zh", "chi": "zh", "pes": "fa", "prs": "fa", "per": "fa", "fas": "fa",
    "arb": "ar", "ara": "ar", "nb": "no", "nn": "no", "nob": "no", "fil": "tl", "iw": "he",
    "in": "id", "zh-hans": "zh", "zh-hant": "zh",
}
#: Answer labels that differ from CLDR's English display name (the project calls Chinese
#: "Mandarin"; corpus fields keep "Chinese" and "Mandarin" apart).
CANONICAL_NAMES: dict[str, str] = {"zh": "Mandarin"}


def fold_code(code: str) -> str:
    """The code answers are compared on ("cmn", "zho" -> "zh"; ISO 639-2/3 -> 639-1)."""
    code = code.lower().replace("_", "-")
    code = _CODE_FOLD.get(code, code)
    if len(code) == 3:
        import pycountry

        lang = pycountry.languages.get(alpha_3=code)
        if lang is not None and getattr(lang, "alpha_2", None):
            code = lang.alpha_2
    return _CODE_FOLD.get(code, code)


def clean_name(s: str) -> str:
    """Casefold, keep letters with their accents ("Türkisch"), drop punctuation and markup."""
    s = unicodedata.normalize("NFKC", s).casefold()
    s = s.replace("*", " ").replace("_", " ").replace("`", " ")
    s = re.sub(r"[^\w\s-]", " ", s)  # punctuation, quotes, brackets
    return re.sub(r"\s+", " ", s).strip()


@lru_cache(maxsize=1)
def answer_index() -> dict[str, str]:
    """Cleaned language name (several display languages, ISO names, aliases) -> folded code."""
    import pycountry
    from babel import Locale

    index: dict[str, str] = {}
    for lang in pycountry.languages:
        code = getattr(lang, "alpha_2", None)
        if code is None:  # ISO 639-3 also names thousands of small languages ("Are", "Even")
            continue
        for attr in ("name", "common_name"):
            name = getattr(lang, attr, None)
            if name:
                index.setdefault(clean_name(name), fold_code(code))
    for loc in _DISPLAY_LOCALES:  # later locales never override earlier ones
        for code, name in Locale.parse(loc).languages.items():
            if "_" in code or len(code) > 3:
                continue
            index.setdefault(clean_name(name), fold_code(code))
    # English names win over ISO oddities ("Greek, Modern (1453-)" etc. never collide).
    for code, name in Locale.parse("en").languages.items():
        if "_" not in code and len(code) <= 3:
            index[clean_name(name)] = fold_code(code)
    by_name = {clean_name(n): c for c, n in CANONICAL_NAMES.items()}
    codes = {a: by_name.get(clean_name(n)) or index[clean_name(n)] for a, n in ALIASES.items()
             if a not in CORPUS_ONLY}
    index.update(codes)
    return index


def english_name(code: str) -> str | None:
    """Answer label of an ISO 639 code (``"ru"`` -> ``"Russian"``, ``"zh"`` -> ``"Mandarin"``)."""
    from babel import Locale

    return CANONICAL_NAMES.get(code) or Locale.parse("en").languages.get(code)
