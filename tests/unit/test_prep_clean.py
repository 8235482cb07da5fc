"""Cleaning: broken rows, duplicates (exact and whitespace/case), NFC, no corrections."""

import unicodedata

from learnerprobe.prep.clean import REASONS, clean
from learnerprobe.records import LearnerText


def rec(i, text, corpus="c", lang="de", **kw):
    return LearnerText(str(i), corpus, lang, text, **kw)


def test_drops_with_reasons_and_keeps_first():
    decomposed = unicodedata.normalize("NFD", "Ich heiße Jürgen und wohne in Köln.")
    recs = [
        rec(1, "Ich habe ein Hund."),
        rec(2, ""),
        rec(3, "   \n\t "),
        rec(4, "... !!! 123"),
        rec(5, "Ich habe ein Hund."),  # exact duplicate of 1
        rec(6, "ich  habe EIN\nhund. "),  # whitespace/case duplicate of 1
        rec(7, decomposed),
        LearnerText("8", "c", None, "Text ohne Sprache"),  # type: ignore[arg-type]
        rec(1, "Anderer Text, gleiche ID."),
        rec(9, "Ich heiße Jürgen und wohne in Köln."),  # NFC-equal to 7
        rec(10, "Ein anderer Text."),
    ]
    out, report = clean(recs)
    assert [r.id for r in out] == ["1", "7", "10"]
    assert report.counts == {
        "missing_field": 1, "duplicate_id": 1, "empty": 2, "no_letters": 1, "too_short": 0,
        "duplicate_exact": 2, "duplicate_normalised": 1,
    }
    assert report.dropped["empty"] == ["2", "3"]
    assert report.dropped["duplicate_exact"] == ["5", "9"]
    assert report.n_in == 11 and report.n_out == 3 and report.n_nfc_changed == 1
    assert out[1].text == unicodedata.normalize("NFC", decomposed)
    assert recs[6].text == decomposed  # input untouched
    # learner errors are kept verbatim
    assert out[0].text == "Ich habe ein Hund."
    d = report.to_dict()
    assert d["n_dropped"] == 8 and set(d["counts"]) == set(REASONS)


def test_without_dedupe_and_min_chars():
    recs = [rec(1, "Hallo"), rec(2, "Hallo"), rec(3, "ok")]
    out, report = clean(recs, dedupe=False, min_chars=3)
    assert [r.id for r in out] == ["1", "2"]
    assert report.dropped["too_short"] == ["3"]


def test_duplicates_across_corpora_are_found():
    out, report = clean([rec(1, "Same text.", corpus="a"), rec(1, "Same text.", corpus="b")])
    assert len(out) == 1 and report.dropped["duplicate_exact"] == ["1"]
