"""Masking in Arabic and Icelandic: clitics, spelling variants, case forms, guards, and the L1
task masking each record in its own language. The sentences are our own, written the way
learners of these languages write (ALC- and Icelandic-L2-like)."""

import pytest

from learnerprobe.errors import ConfigError
from learnerprobe.prep.mask import lexicon_terms, mask_records, mask_text
from learnerprobe.records import LearnerText
from learnerprobe.tasks.l1 import prepare_l1_task


def masked(text: str, lang: str) -> list[tuple[str, str]]:
    return [(o, c) for _, _, o, _, c in mask_text(text, lang, placeholders="english").spans]


# --- Arabic ------------------------------------------------------------------------------------

def test_arabic_reference_sentence_native_placeholders():
    r = mask_text("أنا من السعودية وأسكن في الرياض", "ar")
    assert r.text == "أنا من بلد وأسكن في مدينة"
    assert r.counts == {"Country": 1, "City": 1}


@pytest.mark.parametrize("text,expected,out", [
    # ب + article: the clitic stays, the name (article included) is replaced
    ("درست بالسعودية سنتين.", [("السعودية", "Country")], "درست ببلد سنتين."),
    # و + name
    ("زرت مصر والمغرب والأردن.", [("مصر", "Country"), ("المغرب", "Country"),
                                 ("الأردن", "Country")], "زرت بلد وبلد وبلد."),
    # ل + ال -> لل: the article's alef is dropped in writing
    ("سافرت للسعودية ثم للهند.", [("لسعودية", "Country"), ("لهند", "Country")],
     "سافرت لبلد ثم لبلد."),
    # a clitic on the first word of a multi-word name
    ("عشت بالمملكة العربية السعودية.", [("المملكة العربية السعودية", "Country")],
     "عشت ببلد."),
    ("وصلنا إلى الولايات المتحدة الأمريكية.", [("الولايات المتحدة الأمريكية", "Country")],
     "وصلنا إلى بلد."),
])
def test_arabic_clitics(text, expected, out):
    assert masked(text, "ar") == expected
    assert mask_text(text, "ar").text == out


def test_arabic_nisba_adjectives_and_languages():
    text = ("صديقي سعودي وزوجته مصرية، والطلاب الإندونيسيون يتكلمون الإنجليزية "
            "ويحبون اللغة العربية. السعوديين كرماء.")
    assert masked(text, "ar") == [
        ("سعودي", "Nationality"), ("مصرية", "Nationality"),
        ("الإندونيسيون", "Nationality"), ("الإنجليزية", "Language"),
        ("العربية", "Language"), ("السعوديين", "Nationality"),
    ]
    # "بالعربية": in Arabic (clitic + language name)
    assert masked("أكتب بالعربية", "ar") == [("العربية", "Language")]


def test_arabic_spelling_variants_are_folded_and_spans_keep_the_original():
    # diacritics, tatweel, hamza-less alef, haa for taa marbuta
    text = "أَنَا مِنَ السُّعُودِيَّةِ وأعيش في جـدة. انا من اندونيسيا وادرس في المملكه العربيه السعوديه"
    r = mask_text(text, "ar", placeholders="english")
    assert [(o, c) for _, _, o, _, c in r.spans] == [
        ("السُّعُودِيَّةِ", "Country"), ("جـدة", "City"), ("اندونيسيا", "Country"),
        ("المملكه العربيه السعوديه", "Country"),
    ]
    for start, end, orig, _rep, _cat in r.spans:
        assert text[start:end] == orig


def test_arabic_false_positive_guards():
    # مالي (my money / Mali), المدينة (the city), كبيرا (big; ك + بيرا would be Beira),
    # سنة (year), نوم (sleep): ordinary words, never masked
    assert masked("أحب مالي الكثير. المدينة جميلة وكان البيت كبيرا. نمت سنة ونوم.", "ar") == []
    # المغرب is also the evening prayer: not masked next to prayer words ...
    assert masked("صلينا المغرب ثم العشاء. وبعد المغرب رجعنا. فصلينا المغرب والعشاء.",
                  "ar") == []
    # ... but Morocco elsewhere
    assert masked("سافرت من فرنسا إلى المغرب.", "ar") == [("فرنسا", "Country"),
                                                        ("المغرب", "Country")]


def test_arabic_word_lists_come_from_cldr():
    ar = lexicon_terms("ar")  # keys are in the folded spelling
    assert ar["اذربيجان"] == "Country"  # CLDR's أذربيجان
    assert ar["الاوزبكيه"] == "Language"
    assert ar["اوزبكي"] == "Nationality"  # derived from the language name
    assert ar["القاهره"] == "City"


# --- Icelandic ---------------------------------------------------------------------------------

