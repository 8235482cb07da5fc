"""Sentence-level SGD baseline: splitting and the summed-probability vote."""

import numpy as np

from learnerprobe.estimators.nli.sentence_sgd import (
    SentenceSGDClassifier,
    aggregate_sentence_proba,
    split_sentences,
)


def test_split_sentences_punctuation_and_newlines():
    text = "Hallo Maria! Wie geht es dir?\nIch bin in Berlin. Bis bald…  Tschüss"
    assert split_sentences(text) == [
        "Hallo Maria!", "Wie geht es dir?", "Ich bin in Berlin.", "Bis bald…", "Tschüss",
    ]
    assert split_sentences("keine Satzzeichen hier") == ["keine Satzzeichen hier"]
    assert split_sentences("  .  ") == ["."]  # never lose a text


def test_aggregation_is_argmax_of_summed_probabilities_not_majority_vote():
    # Text 0 has three sentences: two mildly favour class 0, one strongly favours class 1.
    # Majority vote of sentence labels says 0; the sum says 1 (0.45+0.45+0.0 < 0.55+0.55+1.0).
    p = np.array([[0.55, 0.45], [0.55, 0.45], [0.0, 1.0],   # text 0
                  [0.9, 0.1]])                              # text 1
    agg = aggregate_sentence_proba(p, [0, 0, 0, 1], n_texts=3)
    np.testing.assert_allclose(agg[0], [1.1 / 3, 1.9 / 3])
    np.testing.assert_allclose(agg[1], [0.9, 0.1])
    np.testing.assert_allclose(agg[2], [0.5, 0.5])  # a text without sentences: uniform
    assert agg[0].argmax() == 1
    votes = np.bincount(p[:3].argmax(axis=1), minlength=2).argmax()
    assert votes == 0  # so the test separates the two rules


class _LetterEmbedder:
    """Bag-of-characters embedding: enough signal for a constructed two-class task."""

    def __call__(self, sentences):
        from sklearn.feature_extraction.text import HashingVectorizer

        hv = HashingVectorizer(analyzer="char", ngram_range=(1, 2), n_features=256,
                               alternate_sign=False)
        return hv.transform(sentences).toarray().astype(np.float32)


def test_classifier_text_proba_is_sum_of_its_sentence_probabilities():
    rng = np.random.default_rng(0)
    a = ["xxxx yyy xx.", "xyx xxy yx.", "yyxx xx y."]
    b = ["qqq www qq.", "wq qwq ww.", "qww qq w."]
    texts, y = [], []
    for i in range(30):
        pool, lab = (a, "A") if i % 2 else (b, "B")
        texts.append(" ".join(rng.choice(pool, size=3)))
        y.append(lab)
    clf = SentenceSGDClassifier(embedder=_LetterEmbedder(), seed=0).fit(texts, y)
    assert list(clf.classes_) == ["A", "B"]
    assert (clf.predict(texts) == np.array(y)).mean() == 1.0
    doc = "xxxx yyy xx. qqq www qq. xyx xxy yx."
    sents = split_sentences(doc)
    E = clf.scaler_.transform(_LetterEmbedder()(sents))
    expected = clf.sgd_.predict_proba(E).sum(axis=0)
    np.testing.assert_allclose(clf.predict_proba([doc])[0], expected / expected.sum())
