"""Turn a free-text LLM answer ("The answer is: chinese.") into one of the candidate L1 names.

Free generation answers with whatever the model likes: demonyms ("Brazilian"), other names
("Farsi"), the language's own or the target language's name ("Russisch"), sentences. Rather
than a long hand-made list, names are resolved to ISO 639 codes with the CLDR data in ``babel``
(language names in many display languages) and ``pycountry`` (ISO 639 names, country names),
and a country or demonym is resolved to the country's first official language that is a
candidate. A small table (:data:`ALIASES`, :data:`DEMONYMS`) covers what those cannot know.

Project convention (see ``corpora``): L1 labels are English language names, Chinese is
"Mandarin". Answers are matched to candidates by code, so "Chinese", "Mandarin", "Chinesisch"
and "Taiwanese" all resolve to a candidate named "Mandarin" (or "Chinese").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

#: Names CLDR/ISO do not resolve, or resolve to a code other than the one we compare on.
#: Maps a casefolded name to an ISO 639 code.
ALIASES: dict[str, str] = {
    "mandarin": "zh",
    "mandarin chinese": "zh",
    "putonghua": "zh",
    "chinese": "zh",
    "farsi": "fa",
    "dari": "fa",
    "castilian": "es",
    "flemish": "nl",
    "arab": "ar",
    "arabian": "ar",
    "filipino": "tl",
    "pilipino": "tl",
    "tagalog": "tl",
    "moldovan": "ro",
    "moldavian": "ro",
    "bosnian": "bs",
    "croat": "hr",
    "serb": "sr",
    "hebrew": "he",
    "persian": "fa",
    "hispanic": "es",
    "latino": "es",
    "latina": "es",
    "punjabi": "pa",
    "kazakh": "kk",
    "kirghiz": "ky",
    "pashto": "ps",
    "swahili": "sw",
}

#: Demonyms that are not language names, mapped to ISO 3166 alpha-2 country codes; the
#: country's official languages (CLDR) are then tried in order against the candidates.
DEMONYMS: dict[str, str] = {
    "brazilian": "BR", "mexican": "MX", "argentinian": "AR", "argentine": "AR",
    "colombian": "CO", "peruvian": "PE", "chilean": "CL", "venezuelan": "VE", "cuban": "CU",
    "ecuadorian": "EC", "bolivian": "BO", "uruguayan": "UY", "paraguayan": "PY",
    "guatemalan": "GT", "honduran": "HN", "salvadoran": "SV", "nicaraguan": "NI",
    "dominican": "DO", "puerto rican": "PR", "american": "US", "british": "GB",
    "scottish": "GB", "irish": "IE", "canadian": "CA", "australian": "AU",
    "austrian": "AT", "swiss": "CH", "belgian": "BE", "iranian": "IR", "afghan": "AF",
    "taiwanese": "TW", "egyptian": "EG", "moroccan": "MA", "algerian": "DZ", "tunisian": "TN",
    "libyan": "LY", "syrian": "SY", "lebanese": "LB", "jordanian": "JO", "iraqi": "IQ",
    "saudi": "SA", "emirati": "AE", "yemeni": "YE", "sudanese": "SD", "palestinian": "PS",
    "indian": "IN", "pakistani": "PK", "bangladeshi": "BD", "nigerian": "NG", "kenyan": "KE",
    "ethiopian": "ET", "israeli": "IL", "cypriot": "CY", "brasilian": "BR",
}

#: Display languages whose language names are indexed (answers sometimes come in the target
#: language or the L1 itself).
_DISPLAY_LOCALES = (
    "en", "de", "it", "cs", "es", "fr", "pt", "pl", "ru", "tr", "hu", "nl", "sv", "ar", "zh",
    "ja", "ko", "uk", "ro", "el",
)
#: Codes we compare on: macrolanguage members and variants collapse onto one code.
_CODE_FOLD = {
    "cmn": "zh", "zho": "zh", "chi": "zh", "pes": "fa", "prs": "fa", "per": "fa", "fas": "fa",
    "arb": "ar", "ara": "ar", "nb": "no", "nn": "no", "nob": "no", "fil": "tl", "iw": "he",
    "in": "id", "zh-hans": "zh", "zh-hant": "zh",
}
_FILLER = re.compile(
    r"^(?:(?:the|my|final)\s+)?(?:answer|guess|prediction|native\s+language|first\s+language|"
    r"mother\s+tongue|l1|language)(?:\s+of\s+the\s+(?:writer|author|person))?\s*(?:is|:|=|-)\s*",
)


def _fold_code(code: str) -> str:
    code = code.lower().replace("_", "-")
    code = _CODE_FOLD.get(code, code)
    if len(code) == 3:
        import pycountry

        lang = pycountry.languages.get(alpha_3=code)
        if lang is not None and getattr(lang, "alpha_2", None):
            code = lang.alpha_2
    return _CODE_FOLD.get(code, code)


def _clean(s: str) -> str:
    """Casefold, strip accents' combining marks kept (names like "Türkisch"), drop markup."""
    s = unicodedata.normalize("NFKC", s).casefold()
    s = s.replace("*", " ").replace("_", " ").replace("`", " ")
    s = re.sub(r"[^\w\s-]", " ", s)  # punctuation, quotes, brackets
    return re.sub(r"\s+", " ", s).strip()


