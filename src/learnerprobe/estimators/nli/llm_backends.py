"""LLM backends for zero-shot NLI: a local transformers causal LM and any OpenAI-compatible server.

Both answer the same two questions for a list of user messages (prompts):

* ``generate(messages, max_new_tokens)`` -> greedy answers (free-generation scorer);
* ``score(messages, candidates)`` -> ``(logp, n_tokens)``, each ``(n_messages, n_candidates)``:
  the summed log-probability of each candidate as the answer and how many tokens it took
  (closed-set scorer).

Scoring takes care to score exactly the answer's tokens. The prompt and the answer are
tokenised *together* (tokenisers merge across a boundary, e.g. a space or word piece), and the
answer span is every token that covers at least one character of the answer. For plain
completion prompts the prompt's trailing whitespace moves into the answer ("Answer:" +
" Russian"), the convention of lm-evaluation-harness; with a chat template the answer follows
the generation prompt directly, as the model's reply would.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from learnerprobe.errors import LearnerprobeError
from learnerprobe.models.device import resolve_device
from learnerprobe.models.loading import load_model

# heavy optional imports stay local: torch (local LLM) and httpx (OpenAI-compatible server).


class BackendError(LearnerprobeError):
    """An LLM backend failed (server unreachable, unsupported feature, model not loadable)."""


@runtime_checkable
class LLMBackend(Protocol):
    """What the zero-shot classifier needs from an LLM."""

    def generate(self, messages: Sequence[str], max_new_tokens: int = 8) -> list[str]: ...

    def score(
        self, messages: Sequence[str], candidates: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]: ...


def split_trailing_space(prompt: str, answer: str) -> tuple[str, str]:
    """Move the prompt's trailing whitespace into the answer (tokenisers attach it forward)."""
    stripped = prompt.rstrip()
    return stripped, prompt[len(stripped):] + answer


def answer_token_mask(offsets: Sequence[tuple[int, int]], prompt_chars: int) -> np.ndarray:
    """Which tokens cover a character of the answer, i.e. end after the prompt's last char.

    Special tokens (offset ``(0, 0)``) never count; a token merged across the boundary does.
    """
    return np.array([(e > prompt_chars) and (e > s) for s, e in offsets], dtype=bool)


# --------------------------------------------------------------------------------------------
# Local transformers causal LM
# --------------------------------------------------------------------------------------------


def _resolve_causal_lm(model: str | Path) -> tuple[Any, Any]:
    """Load (tokenizer, causal LM) for a registry name, a local folder or a hub id.

    Offline providers (``gemma3-270m``) are prepared on first use by the model registry.
    """
    try:
        tok, lm, _ = load_model(str(model), device="cpu", dtype="float32", causal_lm=True)
    except (OSError, ValueError) as e:
        raise BackendError(f"cannot load causal LM {str(model)!r}: {e}") from e
    return tok, lm



