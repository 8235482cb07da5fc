"""Zero-shot NLI: alias normalisation, closed-set scoring on the right tokens, the classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone

from learnerprobe.corpora.languages import language_code
from learnerprobe.estimators.nli.aliases import match_answer, parse_language
from learnerprobe.estimators.nli.llm_backends import (
    LocalCausalLM,
    answer_token_mask,
    split_trailing_space,
)
from learnerprobe.estimators.nli.zeroshot import DEFAULT_TEMPLATE, UNPARSED, ZeroShotL1Classifier
from learnerprobe.records import LearnerText

CANDS = ["Arabic", "English", "Hungarian", "Mandarin", "Persian", "Polish", "Portuguese",
         "Russian", "Spanish", "Turkish"]


# -- alias normalisation ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Chinese", "Mandarin"),
        ("chinese.", "Mandarin"),
        ("Mandarin Chinese", "Mandarin"),
        ("Taiwanese", "Mandarin"),
        ("Brazilian", "Portuguese"),
        ("Brazilian Portuguese", "Portuguese"),
        ("Farsi", "Persian"),
        ("Iranian", "Persian"),
        ("spanish", "Spanish"),
        ("SPANISH", "Spanish"),
        ("Mexican", "Spanish"),
        ("The answer is: Russian.", "Russian"),
        ("Native language - Turkish", "Turkish"),
        ("**Polish**", "Polish"),
        ('"Hungarian"', "Hungarian"),
        ("I think the writer is Hungarian", "Hungarian"),
        ("Russisch", "Russian"),  # the target language's own name for the L1
        ("Türkisch", "Turkish"),
        ("русский", "Russian"),
        ("Arab", "Arabic"),
        ("English", "English"),
        ("German", None),  # a language, but not a candidate
        ("It is unclear", None),  # "it"/"is" are country codes, not answers
        ("I cannot tell.", None),
        ("", None),
        (None, None),
    ],
)
def test_match_answer(answer: str | None, expected: str | None) -> None:
    assert match_answer(answer, CANDS) == expected


def test_match_answer_returns_the_candidates_spelling() -> None:
    # Labels named "Chinese" in one corpus and "Mandarin" in another both match.
    assert match_answer("mandarin", ["Chinese", "Korean"]) == "Chinese"
    assert match_answer("Persian", ["farsi", "Urdu"]) == "farsi"


def test_parse_language_without_candidates() -> None:
    assert parse_language("farsi") == "Persian"
    assert parse_language("Chinese") == "Mandarin"  # project convention
    assert parse_language("Germany") == "German"
    assert parse_language("no idea") is None
    assert language_code("Mandarin", answers=True) == language_code("Chinese", answers=True) == "zh"


# -- closed-set scoring ------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread on a busy machine; restore the global setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_lm():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from learnerprobe.models.testing import tiny_tokenizer

    tok = tiny_tokenizer()
    cfg = Qwen3Config(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, intermediate_size=64, max_position_embeddings=512,
        pad_token_id=0, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(cfg).eval()
    return tok, model


def _manual_logp(model, ids: list[int], span: slice) -> float:
    """Independent reference: one forward pass, sum of log p(token_t | tokens_<t) over span."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    return float(sum(lp[t - 1, ids[t]] for t in range(span.start, span.stop)))


def test_trailing_space_moves_into_answer() -> None:
    assert split_trailing_space("Answer: ", "Russian") == ("Answer:", " Russian")
    # token 3 ends after char 7 (the prompt's length) -> answer; (0, 0) is a special token
    mask = answer_token_mask([(0, 0), (0, 6), (6, 7), (7, 15), (0, 0)], 7)
    assert mask.tolist() == [False, False, False, True, False]


@pytest.mark.parametrize("share_prefix", [True, False])
def test_closed_set_scores_the_answer_tokens(tiny_lm, share_prefix: bool) -> None:
    tok, model = tiny_lm
    backend = LocalCausalLM((tok, model), share_prefix=share_prefix)
    msg = "Ich habe eine Wohnung in der Stadt gesucht."
    cands = ["Russian", "Tagalog", "Hungarian"]  # "tag ##alo ##g": three word pieces
    logp, ntok = backend.score([msg], cands)
    prompt = msg + backend.completion_suffix  # no chat template: plain completion
    for k, cand in enumerate(cands):
        # reference ids built separately: [CLS] prompt tokens, then the answer's tokens
        p_ids = tok(prompt.rstrip())["input_ids"][:-1]  # drop [SEP]
        a_ids = tok(" " + cand, add_special_tokens=False)["input_ids"]
        ref = _manual_logp(model, p_ids + a_ids, slice(len(p_ids), len(p_ids) + len(a_ids)))
        assert ntok[0, k] == len(a_ids)
        assert logp[0, k] == pytest.approx(ref, abs=1e-4)
    assert ntok[0, 1] > 1  # the multi-token candidate really sums several tokens


def test_closed_set_token_merged_across_boundary(tiny_lm) -> None:
    tok, model = tiny_lm
    backend = LocalCausalLM((tok, model))
    # "pol" + "ish" tokenises as one word piece "polish": that token carries the answer
    ids, start = backend.answer_tokens("Answer: pol", "ish")
    assert tok.convert_ids_to_tokens(ids[start:]) == ["polish"]
    pre = tok("Answer:")["input_ids"][:-1]
    assert ids[:start] == pre
    ref = _manual_logp(model, ids, slice(start, len(ids)))
    assert backend._score_full([(ids, start)])[0] == pytest.approx(ref, abs=1e-5)


