"""A loaded study config checked against the registries, once, before any work.

:func:`learnerprobe.config.load.load_config` types the file (the bottom layer, which knows
no registry); :func:`check_config` then refuses unknown names, listing the valid ones: the
task (``learnerprobe.tasks``), corpora and their loader options (``corpora.registry``), models
(``models.registry``, or a local folder / hub id), probes and methods (``methods.registry``,
also the ``[nli]`` and ``[transfer]`` tables), and an extraction device this machine lacks.
:func:`load_study` does both; the CLI, :func:`learnerprobe.study.runner.run` and
``learnerprobe train`` read a config through it, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from learnerprobe.config.adapt import AdaptConfig
from learnerprobe.config.load import load_config, parse_config
from learnerprobe.config.study import StudyConfig
from learnerprobe.config.transfer import TransferConfig
from learnerprobe.corpora.registry import CORPORA, check_corpus_config
from learnerprobe.errors import ConfigError
from learnerprobe.methods.registry import get_method, method_names
from learnerprobe.models.device import check_device
from learnerprobe.models.registry import MODELS, get_model
from learnerprobe.nli.check import check_nli
from learnerprobe.tasks import TASKS, get_task


def load_study(path: str | Path) -> StudyConfig:
    """Read, validate and check a TOML study config (ConfigError naming the file and key)."""
    return check_config(load_config(path), str(path))


def parse_study(data: dict[str, Any], source: str = "config") -> StudyConfig:
    """:func:`load_study` for a dict (from TOML)."""
    return check_config(parse_config(data, source), source)


def check_config(cfg: StudyConfig, source: str = "config") -> StudyConfig:
    """Registry checks of a loaded config; ConfigError naming the key and the valid names.
    Types the ``[nli]`` table's registered method tables and variants in place; returns
    ``cfg``."""
    if cfg.task not in TASKS:
        raise ConfigError(f"{source}: task: unknown task {cfg.task!r}; "
                          f"known: {', '.join(TASKS)}")
    task = get_task(cfg.task)
    if task.uses_probes and not cfg.probes:
        raise ConfigError(f"{source}: probes is empty: list at least one probe (or 'surface')")
    if cfg.nli is not None:
        check_nli(cfg.nli, source)
    _check_names(cfg, source)
    for corpus in cfg.corpus_configs:  # a corpus table's loader options, checked by the loader
        try:
            check_corpus_config(corpus)
        except ConfigError as e:
            raise ConfigError(f"{source}: corpora: {e}") from None
    if not cfg.execution.is_ray:  # on a cluster the device is the actors', not this machine's
        try:
            check_device(cfg.extraction.device)
        except ConfigError as e:
            raise ConfigError(f"{source}: extraction.device: {e}") from None
    task.check_config(cfg)  # the task's own settings (l1: nli.check.check_l1_config)
    if cfg.transfer is not None:
        check_transfer(cfg.transfer, source)
    if cfg.adapt is not None:
        if not (task.uses_probes and task.label_kind == "ordinal"):
            raise ConfigError(f"{source}: adapt: loco_k adapts ordinal level probes; task "
                              f"{cfg.task!r} is not one")
        check_adapt(cfg.adapt, len(cfg.corpus_names), source)
    return cfg


def _known(kind: str) -> Sequence[str]:
    if kind == "corpus":
        return list(CORPORA)
    if kind == "model":
        return list(MODELS)
    return method_names(task="cefr")  # the methods registry: five probes and the surface baseline


def _model_ok(name: str) -> bool:
    """Models beyond the registry: a local transformers folder or a hub id (org/name)."""
    try:
        get_model(name)
    except (ConfigError, OSError, ValueError, RuntimeError):
        # RuntimeError: Path("~nouser/x").expanduser(); ValueError/OSError: odd paths
        return False
    return True


def _check_names(cfg: StudyConfig, source: str) -> None:
    """Reject unknown corpus, model or probe names, listing the valid ones."""
    checks: list[tuple[str, list[str]]] = [("corpus", [c.name for c in cfg.corpus_configs]),
                                           ("model", cfg.models)]
    if get_task(cfg.task).uses_probes:  # probe-pipeline tasks: probes are CEFR registry probes
        checks.append(("probe", cfg.probes))
    for kind, names in checks:
        valid = _known(kind)
        bad = [n for n in names if n not in valid and not (kind == "model" and _model_ok(n))]
        if bad:
            raise ConfigError(
                f"{source}: unknown {kind} {', '.join(map(repr, bad))}; "
                f"valid: {', '.join(sorted(valid))}"
            )


def check_adapt(ac: AdaptConfig, n_corpora: int, source: str = "config") -> None:
    """``[adapt]``: its methods and baselines are registered adapt methods, its source a
    probe; loco_k holds out one corpus at a time, so it needs two. ``methods`` not given is
    filled in with every registered adapt method (what the stage runs)."""
    known = method_names(task="adapt")
    bad = [m for m in [*(ac.methods or []), *ac.baselines] if m not in known]
    if bad:
        raise ConfigError(f"{source}: adapt: unknown method {', '.join(map(repr, bad))}; "
                          f"known: {', '.join(known)}")
    probes = method_names(kind="probe", task="cefr")
    if ac.source not in probes:
        raise ConfigError(f"{source}: adapt.source: unknown probe {ac.source!r}; "
                          f"known: {', '.join(probes)}")
    if n_corpora < 2:
        raise ConfigError(f"{source}: adapt: loco_k holds out one corpus at a time and needs "
                          "at least two corpora")
    if ac.methods is None:
        ac.methods = [m for m in known if m not in ac.baselines]


def check_transfer(tc: TransferConfig, source: str = "config") -> None:
    """Unknown ``[transfer]`` method names or grid options are ConfigErrors naming the key.
    ``methods`` not given is filled in with every registered transfer method (what the stage
    runs: ``study.transfer.method_list``), so the config's digest and copies name them."""
    known = method_names(task="transfer")
    if tc.methods is None:
        tc.methods = list(known)
    bad = [m for m in [*(tc.methods or []), tc.plain, *tc.grid] if m not in known]
    if bad:
        raise ConfigError(f"{source}: transfer: unknown method {', '.join(map(repr, bad))}; "
                          f"known: {', '.join(known)}")
    for m, opts in tc.grid.items():
        params = get_method(m).build(n_classes=2).get_params()
        wrong = [k for k in opts if k not in params]
        if wrong:
            raise ConfigError(f"{source}: transfer.grid.{m}.{wrong[0]}: unknown option; "
                              f"known: {', '.join(sorted(params))}")
        empty = [k for k, v in opts.items() if not v]
        if empty:
            raise ConfigError(f"{source}: transfer.grid.{m}.{empty[0]}: give at least one value")
