"""Pin the exact model weights a bundle was trained with, and check them again when predicting.

``weights_pin(entry)`` returns ``{"sha256", "files", "hidden_size", "num_layers",
"max_positions"}``: the sha256 of every file that determines the model's outputs (weights,
config, tokenizer; see :data:`PINNED_SUFFIXES`) in the folder the entry resolves to (a prepared
provider folder, a folder under the model cache, or the hub snapshot in the local hub cache; the
only places a bundle's model may come from, :mod:`learnerprobe.models.sources`), a digest over
them, and the dimensions read from ``config.json``. Tiny test models have no files: their pin is a
digest of the seeded state dict.

Hashing large weights on every load would be slow, so file hashes are cached in a sidecar keyed
by each file's size and modification time (``.learnerprobe-hashes`` inside folders under the
models cache, otherwise under ``$LEARNERPROBE_CACHE/hash-cache/``). The sidecar is a speed cache,
not a security boundary: whoever can rewrite it can rewrite the weights next to it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from learnerprobe import paths
from learnerprobe.errors import BundleError
from learnerprobe.models import prepare
from learnerprobe.models.entry import ModelEntry
from learnerprobe.models.registry import provider_name
from learnerprobe.models.sources import bundle_model_folder
from learnerprobe.models.testing import tiny_model
from learnerprobe.outputs import OutputError, atomic_write_text, sha256_file

PINNED_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".gguf", ".pt", ".pth")
SIDECAR = ".learnerprobe-hashes"
_SKIP = {"learnerprobe-model.json"}  # the prepare manifest (holds timings); its hashes are checked


def _digest(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]}\n".encode())
    return h.hexdigest()


def _sidecar_path(folder: Path) -> Path:
    folder = folder.resolve()
    try:
        folder.relative_to(paths.models_dir().resolve())
        return folder / SIDECAR
    except ValueError:
        key = hashlib.sha256(str(folder).encode()).hexdigest()[:32]
        return paths.cache_root() / "hash-cache" / f"{key}.json"


def cached_hashes(folder: Path, names: list[str]) -> dict[str, str]:
    """sha256 of ``folder/name`` for each name, re-hashing only files whose size or mtime changed."""
    side = _sidecar_path(folder)
    try:
        cache = json.loads(side.read_text(encoding="utf-8"))
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    out: dict[str, str] = {}
    fresh: dict[str, Any] = {}
    for name in names:
        p = folder / name
        st = p.stat()
        key = [st.st_size, st.st_mtime_ns]
        hit = cache.get(name)
        if isinstance(hit, dict) and hit.get("key") == key and isinstance(hit.get("sha256"), str):
            out[name] = hit["sha256"]
        else:
            out[name] = sha256_file(p)
        fresh[name] = {"key": key, "sha256": out[name]}
    if fresh != cache:
        try:  # best effort: a read-only folder or cache just means hashing again next time
            side.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(side, json.dumps(fresh))
        except (OSError, OutputError):
            pass
    return out


def pinned_files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in PINNED_SUFFIXES and p.name not in _SKIP
        and not p.name.startswith(".")
    )


def resolve_folder(entry: ModelEntry, where: str = "bundle") -> Path | None:
    """The local folder an entry's weights are in (None for tiny test models), confined as a
    bundle's model must be (:func:`learnerprobe.models.sources.bundle_model_folder`: a registry
    provider, a hub id in the hub cache or a folder under the model cache; no custom code)."""
    return bundle_model_folder(entry, where)


def _dims(folder: Path) -> dict[str, int | None]:
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"hidden_size": None, "num_layers": None, "max_positions": None}
    if isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg["text_config"], **{k: v for k, v in cfg.items() if k != "text_config"}}

    def _int(*keys: str) -> int | None:
        for k in keys:
            v = cfg.get(k)
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                return v
        return None

    return {"hidden_size": _int("hidden_size", "d_model", "n_embd"),
            "num_layers": _int("num_hidden_layers", "n_layer", "num_layers"),
            "max_positions": _int("max_position_embeddings", "n_positions")}


def _tiny_pin(entry: ModelEntry) -> dict[str, Any]:
    _, model, _ = tiny_model(entry.source[len("tiny:"):], padding_side=entry.padding_side)
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    hf = model.config  # the transformers model config
    return {"sha256": h.hexdigest(), "files": {}, "hidden_size": int(hf.hidden_size),
            "num_layers": int(hf.num_hidden_layers),
            "max_positions": int(getattr(hf, "max_position_embeddings", 0)) or None}


def weights_pin(entry: ModelEntry) -> dict[str, Any]:
    """The pin recorded in a bundle manifest (see module docstring). Refuses (BundleError) a
    model a bundle may not name (:mod:`learnerprobe.models.sources`)."""
    folder = resolve_folder(entry, f"model {entry.name!r}")
    if folder is None:
        return _tiny_pin(entry)
    files = cached_hashes(folder, pinned_files(folder))
    if not any(n.endswith((".safetensors", ".bin", ".gguf", ".pt", ".pth")) for n in files):
        raise BundleError(f"{folder}: no weight files found to pin")
    return {"sha256": _digest(files), "files": files, **_dims(folder)}


def check_prepared(folder: Path) -> None:
    """A prepared provider folder must still hold the files its prepare manifest hashed."""
    manifest = prepare.read_manifest(folder)
    if manifest is None or not isinstance(manifest.get("files"), dict):
        return
    want: dict[str, str] = manifest["files"]
    have_names = [n for n in want if (folder / n).is_file()]
    have = cached_hashes(folder, have_names)
    bad = sorted(n for n in want if have.get(n) != want[n])
    if bad:
        raise BundleError(
            f"prepared model folder {folder} was changed after preparation ({', '.join(bad[:5])} "
            f"differ from {prepare.MANIFEST}); run `learnerprobe models prepare "
            f"{manifest.get('name', folder.name)} --force`"
        )


def verify_pin(entry: ModelEntry, pin: dict[str, Any], where: str = "bundle") -> Path | None:
    """Refuse (BundleError) when the weights ``entry`` resolves to differ from ``pin``.

    Returns the checked folder (None for tiny models).
    """
    folder = resolve_folder(entry, where)
    if folder is None:
        if _tiny_pin(entry)["sha256"] != pin.get("sha256"):
            raise BundleError(f"{where}: tiny model {entry.source} does not match the pinned weights")
        return None
    if provider_name(entry) is not None:
        check_prepared(folder)
    files = cached_hashes(folder, pinned_files(folder))
    if _digest(files) == pin.get("sha256"):
        return folder
    want = pin.get("files") or {}
    changed = sorted(n for n in set(want) & set(files) if want[n] != files[n])
    missing = sorted(set(want) - set(files))
    extra = sorted(set(files) - set(want))
    detail = "; ".join(x for x in (
        f"changed: {', '.join(changed[:5])}" if changed else "",
        f"missing: {', '.join(missing[:5])}" if missing else "",
        f"not in the pin: {', '.join(extra[:5])}" if extra else "") if x)
    raise BundleError(
        f"{where}: the weights of model {entry.name!r} in {folder} are not the ones the bundle was "
        f"trained with ({detail or 'digest differs'}); predictions would be wrong — use the same "
        "model files or retrain the bundle"
    )
