"""One owner of language names: corpora.languages holds the one alias table; corpus fields and
free-text LLM answers each keep the results they had before the two tables were merged."""

from __future__ import annotations

import pytest

from learnerprobe.corpora import languages as L
from learnerprobe.estimators.nli import aliases

# input, normalise_l1 (corpus fields), language_code(answers=True), parse_language (answers)
CASES = [
    ('other', 'Other', None, None),
    ('others', 'Other', None, None),
    ('mandarin', 'Mandarin', 'zh', 'Mandarin'),
    ('mandarin chinese', 'Mandarin', 'zh', 'Mandarin'),
    ('chinese (mandarin)', 'Mandarin', None, 'Mandarin'),
    ('chinese(mandarin)', 'Mandarin', None, 'Mandarin'),
    ('putonghua', None, 'zh', 'Mandarin'),
    ('cmn', 'Mandarin', None, None),
    ('chinese', 'Chinese', 'zh', 'Mandarin'),
    ('cantonese', 'Cantonese', 'yue', 'Cantonese'),
    ('yue', 'Cantonese', None, None),
    ('hokkien', 'Min Nan Chinese', None, None),
    ('farsi', 'Persian', 'fa', 'Persian'),
    ('persian', 'Persian', 'fa', 'Persian'),
    ('dari', None, 'fa', 'Persian'),
    ('russa', 'Russian', None, None),
    ('bangla', 'Bengali', 'bn', 'Bangla'),
    ('bengali', 'Bengali', 'bn', 'Bangla'),
    ('filipino', 'Tagalog', 'tl', 'Tagalog'),
    ('pilipino', None, 'tl', 'Tagalog'),
    ('tagalog', 'Tagalog', 'tl', 'Tagalog'),
    ('greek', 'Greek', 'el', 'Greek'),
    ('modern greek', 'Greek', None, 'Greek'),
    ('panjabi', 'Punjabi', 'pa', 'Punjabi'),
    ('punjabi', 'Punjabi', 'pa', 'Punjabi'),
    ('castilian', 'Spanish', 'es', 'Spanish'),
    ('hispanic', None, 'es', 'Spanish'),
    ('latino', 'Latin', 'es', 'Spanish'),
    ('latina', 'Latin', 'es', 'Spanish'),
    ('flemish', None, 'nl', 'Dutch'),
    ('arab', None, 'ar', 'Arabic'),
    ('arabian', None, 'ar', 'Arabic'),
    ('moldovan', None, 'ro', 'Romanian'),
    ('moldavian', None, 'ro', 'Romanian'),
    ('bosnian', 'Bosnian', 'bs', 'Bosnian'),
    ('croat', None, 'hr', 'Croatian'),
    ('serb', None, 'sr', 'Serbian'),
    ('hebrew', 'Hebrew', 'he', 'Hebrew'),
    ('kazakh', 'Kazakh', 'kk', 'Kazakh'),
    ('kirghiz', None, 'ky', 'Kyrgyz'),
    ('pashto', 'Pashto', 'ps', 'Pashto'),
    ('swahili', 'Swahili', 'sw', 'Swahili'),
    ('Chinese', 'Chinese', 'zh', 'Mandarin'),
    ('Mandarin', 'Mandarin', 'zh', 'Mandarin'),
    ('Farsi', 'Persian', 'fa', 'Persian'),
    ('Persian', 'Persian', 'fa', 'Persian'),
    ('  Farsi ', 'Persian', 'fa', 'Persian'),
    ('MANDARIN', 'Mandarin', 'zh', 'Mandarin'),
    ('Türkisch', 'Turkish', 'tr', 'Turkish'),
    ('TÜRKISCH', 'Turkish', 'tr', 'Turkish'),
    ('turkisch', None, None, None),
    ('Klingon', 'Klingon', 'tlh', 'Klingon'),
    ('Slavic background', None, None, None),
    ('English,Spanish', 'English/Spanish', None, 'English'),
]


@pytest.mark.parametrize(("raw", "corpus", "answer_code", "answer"), CASES)
def test_each_caller_keeps_its_result(raw, corpus, answer_code, answer) -> None:
    assert L.normalise_l1(raw) == corpus
    assert L.language_code(raw, answers=True) == answer_code
    assert aliases.parse_language(raw) == answer


def test_one_alias_table() -> None:
    assert not hasattr(aliases, "ALIASES") and not hasattr(aliases, "normalise_l1")
    assert L.ANSWER_ONLY <= set(L.ALIASES) and L.CORPUS_ONLY <= set(L.ALIASES)
    assert not L.ANSWER_ONLY & L.CORPUS_ONLY
    # every alias both callers accept names the same language on both sides
    for alias, name in L.ALIASES.items():
        if alias in L.ANSWER_ONLY or alias in L.CORPUS_ONLY:
            continue
        assert L.normalise_l1(alias) == name
        assert L.language_code(alias, answers=True) == L.language_code(name, answers=True)


def test_answers_fold_varieties_corpus_fields_keep_them_apart() -> None:
    assert L.normalise_l1("Chinese") == "Chinese" and L.normalise_l1("Mandarin") == "Mandarin"
    assert aliases.match_answer("Chinese", ["Mandarin", "Korean"]) == "Mandarin"
    assert aliases.match_answer("mandarin", ["Chinese", "Korean"]) == "Chinese"
    assert L.language_code("Mandarin") is None  # corpus side: ISO 639-1 only, as before
    assert L.language_code("deu") == "de"
