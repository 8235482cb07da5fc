"""A run folder's results, for readers: the tidy-result schema and the run-folder reader.

The schema and scoring live in :mod:`learnerprobe.evaluation.results` (shared by the study
runner and the NLI protocol); this module is the public face docs/STUDY.md names. Readers of a
run's results.csv go through :func:`read_run_results(run_dir) <read_run_results>`: it refuses a
folder whose run did not finish (no complete manifest.json) or whose results.csv does not match.
"""

from __future__ import annotations

from learnerprobe.evaluation.metrics import LOWER_IS_BETTER
from learnerprobe.evaluation.results import (
    NO_LAYER,
    PREDICTION_COLUMNS,
    RESULT_COLUMNS,
    SELECTED,
    HookResult,
    Pooled,
    ReportSection,
    prediction_frame,
    results_frame,
    score_rows,
)
from learnerprobe.study.rundir import IncompleteRunError, check_run_complete, read_run_results

__all__ = [
    "LOWER_IS_BETTER", "NO_LAYER", "PREDICTION_COLUMNS", "RESULT_COLUMNS", "SELECTED",
    "HookResult", "IncompleteRunError", "Pooled", "ReportSection", "check_run_complete",
    "prediction_frame", "read_run_results", "results_frame", "score_rows",
]
