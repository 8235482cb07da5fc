"""Turn a free-text LLM answer ("The answer is: chinese.") into one of the candidate L1 names.

Free generation answers with whatever the model likes: demonyms ("Brazilian"), other names
("Farsi"), the language's own or the target language's name ("Russisch"), sentences. Rather
than a long hand-made list, names are resolved to ISO 639 codes with the CLDR data in ``babel``
(language names in many display languages) and ``pycountry`` (ISO 639 names, country names),
and a country or demonym is resolved to the country's first official language that is a
candidate. Language names, aliases and codes come from :mod:`learnerprobe.corpora.languages`
(the one owner of language names: ``language_code(name, answers=True)``); this module adds only
what is specific to answers: lead-ins, demonyms (:data:`DEMONYMS`) and candidate matching.

Project convention (see ``corpora``): L1 labels are English language names, Chinese is
"Mandarin". Answers are matched to candidates by code, so "Chinese", "Mandarin", "Chinesisch"
and "Taiwanese" all resolve to a candidate named "Mandarin" (or "Chinese").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from learnerprobe.corpora.languages import (
    answer_index,
    clean_name,
    english_name,
    fold_code,
    language_code,
)

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

_FILLER = re.compile(
    r"^(?:(?:the|my|final)\s+)?(?:answer|guess|prediction|native\s+language|first\s+language|"
    r"mother\s+tongue|l1|language)(?:\s+of\s+the\s+(?:writer|author|person))?\s*(?:is|:|=|-)\s*",
)


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
    return [fold_code(c) for c in codes]


def _phrases(cleaned: str) -> list[str]:
    """What to try, in order: the whole answer, then word bigrams and words left to right."""
    words = cleaned.split()
    out = [cleaned]
    for i in range(len(words)):
        if i + 1 < len(words):
            out.append(f"{words[i]} {words[i + 1]}")
        out.append(words[i])
    return [p for p in dict.fromkeys(out) if p]


def match_answer(answer: str | None, candidates: Sequence[str] | None = None) -> str | None:
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
    cleaned = _FILLER.sub("", clean_name(str(answer)))
    if not cleaned:
        return None
    index = answer_index()
    by_code: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for cand in candidates or ():
        by_name.setdefault(clean_name(cand), cand)
        code = language_code(cand, answers=True)
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
    return match_answer(answer, None)
