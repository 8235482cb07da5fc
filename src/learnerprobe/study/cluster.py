"""A study's activations filled on the configured cluster before the runner reads them.

With ``[execution] backend = "ray"`` the configured models' activations of the study's texts are
computed by Ray Data actors into the activation cache (same key, rows and done flags as the
local engine); the runner's and ``train``'s extraction is then a cache hit and every later step
is unchanged. With the local backend this does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.config.study import StudyConfig
from learnerprobe.engine.data import encode, load_records
from learnerprobe.errors import ConfigError
from learnerprobe.records import LearnerText


def with_execution(execution: ExecutionConfig, **overrides: Any) -> ExecutionConfig:
    """The ``[execution]`` table with the given non-None values (CLI flags) replacing its own."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return execution
    try:
        return ExecutionConfig.model_validate({**execution.model_dump(), **given})
    except ValidationError as e:
        msg = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        raise ConfigError(f"execution settings: {msg}") from None


def prefill_activations(cfg: StudyConfig, records: list[LearnerText] | None = None, *,
                        all_layers: bool = False,
                        log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run the extraction of every configured model on the cluster (no-op for ``local``).

    ``records``: the loaded corpus (default: loaded as the runner loads it); the texts extracted
    are the task's prepared ones, as the runner extracts them. ``all_layers``: every layer
    whatever ``layers`` says (``train`` reads all layers)."""
    if not cfg.execution.is_ray:
        return []
    from learnerprobe.execution.ray_extract import fill_models  # heavy optional: ray

    if records is None:
        records, _ = load_records(cfg.corpus_configs, cfg.prep)
    texts = encode(cfg, records).records
    layers = None if all_layers or cfg.layers == "all" else cfg.layers
    return fill_models(texts, cfg.models, execution=cfg.execution, layers=layers,
                       extraction=cfg.extraction.kwargs(), log=log)