@lru_cache(maxsize=1)
def _name_index() -> dict[str, str]:
    """Casefolded language name (in several display languages, plus ISO names) -> code."""
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
                index.setdefault(_clean(name), _fold_code(code))
    for loc in _DISPLAY_LOCALES:  # later locales never override earlier ones
        for code, name in Locale.parse(loc).languages.items():
            if "_" in code or len(code) > 3:
                continue
            index.setdefault(_clean(name), _fold_code(code))
    # English names win over ISO oddities ("Greek, Modern (1453-)" etc. never collide).
    for code, name in Locale.parse("en").languages.items():
        if "_" not in code and len(code) <= 3:
            index[_clean(name)] = _fold_code(code)
    for name, code in ALIASES.items():
        index[name] = _fold_code(code)
    return index


def language_code(name: str) -> str | None:
    """ISO 639 code (folded: Mandarin/Chinese -> "zh", Farsi -> "fa") of a language name."""
    key = _clean(name)
    return _name_index().get(key) if key else None


def _country_languages(phrase: str) -> list[str]:
    """Official language codes (CLDR order) of a country named by demonym or country name."""
    from babel.languages import get_official_languages

    country = DEMONYMS.get(phrase)
    if country is None:
        if len(phrase) <= 3:  # "it", "is", "in" are country codes, not answers
            return []
        import pycountry

        try:
            country = pycountry.countries.lookup(phrase).alpha_2
        except LookupError:
            return []
    codes = list(get_official_languages(country, de_facto=True))
    return [_fold_code(c) for c in codes]


#: Project label names that differ from CLDR's English display name.
CANONICAL_NAMES: dict[str, str] = {"zh": "Mandarin"}


def english_name(code: str) -> str | None:
    """Project L1 name of an ISO 639 code (``"ru"`` -> ``"Russian"``, ``"zh"`` -> ``"Mandarin"``)."""
    from babel import Locale

    return CANONICAL_NAMES.get(code) or Locale.parse("en").languages.get(code)


def _phrases(cleaned: str) -> list[str]:
    """What to try, in order: the whole answer, then word bigrams and words left to right."""
    words = cleaned.split()
    out = [cleaned]
    for i in range(len(words)):
        if i + 1 < len(words):
            out.append(f"{words[i]} {words[i + 1]}")
        out.append(words[i])
    return [p for p in dict.fromkeys(out) if p]


def normalise_l1(answer: str | None, candidates: Sequence[str] | None = None) -> str | None:
    """The candidate L1 an answer names, or None when it names none of them.

    Case, punctuation, markdown and lead-ins ("The answer is:", "Native language -") are
    ignored; names, aliases, demonyms and country names are resolved to language codes and
    compared with the candidates' codes. The whole answer is tried first, then its word pairs
    and words from left to right, so "Brazilian Portuguese" and "I think it is Polish." work and
    the first candidate language mentioned wins. Without ``candidates`` the English name of the
    language the answer names is returned (``"farsi"`` -> ``"Persian"``).
    """
    if answer is None:
        return None
    cleaned = _FILLER.sub("", _clean(str(answer)))
    if not cleaned:
        return None
    index = _name_index()
    by_code: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for cand in candidates or ():
        by_name.setdefault(_clean(cand), cand)
        code = language_code(cand)
        if code is not None:
            by_code.setdefault(code, cand)

    for phrase in _phrases(cleaned):
        if candidates is not None and phrase in by_name:
            return by_name[phrase]
        codes = [index[phrase]] if phrase in index else _country_languages(phrase)
        for code in codes:
            if candidates is None:
                return english_name(code) or phrase.title()
            if code in by_code:
                return by_code[code]
    return None


def parse_language(answer: str | None) -> str | None:
    """English name of the first language an answer names, whatever the candidates."""
    return normalise_l1(answer, None)
