"""Which model folders learnerprobe loads, and where a bundle's model may come from.

Custom code. transformers runs Python files shipped with a model when its config names a class
in them (``auto_map``) and ``trust_remote_code`` allows it -- and when the argument is left out
it *asks* on a terminal ("Do you wish to run the custom code? [y/N]"). learnerprobe never runs
such code: every ``from_pretrained`` call passes ``trust_remote_code=False``, and
:func:`refuse_custom_code` refuses a folder that would need code (a ``.py`` file in it, or an
``auto_map`` in its configs) before transformers sees it (:func:`refuse_remote_config` does the
same for a hub id, from its JSON alone).

Bundle sources. A bundle's ``model.source`` is a string from whoever made the bundle, so it may
only be (:func:`check_source`, from the string alone: nothing is read, hashed or listed):

- ``tiny:KIND``: a seeded test model built in code;
- ``provider:NAME`` with the registry entry of that exact name and source (prepared offline
  under the model cache);
- a hub id ``org/name`` (and a plain revision), read from the local Hugging Face cache only;
- an absolute, normalised path of a folder under the model cache ``$LEARNERPROBE_CACHE/models``
  (put a model of your own there to bundle it).

Anything else -- a relative path, a folder elsewhere, one inside the bundle -- is refused.
:func:`bundle_model_folder` then resolves symbolic links and refuses a folder, or any file in
it, that lands outside the model cache or the hub cache, and refuses custom code, all before
a weight file is hashed or a model loaded.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from learnerprobe import paths
from learnerprobe.errors import BundleError, LearnerprobeError, ModelError
from learnerprobe.models import prepare
from learnerprobe.models.entry import ModelEntry
from learnerprobe.models.registry import MODELS, PROVIDER_PREFIX
from learnerprobe.models.testing import TINY_KINDS

# heavy optional imports stay local: huggingface_hub and transformers (hub ids only).

CODE_SUFFIXES = (".py", ".pyc")
# the configs in which transformers looks for `auto_map` (model, tokenizer, processors)
CONFIG_FILES = ("config.json", "tokenizer_config.json", "processor_config.json",
                "preprocessor_config.json", "feature_extractor_config.json",
                "image_processor_config.json")
MAX_CONFIG_BYTES = 16 << 20
_HUB_PART = re.compile(r"[A-Za-z0-9][\w.\-]*")
_REVISION = re.compile(r"[\w.\-]+(/[\w.\-]+)*")
_ALLOWED = ("a registry model, tiny:KIND, a hub id org/name, or a folder under the model cache")


def _refuse(where: str, source: str, why: str) -> BundleError:
    shown = source if len(source) <= 200 else source[:200] + "..."
    return BundleError(f"{where}: model source {shown!r} is not allowed in a bundle ({why}); a "
                       f"bundle's model must be {_ALLOWED} {paths.models_dir()}")


def _under(path: str, roots: list[str]) -> bool:
    """Strictly below one of ``roots`` (all absolute and normalised), by the string alone."""
    return any(path.startswith(r.rstrip("/") + "/") for r in roots)


def _cache_roots() -> list[str]:
    root = paths.models_dir()
    return sorted({os.path.abspath(root), os.path.realpath(root)})


def _hub_id(source: str) -> bool:
    parts = source.split("/")
    return (len(parts) == 2 and all(_HUB_PART.fullmatch(p) for p in parts)
            and not any(p in (".", "..") or ".." in p or "--" in p for p in parts))


def check_source(model: dict[str, Any] | ModelEntry, where: str) -> str:
    """The kind of a bundle's model source ("tiny", "provider", "hub", "folder"), or a
    BundleError when a bundle may not name it. Decided from the strings alone."""
    get = model.get if isinstance(model, dict) else lambda k, d=None: getattr(model, k, d)
    source, name, revision = str(get("source", "")), str(get("name", "")), get("revision")
    if revision is not None and (not isinstance(revision, str) or len(revision) > 200
                                 or not _REVISION.fullmatch(revision)
                                 or any(p in (".", "..") for p in revision.split("/"))):
        raise _refuse(where, source, "revision is not a plain branch, tag or commit name")
    if source.startswith("tiny:"):
        if source[len("tiny:"):] not in TINY_KINDS:
            raise _refuse(where, source, f"tiny models are {', '.join(TINY_KINDS)}")
        return "tiny"
    if source.startswith(PROVIDER_PREFIX):
        entry = MODELS.get(name)
        if (source[len(PROVIDER_PREFIX):] not in prepare.PROVIDERS or entry is None
                or entry.source != source):
            raise _refuse(where, source, "not the offline provider of the registry model "
                                         f"{name[:100]!r}")
        return "provider"
    if source.startswith("/"):
        if os.path.normpath(source) != source:
            raise _refuse(where, source, "not a normalised absolute path")
        if not _under(source, _cache_roots()):
            raise _refuse(where, source, "a folder outside the model cache")
        return "folder"
    if _hub_id(source):
        return "hub"
    raise _refuse(where, source, "neither a hub id nor an absolute folder")


def _confine(path: Path, roots: list[str], where: str) -> Path:
    real = os.path.realpath(path)
    if not _under(real, roots):
        raise BundleError(f"{where}: the model folder or a file in it resolves outside the model "
                          "cache and the hub cache (a symbolic link?); refusing it")
    return Path(real)


def _hub_folder(entry: ModelEntry, where: str) -> tuple[Path, list[str]]:
    try:
        from huggingface_hub import constants, snapshot_download

        folder = Path(snapshot_download(entry.source, revision=entry.revision,
                                        local_files_only=True))
    except Exception as e:  # noqa: BLE001 - any hub failure means: not available locally
        raise BundleError(
            f"{where}: model {entry.name!r} ({entry.source}) is not in the local hub cache, so "
            f"its weights cannot be pinned or checked ({type(e).__name__})"
        ) from None
    root = Path(constants.HF_HUB_CACHE)
    return folder, sorted({os.path.abspath(root), os.path.realpath(root)})


def bundle_model_folder(entry: ModelEntry, where: str = "bundle") -> Path | None:
    """The folder a bundle's model resolves to (None for tiny test models), refused
    (BundleError) unless :func:`check_source` allows its source, it and every file in it
    resolve inside the model cache (or, for hub ids, the hub cache), and it needs no custom
    code. Prepares an offline provider that is not prepared yet."""
    kind = check_source(entry, where)
    if kind == "tiny":
        return None
    if kind == "hub":
        folder, roots = _hub_folder(entry, where)
    else:
        roots = _cache_roots()
        if kind == "provider":
            folder = prepare.prepared_path(entry.name)
            if prepare.read_manifest(folder) is None:  # offline and deterministic: do it now
                print(f"learnerprobe: preparing {entry.name} into {folder} (once, offline)",
                      file=sys.stderr)
                folder = prepare.prepare(entry.name)
        else:
            folder = Path(entry.source)
    real = _confine(folder, roots, where)
    if not real.is_dir():
        raise BundleError(f"{where}: model folder {folder} does not exist; prepare or copy the "
                          "model there")
    for d, dirs, files in os.walk(real, followlinks=False):
        for name in dirs + files:
            _confine(Path(d) / name, roots, where)
    refuse_custom_code(real, where, BundleError)
    return real


def _has_auto_map(obj: Any, depth: int = 0) -> bool:
    if depth > 8 or not isinstance(obj, dict):
        return False
    return "auto_map" in obj or any(_has_auto_map(v, depth + 1) for v in obj.values())


def refuse_custom_code(folder: Path, where: str, error: type[LearnerprobeError] = ModelError
                       ) -> None:
    """Refuse (``error``) a model folder that ships Python files or whose configs name custom
    classes (``auto_map``): loading it would need code from the folder. No .py file is read."""
    for _, _, files in os.walk(folder, followlinks=False):
        code = sorted(f for f in files if f.endswith(CODE_SUFFIXES))
        if code:
            raise error(f"{where}: the model folder holds Python code ({', '.join(code[:3])}); "
                        "learnerprobe never runs a model's custom code")
    for name in CONFIG_FILES:
        p = folder / name
        if not p.is_file():
            continue
        try:
            if p.stat().st_size > MAX_CONFIG_BYTES:
                raise error(f"{where}: {name} is over {MAX_CONFIG_BYTES >> 20} MiB")
            cfg = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise error(f"{where}: {name} of the model is not readable JSON") from None
        if _has_auto_map(cfg):
            raise error(f"{where}: {name} names custom code (auto_map); learnerprobe never runs "
                        "a model's custom code")


def refuse_remote_config(hub_id: str, where: str, **kw: Any) -> None:
    """The hub-id counterpart of :func:`refuse_custom_code`: read the model's and tokenizer's
    config JSON (from the hub cache, or downloaded) and refuse ``auto_map``. Runs no code."""
    from transformers import PretrainedConfig
    from transformers.models.auto.tokenization_auto import get_tokenizer_config

    try:
        cfg, _ = PretrainedConfig.get_config_dict(hub_id, **kw)
        tok_cfg = get_tokenizer_config(hub_id, **kw)
    except (OSError, ValueError):
        return  # missing or unreachable: from_pretrained reports it in its own words
    for name, obj in (("config.json", cfg), ("tokenizer_config.json", tok_cfg)):
        if _has_auto_map(obj):
            raise ModelError(f"{where}: {name} of {hub_id} names custom code (auto_map); "
                             "learnerprobe never runs a model's custom code")
