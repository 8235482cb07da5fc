"""Execution backends: ``local`` (this process, the default; Ray is never imported) and ``ray``
(extraction as Ray Data batch inference, probe cells as Ray tasks). See docs/CLUSTER.md."""

from learnerprobe.execution.settings import BACKENDS, ExecutionConfig

__all__ = ["BACKENDS", "ExecutionConfig"]
