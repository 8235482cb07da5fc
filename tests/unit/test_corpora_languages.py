"""L1 normalisation: one English name per language, whatever the corpus wrote."""

import pytest

from learnerprobe.corpora.languages import language_code, normalise_l1, split_l1


@pytest.mark.parametrize("raw,want", [
    ("Russian", "Russian"), ("russian ", "Russian"), ("Russa", "Russian"), ("Russisch", "Russian"),
    ("tedesco", "German"), ("ru", "Russian"), ("deu", "German"), ("ca", "Catalan"),
    ("Chinese(Mandarin)", "Mandarin"), ("Mandarin", "Mandarin"), ("Chinese", "Chinese"),
    ("Farsi", "Persian"), ("Vietnamese.", "Vietnamese"), ("other", "Other"), ("Other", "Other"),
    ("not reported", None), ("EMPTY", None), ("", None), (None, None), ("n/a", None),
    ("4 or more", None), ("3", None), ("Slavic background", None),
    ("English,Spanish", "English/Spanish"), ("Spanish, English", "English/Spanish"),
    ("English/Chinese", "Chinese/English"), ("Russian; Other", "Russian/Other"),
    ("Other; German", "German/Other"), ("English,Spanish,Other", "English/Spanish/Other"),
    ("Japanese and Cantonese", "Cantonese/Japanese"),
])
def test_normalise_l1(raw, want):
    assert normalise_l1(raw) == want


def test_multi_policies():
    assert normalise_l1("Spanish,English", multi="first") == "Spanish"
    assert normalise_l1("Spanish,English", multi="none") is None
    assert normalise_l1("English,English") == "English"
    assert split_l1("English/Spanish") == ["English", "Spanish"] and split_l1(None) == []


@pytest.mark.parametrize("raw,want", [("German", "de"), ("deu", "de"), ("de", "de"),
                                      ("Czech", "cs"), ("Italian", "it"), ("Klingon", None),
                                      ("", None)])
def test_language_code(raw, want):
    assert language_code(raw) == want