class LocalCausalLM:
    """A transformers causal LM on this machine (``gemma3-270m`` offline, any hub/local model).

    ``model`` is a registry name, a folder, a hub id or a ``(tokenizer, model)`` pair. The chat
    template is used when the tokenizer has one (``use_chat_template``); otherwise the message
    is followed by ``completion_suffix`` and the answer by a leading space. ``share_prefix``
    runs the prompt once and scores all candidates from its KV cache (about K times faster);
    turn it off for models whose cache cannot be repeated across a batch.
    """

    def __init__(
        self,
        model: str | Path | tuple[Any, Any] = "gemma3-270m",
        *,
        device: str = "auto",
        dtype: str = "float32",
        use_chat_template: bool = True,
        completion_suffix: str = "\nAnswer: ",
        share_prefix: bool = True,
        batch_size: int = 8,
    ) -> None:
        import torch

        if isinstance(model, tuple):
            self.tokenizer, self.model = model
        else:
            self.tokenizer, self.model = _resolve_causal_lm(model)
        self.device = resolve_device(device, mps=False)
        torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        self.model.to(device=self.device, dtype=torch_dtype)
        self.model.eval()
        self.use_chat_template = bool(use_chat_template and self.tokenizer.chat_template)
        self.completion_suffix = completion_suffix
        self.share_prefix = share_prefix
        self.batch_size = batch_size

    # -- prompt formatting --------------------------------------------------------------------
    def format_prompt(self, message: str) -> str:
        """The exact text the model sees before its answer."""
        if self.use_chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
            )
        return message + self.completion_suffix

    def _encode(self, text: str) -> dict[str, Any]:
        # A rendered chat template already holds BOS; plain prompts get the tokenizer's own.
        return self.tokenizer(
            text,
            add_special_tokens=not self.use_chat_template,
            return_offsets_mapping=bool(self.tokenizer.is_fast),
        )

    def answer_tokens(self, prompt: str, answer: str) -> tuple[list[int], int]:
        """Token ids of prompt+answer and the index where the answer span starts.

        The span is the tokens covering an answer character (offsets of a fast tokenizer);
        slow tokenizers fall back to the common prefix with the prompt tokenised alone.
        Special tokens the tokenizer appends (an EOS/SEP) are cut off. Without a chat template
        the prompt's trailing space moves into the answer; a template's trailing newline is
        structure, not part of the answer, and stays.
        """
        if not self.use_chat_template:
            prompt, answer = split_trailing_space(prompt, answer)
        enc = self._encode(prompt + answer)
        ids = list(enc["input_ids"])
        if "offset_mapping" in enc:
            mask = answer_token_mask(enc["offset_mapping"], len(prompt))
            pos = np.flatnonzero(mask)
            if len(pos) == 0:
                raise BackendError(f"answer {answer!r} produced no tokens")
            start, end = int(pos[0]), int(pos[-1]) + 1
            return ids[:end], start
        p_ids = list(self._encode(prompt)["input_ids"])
        special = set(self.tokenizer.all_special_ids)
        while ids and ids[-1] in special:
            ids.pop()
        start = 0
        while start < min(len(p_ids), len(ids)) and p_ids[start] == ids[start]:
            start += 1
        if start >= len(ids):
            raise BackendError(f"answer {answer!r} produced no tokens")
        return ids, start

    # -- closed-set scoring -------------------------------------------------------------------
    def score(
        self, messages: Sequence[str], candidates: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Summed log-probability of each candidate as the answer to each message."""
        logp = np.zeros((len(messages), len(candidates)))
        ntok = np.zeros((len(messages), len(candidates)), dtype=int)
        for i, message in enumerate(messages):
            prompt = self.format_prompt(message)
            seqs = [self.answer_tokens(prompt, c) for c in candidates]
            if self.share_prefix:
                logp[i] = self._score_shared(seqs)
            else:
                logp[i] = self._score_full(seqs)
            ntok[i] = [len(ids) - start for ids, start in seqs]
        return logp, ntok

    def _score_full(self, seqs: list[tuple[list[int], int]]) -> np.ndarray:
        """Reference path: one full forward pass per prompt+answer sequence (right-padded)."""
        import torch

        out = np.zeros(len(seqs))
        for b in range(0, len(seqs), self.batch_size):
            chunk = seqs[b : b + self.batch_size]
            width = max(len(ids) for ids, _ in chunk)
            pad = self.tokenizer.pad_token_id or 0
            x = torch.full((len(chunk), width), pad, dtype=torch.long)
            attn = torch.zeros_like(x)
            for j, (ids, _) in enumerate(chunk):
                x[j, : len(ids)] = torch.tensor(ids)
                attn[j, : len(ids)] = 1
            with torch.inference_mode():
                logits = self.model(
                    input_ids=x.to(self.device), attention_mask=attn.to(self.device)
                ).logits.float()
            lp = torch.log_softmax(logits, dim=-1).cpu()
            for j, (ids, start) in enumerate(chunk):
                tgt = torch.tensor(ids[start:])
                pos = torch.arange(start - 1, len(ids) - 1)
                out[b + j] = lp[j, pos, tgt].sum().item()
        return out

    def _score_shared(self, seqs: list[tuple[list[int], int]]) -> np.ndarray:
        """Run the shared prefix once, then all candidate continuations from its KV cache.

        Continuations are right-padded; a causal model's real tokens never see later padding,
        so no attention mask is needed.
        """
        import torch

        first = min(start for _, start in seqs)
        prefix = seqs[0][0][:first]
        if first < 1 or any(ids[:first] != prefix for ids, _ in seqs):
            return self._score_full(seqs)  # no common prefix to share
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.tensor([prefix], device=self.device),
                use_cache=True,
                logits_to_keep=1,
            )
            cache = out.past_key_values
            last = torch.log_softmax(out.logits[0, -1].float(), dim=-1).cpu()
            tails = [ids[first:] for ids, _ in seqs]
            width = max(len(t) for t in tails)
            pad = self.tokenizer.pad_token_id or 0
            x = torch.full((len(tails), width), pad, dtype=torch.long)
            for j, t in enumerate(tails):
                x[j, : len(t)] = torch.tensor(t)
            cache.batch_repeat_interleave(len(tails))
            logits = self.model(
                input_ids=x.to(self.device), past_key_values=cache, use_cache=True
            ).logits.float()
            lp = torch.log_softmax(logits, dim=-1).cpu()
        res = np.zeros(len(seqs))
        for j, (ids, start) in enumerate(seqs):
            total = 0.0
            for k in range(start, len(ids)):  # token k predicted from position k-1
                p = k - 1 - first
                total += (last[ids[k]] if p < 0 else lp[j, p, ids[k]]).item()
            res[j] = total
        return res

    # -- free generation ----------------------------------------------------------------------
    def generate(self, messages: Sequence[str], max_new_tokens: int = 8) -> list[str]:
        """Greedy answers (left-padded batches; special tokens stripped)."""
        import torch

        tok = self.tokenizer
        side, tok.padding_side = tok.padding_side, "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        answers: list[str] = []
        try:
            for b in range(0, len(messages), self.batch_size):
                prompts = [self.format_prompt(m) for m in messages[b : b + self.batch_size]]
                enc = tok(
                    prompts,
                    add_special_tokens=not self.use_chat_template,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                with torch.inference_mode():
                    out = self.model.generate(
                        input_ids=enc["input_ids"],
                        attention_mask=enc["attention_mask"],
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        pad_token_id=tok.pad_token_id,
                    )
                new = out[:, enc["input_ids"].shape[1] :]
                answers += [s.strip() for s in tok.batch_decode(new, skip_special_tokens=True)]
        finally:
            tok.padding_side = side
        return answers


# --------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP server (vLLM, llama.cpp server, Ollama, ...)
# --------------------------------------------------------------------------------------------


class OpenAICompatible:
    """Any server speaking the OpenAI API, addressed by URL.

    Generation uses ``POST /v1/chat/completions`` (the server applies the model's chat
    template). Closed-set scoring uses ``POST /v1/completions`` with ``echo`` and ``logprobs``
    (vLLM supports it; llama.cpp server and Ollama do not, and say so with a clear error), on
    ``message + completion_suffix`` followed by each candidate. 5xx answers, timeouts and
    connection errors are retried ``max_retries`` times with exponential backoff; other errors
    fail at once. ``api_key`` defaults to ``$OPENAI_API_KEY`` when set.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        *,
        backoff: float = 0.5,
        completion_suffix: str = "\nAnswer: ",
        temperature: float = 0.0,
    ) -> None:
        url = base_url.rstrip("/")
        self.base_url = url if url.endswith("/v1") else url + "/v1"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.completion_suffix = completion_suffix
        self.temperature = temperature
        self.n_retries_ = 0  # retries made so far (for logs and tests)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        url = f"{self.base_url}/{path}"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        last: str = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.n_retries_ += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                r = httpx.post(url, json=payload, headers=headers, timeout=self.timeout)
            except httpx.TimeoutException:
                last = f"timed out after {self.timeout:g} s"
                continue
            except httpx.TransportError as e:
                last = f"connection failed ({e})"
                continue
            if r.status_code >= 500:
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                continue
            if r.status_code >= 400:
                raise BackendError(f"POST {url} -> HTTP {r.status_code}: {r.text[:300]}")
            try:
                return r.json()
            except ValueError as e:
                raise BackendError(f"POST {url} returned non-JSON: {r.text[:200]!r}") from e
        raise BackendError(f"POST {url} failed after {self.max_retries + 1} attempts: {last}")

    def generate(self, messages: Sequence[str], max_new_tokens: int = 8) -> list[str]:
        answers = []
        for m in messages:
            data = self._post(
                "chat/completions",
                {
                    "model": self.model,
                    "messages": [{"role": "user", "content": m}],
                    "max_tokens": max_new_tokens,
                    "temperature": self.temperature,
                },
            )
            try:
                answers.append(str(data["choices"][0]["message"]["content"] or "").strip())
            except (KeyError, IndexError, TypeError) as e:
                raise BackendError(f"unexpected chat/completions response: {data!r:.300}") from e
        return answers

    def score(
        self, messages: Sequence[str], candidates: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        logp = np.zeros((len(messages), len(candidates)))
        ntok = np.zeros((len(messages), len(candidates)), dtype=int)
        for i, m in enumerate(messages):
            pairs = [split_trailing_space(m + self.completion_suffix, c) for c in candidates]
            data = self._post(
                "completions",
                {
                    "model": self.model,
                    "prompt": [p + a for p, a in pairs],
                    "max_tokens": 1,
                    "echo": True,
                    "logprobs": 1,
                    "temperature": 0.0,
                },
            )
            choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
            if len(choices) != len(pairs):
                raise BackendError(
                    f"{self.base_url}/completions returned {len(choices)} choices for "
                    f"{len(pairs)} prompts"
                )
            for k, ((p, a), ch) in enumerate(zip(pairs, choices, strict=True)):
                logp[i, k], ntok[i, k] = _echo_answer_logprob(ch, len(p), len(p + a))
        return logp, ntok


def _echo_answer_logprob(choice: dict[str, Any], prompt_chars: int, total_chars: int) -> tuple[
    float, int
]:
    """Sum the echoed log-probs of the tokens that cover answer characters."""
    lp = choice.get("logprobs") or {}
    tokens, values, offsets = lp.get("tokens"), lp.get("token_logprobs"), lp.get("text_offset")
    if not tokens or values is None or offsets is None:
        raise BackendError(
            "the server does not return echoed prompt log-probabilities (/v1/completions with "
            "echo and logprobs); use scorer='generate' with this server"
        )
    total, n = 0.0, 0
    for j, (tok, val, start) in enumerate(zip(tokens, values, offsets, strict=True)):
        end = offsets[j + 1] if j + 1 < len(offsets) else start + len(tok)
        if start >= total_chars:  # generated tokens after the echo
            break
        if end > prompt_chars and end > start:
            if val is None:
                raise BackendError("the server gave no log-probability for an answer token")
            total += float(val)
            n += 1
    if n == 0:
        raise BackendError("no echoed tokens cover the answer; does the server support echo?")
    return total, n


def make_backend(spec: Any, **options: Any) -> LLMBackend:
    """A backend from a config value: an object, a model name/folder, or a dict.

    Dicts: ``{"type": "openai", "base_url": ..., "model": ...}`` or
    ``{"type": "local", "model": "gemma3-270m", ...}``.
    """
    if isinstance(spec, LLMBackend) and not isinstance(spec, (str, dict)):
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        kind = spec.pop("type", "local")
        if kind in ("openai", "openai-compatible", "http"):
            return OpenAICompatible(**spec)
        if kind == "local":
            return LocalCausalLM(spec.pop("model", "gemma3-270m"), **{**options, **spec})
        raise BackendError(f"unknown backend type {kind!r}; use 'local' or 'openai'")
    if isinstance(spec, (str, Path, tuple)):
        return LocalCausalLM(spec, **options)
    raise BackendError(f"cannot make an LLM backend from {type(spec).__name__}")
