"""The engine's inputs: prepared records, the task's data, activations aligned with them.

``load_records`` (corpora -> cleaned, deduplicated, optionally masked records) and ``encode``
(records -> :class:`learnerprobe.tasks.TaskData`) are the one way ``learnerprobe run`` and
``learnerprobe train`` read data; :class:`Acts` is the engine's view of an activation array
(layers x texts x hidden in record order), kept memory-mapped where the cache serves it so.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from learnerprobe.config.corpus import CorpusConfig
from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.config.study import ExtractionConfig, Layers, PrepConfig, StudyConfig
from learnerprobe.corpora.registry import load_corpus_config
from learnerprobe.errors import ConfigError, LearnerprobeError
from learnerprobe.extract import get_activations
from learnerprobe.prep.clean import clean
from learnerprobe.prep.mask import mask_records
from learnerprobe.records import LearnerText
from learnerprobe.tasks import TaskData, get_task


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON values (objects by their ``__dict__``, else their string)."""
    try:
        return json.loads(json.dumps(x, default=lambda o: getattr(o, "__dict__", str(o))))
    except (TypeError, ValueError):
        return str(x)


def load_records(corpora: Sequence[CorpusConfig], prep: PrepConfig
                 ) -> tuple[list[LearnerText], dict[str, Any]]:
    """Load the configured corpora (``StudyConfig.corpus_configs``) and prepare them as
    ``[prep]`` says (clean, dedupe, mask)."""
    records: list[LearnerText] = []
    info: dict[str, Any] = {"loaded": {}}
    for corpus in corpora:
        # An entry carries its own root and loader options; its study name is `as` or `name`.
        name = corpus.study_name
        recs = load_corpus_config(corpus)
        info["loaded"][name] = len(recs)
        report = getattr(recs, "report", None)  # what the loader skipped or could not read
        if report:
            info.setdefault("load_report", {})[name] = report.to_dict()
        # The study's corpus is the configured name (merlin-cs, not the loader's "merlin"), so
        # protocols and tables tell sub-corpora apart; the loader's name stays in meta.
        records.extend(
            r if r.corpus == name else replace(r, corpus=name, meta={**r.meta,
                                                                     "corpus_loader": r.corpus})
            for r in recs)
    if prep.clean:
        records, report = clean(records)
        info["clean"] = jsonable(report)
    if prep.dedupe:
        seen: set[str] = set()
        kept = []
        for r in records:
            if r.hash not in seen:
                seen.add(r.hash)
                kept.append(r)
        info["duplicates_dropped"] = len(records) - len(kept)
        records = kept
    if prep.mask:
        records, counts = mask_records(records)
        info["mask"] = jsonable(counts)
    return records, info


def encode(cfg: StudyConfig, records: list[LearnerText], task: str | None = None) -> TaskData:
    """The task's data (``learnerprobe.tasks``; ``task``: default the config's): labels
    mapped, unlabelled texts dropped, classes checked; the one place that hands a task its
    sections of the config."""
    return get_task(task or cfg.task).prepare(records, labels=cfg.labels,
                                              corpora=cfg.corpus_names, prep=cfg.prep,
                                              nli=cfg.nli_config)


@dataclass
class Acts:
    """The engine's view of an Activations object: layers x texts x hidden, in record order."""

    array: np.ndarray
    layers: list[int]
    key: str
    width: int
    meta: dict[str, Any]


def acts_key(a: Any) -> str:
    """The activation cache folder's name (it is the cache key), else a hash of the array."""
    path = getattr(a, "cache_path", None)
    if path:
        return Path(path).name
    h = hashlib.sha256(np.ascontiguousarray(a.array).tobytes())
    return "array-" + h.hexdigest()[:16]


def adapt_activations(a: Any, data: TaskData, cfg_layers: Layers) -> Acts:
    """Align an Activations object to the records and pick the configured layers (a view of a
    memory-mapped array when nothing needs reordering)."""
    arr = a.array
    ids = getattr(a, "ids", None)
    if ids is not None and list(ids) != list(data.ids):
        pos = {str(i): k for k, i in enumerate(ids)}
        missing = [i for i in data.ids if str(i) not in pos]
        if missing:
            raise LearnerprobeError(f"activations lack {len(missing)} texts, e.g. {missing[:3]}")
        arr = arr[:, [pos[str(i)] for i in data.ids]]
    avail = [int(x) for x in (getattr(a, "layers", None) or range(arr.shape[0]))]
    if cfg_layers == "all":
        want = avail
    else:
        bad = [x for x in cfg_layers if x not in avail]
        if bad:
            raise ConfigError(f"layers {bad} not extracted; available: {avail}")
        want = list(cfg_layers)
    rows = [avail.index(x) for x in want]
    if rows != list(range(arr.shape[0])):
        arr = arr[rows]
    meta = {k: getattr(a, k) for k in ("cache_hit", "n_truncated", "cache_path", "dtype",
                                       "device")
            if getattr(a, k, None) not in (None, "")}
    return Acts(np.asarray(arr, dtype=np.float32), want, acts_key(a),
                int(getattr(a, "hidden_size", arr.shape[-1])), jsonable(meta))


def extract_all(data: TaskData, models: Sequence[str], *, layers: Layers,
                extraction: ExtractionConfig, execution: ExecutionConfig,
                log: Callable[[str], None], progress: bool = True) -> dict[str, Any]:
    """Activations of the records for every configured model (cached by the extract module)."""
    out = {}
    kw = extraction.kwargs()
    wanted = None if layers == "all" else layers
    if execution.is_ray:  # Ray Data actors fill the cache; the reads below are then hits
        from learnerprobe.execution.ray_extract import fill_models  # heavy optional: ray

        fill_models(data.records, list(models), execution=execution, layers=wanted,
                    extraction=kw, log=log)
    for m in models:
        t0 = time.perf_counter()
        out[m] = get_activations(data.records, m, layers=wanted, progress=progress, **kw)
        hit = getattr(out[m], "cache_hit", None)
        log(f"  activations {m}: {out[m].array.shape} cache_hit={hit} "
            f"({time.perf_counter() - t0:.1f} s)")
    return out
