"""The study config as typed models, at the bottom of the import graph.

One TOML file says everything a study needs; these pydantic models type it, table by table
(``StudyConfig`` and its sections ``LabelConfig``, ``ExtractionConfig``, ``PrepConfig``,
``SelectionConfig``, ``CorpusConfig``, ``NliConfig`` with one ``*Config`` per NLI method,
``TransferConfig``, ``ExecutionConfig``), and :func:`~learnerprobe.config.load.load_config`
reads and validates a file. The package imports only pydantic and the bottom-layer modules
(errors, limits, cefr), so every layer can type the section it receives.

What needs a registry of a higher layer (a corpus, model, probe, task or method name, a
method's options table, a device of this machine) is checked once after loading by
:func:`learnerprobe.study.check.check_config`; ``learnerprobe.study.check.load_study`` does
both.
"""

from learnerprobe.config.corpus import CorpusConfig
from learnerprobe.config.execution import ExecutionConfig
from learnerprobe.config.load import load_config, parse_config
from learnerprobe.config.nli import MethodConfig, NliConfig
from learnerprobe.config.study import (
    ExtractionConfig,
    LabelConfig,
    PrepConfig,
    SelectionConfig,
    StudyConfig,
)
from learnerprobe.config.transfer import TransferConfig

__all__ = ["CorpusConfig", "ExecutionConfig", "ExtractionConfig", "LabelConfig", "MethodConfig",
           "NliConfig", "PrepConfig", "SelectionConfig", "StudyConfig", "TransferConfig",
           "load_config", "parse_config"]