def test_icelandic_reference_sentence_native_placeholders():
    r = mask_text("Ég er frá Póllandi og bý í Reykjavík", "is")
    assert r.text == "Ég er frá Land og bý í Borg"
    assert r.counts == {"Country": 1, "City": 1}


@pytest.mark.parametrize("text,expected", [
    # -land countries: nominative/accusative, dative, genitive
    ("Þýskaland er stórt. Ég bjó í Þýskalandi. Ég kom til Þýskalands.",
     [("Þýskaland", "Country"), ("Þýskalandi", "Country"), ("Þýskalands", "Country")]),
    # -ía countries, and irregular ones from the supplement
    ("Ég kom frá Ítalíu, bjó á Spáni, í Danmörku og í Bandaríkjunum. Spánn er heitur.",
     [("Ítalíu", "Country"), ("Spáni", "Country"), ("Danmörku", "Country"),
      ("Bandaríkjunum", "Country"), ("Spánn", "Country")]),
    # language nouns (weak, -u in the oblique cases, u-umlaut: danska -> dönsku)
    ("Ég tala íslensku, pólsku og dönsku. Íslenska er erfið.",
     [("íslensku", "Language"), ("pólsku", "Language"), ("dönsku", "Language"),
      ("Íslenska", "Language")]),
    # adjectives in several cases and genders, with u-umlaut (fransk- -> frönsk)
    ("Franskur matur, frönsk stelpa, með dönskum vinum, íslenskt vatn.",
     [("Franskur", "Nationality"), ("frönsk", "Nationality"), ("dönskum", "Nationality"),
      ("íslenskt", "Nationality")]),
    # people nouns: -ingur, -verji, -maður, weak -i
    ("Íslendingar, Pólverjar, Norðmenn og Frakkar tala saman við Íslending.",
     [("Íslendingar", "Nationality"), ("Pólverjar", "Nationality"),
      ("Norðmenn", "Nationality"), ("Frakkar", "Nationality"), ("Íslending", "Nationality")]),
    ("Ég flutti frá Kaupmannahöfn til Reykjavíkur.",
     [("Kaupmannahöfn", "City"), ("Reykjavíkur", "City")]),
])
def test_icelandic_case_forms(text, expected):
    assert masked(text, "is") == expected


def test_icelandic_false_positive_guards():
    # frakki (coat) and sósa (sauce; also CLDR's Icelandic name of Xhosa) are ordinary words;
    # "land" is the common noun, not a name
    assert masked("Ég keypti sósu og nýjan frakka. Ég á land og hús. Sósan var góð.",
                  "is") == []
    assert masked("Frakkinn minn er blár.", "is") == []


def test_icelandic_word_lists_come_from_cldr():
    is_ = lexicon_terms("is")
    assert is_["Úsbekistan"] == "Country" and is_["Úsbekistans"] == "Country"
    assert is_["Ungverjalandi"] == "Country"
    assert is_["úsbekska"] == "Language" and is_["úsbekskur"] == "Nationality"


# --- the L1 task: each record masked in its own language -----------------------------------------

def test_mask_records_uses_each_records_language():
    recs = [
        LearnerText("a1", "alc", "ar", "أنا من إندونيسيا وأدرس في مكة."),
        LearnerText("i1", "ice", "is", "Ég er frá Filippseyjum og tala tagalog."),
    ]
    out, counts = mask_records(recs)
    assert out[0].text == "أنا من بلد وأدرس في مدينة."
    assert out[1].text == "Ég er frá Land og tala Tungumál."
    assert counts == {"Country": 2, "Nationality": 0, "Language": 1, "City": 1}
    with pytest.raises(ConfigError, match=r"record 'x' .*supported: .*ar.*is"):
        mask_records([LearnerText("x", "c", "sw", "Ninatoka Kenya.")])


def test_l1_task_masks_arabic_and_icelandic_texts():
    recs = [LearnerText(f"a{i}", "alc", "ar", f"أنا من {c} وأحب العربية.", l1=l1)
            for i, (c, l1) in enumerate([("نيجيريا", "Hausa"), ("نيجيريا", "Hausa"),
                                         ("الصين", "Chinese"), ("الصين", "Chinese")])]
    recs += [LearnerText(f"i{i}", "ice", "is", f"Ég kem frá {c}.", l1=l1)
             for i, (c, l1) in enumerate([("Póllandi", "Polish"), ("Póllandi", "Polish")])]
    data = prepare_l1_task(recs, min_texts_per_l1=2, mask=True)
    texts = {r.id: r.text for r in data.records}
    assert texts["a0"] == texts["a2"] == "أنا من بلد وأحب لغة."
    assert texts["i0"] == "Ég kem frá Land."
    assert data.mask_counts == {"Country": 6, "Nationality": 0, "Language": 4, "City": 0}
