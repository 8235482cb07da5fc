"""Zero-shot NLI with an LLM, prompted as in the reference work; an sklearn classifier over texts.

Two scorers:

* ``closed`` (default): the log-likelihood of each candidate L1 name as the model's answer,
  softmaxed over the candidates -> a full distribution and top-k; answers that are not languages
  cannot occur. ``length_norm="sum"`` (default) scores the whole answer string, the quantity
  that is a probability of the answer; ``"mean"`` divides by the answer's token count, which
  removes the bias against names split into many tokens at the price of no longer being a
  likelihood.
* ``generate``: greedy free answer of a few tokens, normalised with
  :func:`learnerprobe.estimators.nli.aliases.match_answer`. Parsed answers get probability 1.
  Answers that name no candidate are never dropped: they are counted (``n_unparsed_``,
  ``answers_``), ``predict`` returns :attr:`UNPARSED` for them (always an error), and
  ``predict_proba`` gives them a uniform row (``unparsed="uniform"``, the default, so top-k and
  log-loss stay defined as chance) or a zero row (``unparsed="zero"``).

``fit`` only records the classes (nothing is trained), so the classifier cross-validates and
stacks like every other NLI method. The target language comes from each record's
``language`` (ISO code) or from ``target_language`` for plain strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from learnerprobe.errors import ConfigError
from learnerprobe.estimators.nli.aliases import match_answer, parse_language
from learnerprobe.records import LearnerText

#: Reconstruction of the reference work's prompt; ``{target_language}`` and ``{text}`` are filled.
DEFAULT_TEMPLATE = (
    "You are presented with a text written in {target_language} by a person learning "
    "{target_language} as a second language. Based on the text, identify the native language "
    "(first language) of the person who wrote it.\n\n"
    "Text:\n{text}\n\n"
    "Respond with only the name of the native language in one word."
)
#: ``predict`` label for a free answer that names no candidate.
UNPARSED = "<unparsed>"


def target_language_name(code_or_name: str) -> str:
    """English name of the language written ("de" -> "German"; names pass through)."""
    from babel import Locale

    name = Locale.parse("en").languages.get(code_or_name.lower().replace("-", "_"))
    return name or code_or_name


def _texts_and_languages(X: Sequence[Any], default: str | None) -> list[tuple[str, str]]:
    out = []
    for i, x in enumerate(X):
        if isinstance(x, LearnerText):
            text, lang = x.text, x.language or default
        elif isinstance(x, dict) and "text" in x:
            text, lang = str(x["text"]), x.get("language") or default
        elif isinstance(x, str):
            text, lang = x, default
        else:
            raise TypeError(f"item {i}: expected str, LearnerText or dict, got {type(x).__name__}")
        if not lang:
            raise ConfigError(
                f"item {i}: the target language is unknown; pass records with `language` or "
                "set target_language (e.g. 'de')"
            )
        out.append((text, target_language_name(lang)))
    return out


class ZeroShotL1Classifier(ClassifierMixin, BaseEstimator):
    """LLM zero-shot L1 classifier (see the module docstring for the scorers).

    ``backend`` is an :class:`~learnerprobe.estimators.nli.llm_backends.LLMBackend`, a model
    name/folder for :class:`~learnerprobe.estimators.nli.llm_backends.LocalCausalLM`, or a dict such
    as ``{"type": "openai", "base_url": "http://localhost:8000", "model": "..."}``.
    ``answer_names`` maps a class to the word the model should say for it (default: the class).
    ``list_candidates`` appends "Choose one of: ..." to the prompt (off in the reference work).
    Texts longer than ``max_text_chars`` are cut. ``calibrate`` (closed scorer) subtracts each
    candidate's log-likelihood for a content-free text ("N/A"), the contextual calibration of
    Zhao et al. (2021): small LMs otherwise favour frequent names such as "English" whatever
    the text. Off by default, as in the reference work.
    """

    def __init__(
        self,
        backend: Any = "gemma3-270m",
        scorer: str = "closed",
        template: str = DEFAULT_TEMPLATE,
        target_language: str | None = None,
        length_norm: str = "sum",
        answer_names: dict[str, str] | None = None,
        list_candidates: bool = False,
        max_new_tokens: int = 8,
        max_text_chars: int = 4000,
        unparsed: str = "uniform",
        calibrate: bool = False,
        backend_options: dict[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.scorer = scorer
        self.template = template
        self.target_language = target_language
        self.length_norm = length_norm
        self.answer_names = answer_names
        self.list_candidates = list_candidates
        self.max_new_tokens = max_new_tokens
        self.max_text_chars = max_text_chars
        self.unparsed = unparsed
        self.calibrate = calibrate
        self.backend_options = backend_options

    # -- sklearn API ----------------------------------------------------------------------------
    def fit(self, X: Sequence[Any], y: Sequence[str]) -> ZeroShotL1Classifier:
        """Record the candidate classes; zero-shot, so nothing is learnt from ``X``."""
        if self.scorer not in ("closed", "generate"):
            raise ConfigError(f"zeroshot scorer must be 'closed' or 'generate', not {self.scorer!r}")
        if self.length_norm not in ("sum", "mean"):
            raise ConfigError(f"length_norm must be 'sum' or 'mean', not {self.length_norm!r}")
        if self.unparsed not in ("uniform", "zero"):
            raise ConfigError(f"unparsed must be 'uniform' or 'zero', not {self.unparsed!r}")
        if "{text}" not in self.template:
            raise ConfigError("zeroshot template must contain {text}")
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} items but y has {len(y)}")
        self.classes_ = np.unique(np.asarray(y, dtype=object).astype(str))
        if len(self.classes_) < 2:
            raise ConfigError("zeroshot needs at least two L1 classes")
        self._memo: dict[str, Any] = {}
        self.backend_ = None
        return self

    def predict_proba(self, X: Sequence[Any]) -> np.ndarray:
        """(n, K) probabilities over ``classes_`` (closed: softmax; generate: one-hot/uniform)."""
        check_is_fitted(self, "classes_")
        results = self._run(X)
        if self.scorer == "closed":
            return np.vstack([r for r in results])
        K = len(self.classes_)
        out = np.zeros((len(results), K))
        index = {c: j for j, c in enumerate(self.classes_)}
        for i, (_, label) in enumerate(results):
            if label is not None:
                out[i, index[label]] = 1.0
            elif self.unparsed == "uniform":
                out[i] = 1.0 / K
        return out

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        """Top-1 class; free answers naming no candidate give :data:`UNPARSED`."""
        check_is_fitted(self, "classes_")
        results = self._run(X)
        if self.scorer == "closed":
            return self.classes_[np.argmax(np.vstack(results), axis=1)]
        return np.array([UNPARSED if lab is None else lab for _, lab in results], dtype=object)

    def top_k(self, X: Sequence[Any], k: int = 3) -> np.ndarray:
        """(n, k) class names ranked by probability (closed scorer)."""
        proba = self.predict_proba(X)
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        return self.classes_[order]

    # -- internals ------------------------------------------------------------------------------
    def prompt(self, text: str, target_language: str) -> str:
        """The user message for one text."""
        if len(text) > self.max_text_chars:
            text = text[: self.max_text_chars]
        msg = self.template.format(text=text.strip(), target_language=target_language)
        if self.list_candidates:
            msg += " Choose one of: " + ", ".join(self._names()) + "."
        return msg

    def _names(self) -> list[str]:
        names = self.answer_names or {}
        return [names.get(c, c) for c in self.classes_]

    def _get_backend(self) -> Any:
        if self.backend_ is None:
            # heavy optional: LLM backends (torch or an HTTP client)
            from learnerprobe.estimators.nli.llm_backends import make_backend

            self.backend_ = make_backend(self.backend, **(self.backend_options or {}))
        return self.backend_

    def _run(self, X: Sequence[Any]) -> list[Any]:
        """Per text: a probability row (closed) or (answer, label) (generate); memoised."""
        items = _texts_and_languages(X, self.target_language)
        msgs = [self.prompt(t, lang) for t, lang in items]
        todo = [m for m in dict.fromkeys(msgs) if m not in self._memo]
        if todo:
            backend = self._get_backend()
            if self.scorer == "closed":
                logp, ntok = backend.score(todo, self._names())
                s = logp / ntok if self.length_norm == "mean" else logp
                if self.calibrate:
                    lang = {m: lg for m, (_, lg) in zip(msgs, items, strict=True)}
                    s = s - np.vstack([self._content_free(backend, lang[m]) for m in todo])
                s = s - s.max(axis=1, keepdims=True)
                p = np.exp(s)
                p /= p.sum(axis=1, keepdims=True)
                for m, row, raw in zip(todo, p, logp, strict=True):
                    self._memo[m] = row
                    self._memo["logp:" + m] = raw
            else:
                answers = backend.generate(todo, max_new_tokens=self.max_new_tokens)
                names = self._names()
                back = dict(zip(names, self.classes_, strict=True))
                for m, a in zip(todo, answers, strict=True):
                    lab = match_answer(a, names)
                    self._memo[m] = (a, None if lab is None else back[lab])
        results = [self._memo[m] for m in msgs]
        if self.scorer == "closed":
            self.loglik_ = np.vstack([self._memo["logp:" + m] for m in msgs])
        else:
            self.answers_ = [a for a, _ in results]
            self.n_unparsed_ = sum(lab is None for _, lab in results)
        return results

    def _content_free(self, backend: Any, target_language: str) -> np.ndarray:
        """Candidate scores for a content-free text (memoised), for calibration."""
        key = "content-free:" + target_language
        if key not in self._memo:
            logp, ntok = backend.score([self.prompt("N/A", target_language)], self._names())
            self._memo[key] = (logp / ntok if self.length_norm == "mean" else logp)[0]
        return self._memo[key]

    def answer_report(self) -> dict[str, int]:
        """Counts of the last ``generate`` run: parsed, other language, unparsed."""
        check_is_fitted(self, "answers_")
        names = self._names()
        counts = {"parsed": 0, "other_language": 0, "unparsed": 0}
        for a in self.answers_:
            if match_answer(a, names) is not None:
                counts["parsed"] += 1
            elif parse_language(a) is not None:
                counts["other_language"] += 1
            else:
                counts["unparsed"] += 1
        return counts
