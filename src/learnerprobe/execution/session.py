"""Connecting to Ray: the one place that calls ``ray.init`` (Ray is imported only here, lazily)."""

from __future__ import annotations

import os
from typing import Any

from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.errors import ConfigError

# heavy optional import: ray (the `ray` extra) is imported inside the functions, so the local
# backend and the CLI start-up never load it.


def import_ray() -> Any:
    """The ``ray`` module, or a one-line ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("backend 'ray' needs Ray: pip install 'learnerprobe[ray]'") from None
    return ray


def ensure_ray(cfg: ExecutionConfig) -> Any:
    """Connect once per process: to ``cfg.address`` if given (``auto``: the cluster this node
    belongs to), else start a private instance sized by this machine's cores and a bounded
    object store (Ray's default takes 30 % of the RAM)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    env = {k: v for k, v in os.environ.items()
           if k in ("LEARNERPROBE_CACHE", "LEARNERPROBE_DATA", "HF_HUB_OFFLINE", "HF_HOME")}
    runtime_env = {"env_vars": env} if env else None
    if cfg.address:
        ray.init(address=cfg.address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                 object_store_memory=int(cfg.object_store_mb or 500) * 1024 * 1024,
                 runtime_env=runtime_env)
    return ray