def test_closed_set_with_chat_template(tiny_lm) -> None:
    tok, model = tiny_lm
    old = tok.chat_template
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>\n{% endif %}"
    )
    try:
        backend = LocalCausalLM((tok, model))
        assert backend.use_chat_template
        prompt = backend.format_prompt("Welche Sprache?")
        assert prompt == "<user> Welche Sprache?\n<assistant>\n"
        logp, ntok = backend.score(["Welche Sprache?"], ["Russian", "Turkish"])
        # template path: no [CLS] added, the answer directly follows the newline
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        for k, cand in enumerate(["Russian", "Turkish"]):
            a_ids = tok(cand, add_special_tokens=False)["input_ids"]
            ref = _manual_logp(model, p_ids + a_ids, slice(len(p_ids), len(p_ids) + len(a_ids)))
            assert logp[0, k] == pytest.approx(ref, abs=1e-4)
            assert ntok[0, k] == len(a_ids)
    finally:
        tok.chat_template = old


def _records(texts: list[str], lang: str = "de") -> list[LearnerText]:
    return [
        LearnerText(id=f"t{i}", corpus="test", language=lang, text=t) for i, t in enumerate(texts)
    ]


def test_classifier_closed_probabilities(tiny_lm) -> None:
    tok, model = tiny_lm
    backend = LocalCausalLM((tok, model))
    texts = ["Ich wohne in Berlin.", "Das Wetter ist gut heute.", "Ich suche eine Arbeit."]
    y = ["Russian", "Polish", "Turkish"]
    clf = ZeroShotL1Classifier(backend=backend).fit(_records(texts), y)
    assert clf.classes_.tolist() == ["Polish", "Russian", "Turkish"]
    proba = clf.predict_proba(_records(texts))
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    # the distribution is the softmax of the candidates' log-likelihoods from the backend
    logp, _ = backend.score([clf.prompt(t, "German") for t in texts], clf.classes_.tolist())
    e = np.exp(logp - logp.max(axis=1, keepdims=True))
    np.testing.assert_allclose(proba, e / e.sum(axis=1, keepdims=True), atol=1e-9)
    assert (clf.predict(_records(texts)) == clf.classes_[proba.argmax(axis=1)]).all()
    assert clf.top_k(_records(texts), k=2).shape == (3, 2)
    # length normalisation changes the scores whenever candidates differ in token count
    mean = ZeroShotL1Classifier(backend=backend, length_norm="mean").fit(texts, y)
    mean.set_params(target_language="de")
    assert mean.predict_proba(texts).shape == (3, 3)
    assert clone(clf).get_params()["scorer"] == "closed"
    # contextual calibration subtracts the content-free ("N/A") scores before the softmax
    cal = ZeroShotL1Classifier(backend=backend, calibrate=True).fit(_records(texts), y)
    free, _ = backend.score([cal.prompt("N/A", "German")], cal.classes_.tolist())
    e = np.exp(logp - free)
    np.testing.assert_allclose(cal.predict_proba(_records(texts)), e / e.sum(axis=1, keepdims=True),
                               atol=1e-9)


def test_prompt_fills_the_target_language() -> None:
    clf = ZeroShotL1Classifier(backend=None).fit(["a", "b"], ["Polish", "Russian"])
    msg = clf.prompt("Ich bin hier.", "Italian")
    assert msg.startswith(
        "You are presented with a text written in Italian by a person learning Italian as a "
        "second language."
    )
    assert msg.endswith("Respond with only the name of the native language in one word.")
    assert "Ich bin hier." in msg and "{text}" in DEFAULT_TEMPLATE


def test_plain_strings_need_a_target_language() -> None:
    from learnerprobe.errors import ConfigError

    clf = ZeroShotL1Classifier(backend=None).fit(["a", "b"], ["Polish", "Russian"])
    with pytest.raises(ConfigError, match="target language"):
        clf.predict_proba(["Ich bin hier."])


class _CannedBackend:
    """Test double for the classifier logic: answers in order, records prompts."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.seen: list[str] = []

    def generate(self, messages, max_new_tokens=8):
        self.seen += list(messages)
        return self.answers[: len(messages)]

    def score(self, messages, candidates):  # pragma: no cover - not used here
        raise AssertionError


def test_generate_scorer_counts_unparsed_answers() -> None:
    backend = _CannedBackend(["Chinese.", "I don't know", "Brazilian", "German"])
    texts = ["Text eins.", "Text zwei.", "Text drei.", "Text vier."]
    clf = ZeroShotL1Classifier(backend=backend, scorer="generate", target_language="de")
    clf.fit(texts, ["Mandarin", "Polish", "Portuguese", "Russian"])
    pred = clf.predict(texts)
    assert pred.tolist() == ["Mandarin", UNPARSED, "Portuguese", UNPARSED]
    assert clf.n_unparsed_ == 2
    assert clf.answer_report() == {"parsed": 2, "other_language": 1, "unparsed": 1}
    proba = clf.predict_proba(texts)  # memoised: the backend is not asked again
    assert len(backend.seen) == 4
    np.testing.assert_allclose(proba[1], 0.25)
    assert proba[0, clf.classes_.tolist().index("Mandarin")] == 1.0
    zero = clone(clf).set_params(unparsed="zero").fit(texts, ["Mandarin", "Polish", "a", "b"])
    zero.backend = _CannedBackend(["nothing"] * 4)
    assert zero.predict_proba(texts)[0].sum() == 0.0
