"""The ``[execution]`` table of a study config: where the work runs (this process or Ray).

Only pydantic is imported here: reading a config never imports Ray, and the local backend
never does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from learnerprobe.config.base import StrictModel
from learnerprobe.limits import MAX_COUNT, MAX_JOBS, Count

BACKENDS = ("local", "ray")


class ExecutionConfig(StrictModel):
    """Execution backend. ``local``: today's engine in this process (the default). ``ray``:
    extraction as Ray Data batch inference on an actor pool and probe cells as Ray tasks.

    None of these settings changes a result (they are left out of the config digest and of every
    cache key): the Ray backend writes the same activation cache rows and the same cells.
    """

    backend: Literal["local", "ray"] = "local"
    # Ray address: "auto" (a running cluster found from this node), "ray://head:10001", or
    # None (start a private Ray instance in this process).
    address: str | None = None
    workers: int = Field(1, ge=1, le=MAX_JOBS)  # extraction actors, one model replica each
    gpus_per_worker: float = Field(0.0, ge=0.0, le=MAX_JOBS)  # 1 on GPU clusters; 0 = CPU actors
    cpus_per_worker: float = Field(1.0, gt=0.0, le=MAX_JOBS)  # also the torch threads of a CPU actor
    batch_tokens: Count | None = None  # token budget per forward (default: extraction's)
    shard_texts: Count = 4096  # texts per cache shard written by the cluster
    item_texts: Count = 256  # texts per Ray Data item (one actor call)
    # Destination of the activation cache when it is not the local cache folder: a path on a
    # shared disk or a pyarrow.fs URI (s3://bucket/prefix, gs://..., file:///...).
    cache_uri: str | None = None
    object_store_mb: int | None = Field(None, ge=50, le=MAX_COUNT)  # only when this process starts Ray
    cell_cpus: float = Field(1.0, gt=0.0, le=MAX_JOBS)  # CPUs reserved per probe-cell task

    @property
    def is_ray(self) -> bool:
        return self.backend == "ray"
