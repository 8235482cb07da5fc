"""Execution backends: ``local`` (this process, the default; Ray is never imported) and ``ray``
(extraction as Ray Data batch inference, probe cells as Ray tasks), as the ``[execution]``
table says (``learnerprobe.config.execution.ExecutionConfig``). See docs/CLUSTER.md."""
